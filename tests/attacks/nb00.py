"""Attacks on `tp grade` through notebook 00's exercise (`topk_predictions`): submissions that try to
gain points without the answer, or to carry the answer or the hidden tests out into the reports.

``ATTACKS``: ``(name, what it tries, code before the function, the function's body)``; the body
replaces the student's stub, the code before it stands in the same cell. ``{ITEMS}`` becomes the
list of the exercise's item ids (what a student sees in a report), ``{PORT}`` a TCP port on which
the test listens. :func:`build` writes the submissions folder (with an empty submission and a
correct one, the victim). tests/test_attacks.py runs it; benchmarks/attacks.py prints the points
with and without the sandbox.
"""
from pathlib import Path

import nbformat

WRONG = "raise NotImplementedError('not written')"  # what each attack falls back on: no answer

ATTACKS = [
    ("call_reference", "keeps the reference the grader put under the exercise's name and calls it",
     "_reference = topk_predictions\n\n", "return _reference(model, x, k)"),
    ("load_solution", "runs the solution notebook from the package's checkout (or TP_ANSWERS_DIR)",
     "", "import os, tp_utils\n    from pathlib import Path\n    from tp_utils.notebook import load_exports\n"
         "    roots = [Path(tp_utils.__file__).resolve().parents[1] / 'solutions', Path('/work/main/solutions'),\n"
         "             Path(os.environ.get('TP_ANSWERS_DIR', '/nonexistent'))]\n"
         "    for root in roots:\n        try:\n"
         "            return load_exports(root / '00_setup_and_tour.ipynb').topk_predictions(model, x, k)\n"
         "        except Exception:\n            pass\n"
         "    " + WRONG.replace("\n        ", "\n    ")),
    ("patch_grader", "makes exec skip the check cells, replaces the grader's check runner and pytest's test call",
     "import builtins, sys\ntry:\n    import _pytest.python\n    _pytest.python.Function.runtest = lambda self: None\n"
     "except Exception:\n    pass\nfor _m in list(sys.modules.values()):\n"
     "    if hasattr(_m, 'run_checks') and hasattr(_m, 'summarize'):\n"
     "        _m.run_checks = lambda *a, **k: True\n"
     "_real_exec = builtins.exec\n\n\ndef _exec(code, *args, **kwargs):\n"
     "    if getattr(code, 'co_filename', '').startswith('<check'):\n        return None\n"
     "    return _real_exec(code, *args, **kwargs)\n\n\nbuiltins.exec = _exec\n\n", WRONG),
    ("forge_events", "writes 'passed' result events where the grader keeps them, then exits",
     "import json, os\nfor _name in ('../events.jsonl', 'events.jsonl'):\n    try:\n"
     "        with open(_name, 'a') as _f:\n"
     "            for _item in {ITEMS}:\n"
     "                _f.write(json.dumps({{'item': _item, 'ok': True, 'reason': '', 'seconds': 0.1}}) + '\\n')\n"
     "                _f.write(json.dumps({{'node': _item, 'item': _item, 'outcome': 'passed', 'reason': '', 'seconds': 0.1}}) + '\\n')\n"
     "    except OSError:\n        pass\n\n", "import os\n    os._exit(0)"),
    ("daemon", "forks a process past the limits that forges result records for itself and the victim, "
               "then rewrites grades.csv",
     "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
     "        import glob, json, time\n        for _ in range(240):\n"
     "            time.sleep(0.25)\n"
     "            for path in glob.glob('/tmp/tp-grade-run-*/results-*.jsonl'):\n"
     "                spec = path.replace('results-', 'spec-').replace('.jsonl', '.json')\n"
     "                if 'attack_daemon' not in open(spec).read():\n                    continue\n"
     "                with open(path, 'a') as f:\n"
     "                    for who, pts in (('attack_daemon', 6.0), ('correct', 0.0)):\n"
     "                        f.write(json.dumps({{'student': who, 'notebook': '00_setup_and_tour', 'exercise': 'topk_predictions',\n"
     "                                'functions': ['topk_predictions'], 'points': pts, 'max': 6.0, 'items': [],\n"
     "                                'seconds': 1.0, 'output': '', 'output_bytes': 0, 'grader_errors': []}}) + '\\n')\n"
     "            for path in glob.glob('/tmp/pytest-of-*/pytest-*/attacks*/grades/grades.csv'):\n"
     "                try:\n                    with open(path, 'a') as f:\n"
     "                        f.write('attack_daemon,6,6,0,6\\n')\n                except OSError:\n                    pass\n"
     "        os._exit(0)\n    os._exit(0)\n\n", WRONG),
    ("read_files", "prints the solution notebook and the hidden tests into its output (the report)",
     "import tp_utils\nfrom pathlib import Path\n_root = Path(tp_utils.__file__).resolve().parents[1]\n"
     "for _p in [_root / 'solutions' / '00_setup_and_tour.ipynb', _root / 'tests' / 'test_notebook00.py',\n"
     "           _root / 'tests' / 'mutations' / 'nb00.py', Path('/work/main/solutions/00_setup_and_tour.ipynb')]:\n"
     "    try:\n        _text = _p.read_text()\n    except OSError as _err:\n        print('cannot read', _p, _err)\n        continue\n"
     "    if _p.suffix == '.ipynb':\n        import json\n"
     "        _text = '\\n'.join(''.join(c['source']) for c in json.loads(_text)['cells'] if 'BEGIN SOLUTION' in ''.join(c['source']))\n"
     "    print(_text[:700])\n\n",
     WRONG),
    ("read_memory", "finds the reference's source in the process's memory, prints and runs it",
     "", "import gc\n    for o in gc.get_objects():\n        src = o.source if type(o).__name__ == 'Exercise' else None\n"
         "        if isinstance(src, str) and 'def topk_predictions' in src and 'BEGIN SOLUTION' in src:\n"
         "            print(src)\n            env = dict(globals())\n            exec(src, env)\n"
         "            if env['topk_predictions'] is not topk_predictions:\n"
         "                return env['topk_predictions'](model, x, k)\n"
         "    " + WRONG.replace("\n        ", "\n    ")),
    ("always_equal", "returns objects whose comparisons always succeed",
     "import torch\n\nclass _Yes(torch.Tensor):\n    @classmethod\n"
     "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
     "        if getattr(func, '__name__', '') in ('allclose', 'equal', 'isclose', 'eq', '__eq__'):\n"
     "            return True\n        return super().__torch_function__(func, types, args, kwargs or {{}})\n\n"
     "    def __eq__(self, other):\n        return True\n\n",
     "n = x.shape[0]\n    return _Yes(torch.zeros(n, k, requires_grad=True)), _Yes(torch.zeros(n, k, dtype=torch.long))"),
    ("network", "opens a connection to the grading machine (and the world)",
     "", "import socket\n    try:\n        socket.create_connection(('127.0.0.1', {PORT}), timeout=2).close()\n"
         "        print('NETWORK' + ' OK')\n    except OSError as err:\n        print('no network:', err)\n"
         "    " + WRONG.replace("\n        ", "\n    ")),
    ("fork_many", "starts 150 processes that outlive the exercise",
     "import os, time\n_n = 0\nfor _ in range(150):\n    try:\n        if os.fork() == 0:\n"
     "            os.setsid()\n            time.sleep(20)\n            os._exit(0)\n        _n += 1\n"
     "    except OSError:\n        break\nprint('forked', _n)\n\n", WRONG),
    ("cwd_env", "changes the working folder, the environment and sys.path for what runs after it",
     "import os, sys\nos.environ['TP_ANSWERS_DIR'] = '/'\nos.environ['PYTHONPATH'] = '/tmp'\nsys.path.insert(0, '/tmp')\n"
     "os.chdir('/')\n\n", WRONG),
]


def build(folder: Path, root: Path, items: list, port: int) -> list[str]:
    """Write the submissions: ``empty``, ``correct`` (the victim) and one per attack; their names."""
    from tp_utils.conventions import CODE_STUB

    stub = "\n    ".join(CODE_STUB)
    base = nbformat.read(root / "notebooks" / "00_setup_and_tour.ipynb", as_version=4)
    names = []

    def write(name, nb):
        (folder / name).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / name / "00_setup_and_tour.ipynb")
        names.append(name)

    write("empty", base)
    write("correct", nbformat.read(root / "solutions" / "00_setup_and_tour.ipynb", as_version=4))
    for name, _, before, body in ATTACKS:
        nb = nbformat.read(root / "notebooks" / "00_setup_and_tour.ipynb", as_version=4)
        cell = next(c for c in nb.cells if "def topk_predictions" in c.source)
        fill = {"ITEMS": repr(list(items)), "PORT": str(port)}
        source = cell.source.replace(stub, body.replace("{{", "\0").replace("}}", "\1").format(**fill)
                                     .replace("\0", "{").replace("\1", "}"))
        before = before.format(**fill)
        cell.source = source.replace("def topk_predictions", before + "def topk_predictions", 1)
        write(f"attack_{name}", nb)
    return names
