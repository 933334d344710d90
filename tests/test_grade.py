"""`tp grade`: a folder of submissions of notebook 00 (correct, empty, wrong, crashing, never-ending,
printing megabytes, out of memory, helpers in an untagged cell, a syntax error) gives the right table
in bounded time; the layouts of a submissions folder; the child processes' limits; the cells the
self-checks need."""
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tp_tools.cells import cell_names, setup_slice
from tp_tools.checking import summarize
from tp_tools.child import ChildResult, run_in_child
from tp_tools.plans import Check, Exercise, Hidden, hidden_tests, plan
from tp_tools.submissions import find_submissions, notebook_number
from tp_utils.conventions import CODE_STUB

ROOT = Path(__file__).resolve().parents[1]
NB00 = "00_setup_and_tour.ipynb"
STUB = "\n    ".join(CODE_STUB)
RIGHT = "with torch.no_grad():\n        return model(x).softmax(dim=1).topk(k, dim=1)"
TIMEOUT = 45  # seconds per exercise: the endless submission costs this much

# student -> (the function's body, an extra untagged cell, words expected in the first reason)
SUBMISSIONS = {
    "empty": (None, None, "NotImplementedError"),
    "wrong": ("with torch.no_grad():\n        return model(x).topk(k, dim=1)", None, "wrong value"),
    "crash": ("import os\n    os._exit(3)", None, "exited with status 3"),
    "segfault": ("import ctypes\n    ctypes.string_at(0)", None, "SIGSEGV"),
    "endless": ("while True:\n        pass", None, "time-out"),
    "chatty": ("print('x' * 3_000_000)\n    " + RIGHT, None, ""),
    "hog": ("big = torch.ones(2 ** 29)  # 2 GB\n    " + RIGHT, None, "memory"),
    "helper": ("return _top(model, x, k)",
               "import torch\n\n\ndef _top(model, x, k):\n    with torch.no_grad():\n"
               "        return model(x).softmax(dim=1).topk(k, dim=1)", ""),
    "syntax": ("return model(x).softmax(dim=1).topk(k, dim=1", None, "SyntaxError"),
}


def _submission(body, extra):
    nb = nbformat.read(ROOT / "notebooks" / NB00, as_version=4)
    if body is not None:
        cell = next(c for c in nb.cells if "def topk_predictions" in c.source)
        assert STUB in cell.source
        cell.source = cell.source.replace(STUB, body)
    if extra is not None:
        nb.cells.insert(4, nbformat.v4.new_code_cell(extra))  # untagged, before the exercise
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    for student, (body, extra, _) in SUBMISSIONS.items():
        (folder / student).mkdir()
        nbformat.write(_submission(body, extra), folder / student / NB00)
    (folder / "correct" / "tp").mkdir(parents=True)  # nested one level, as nbgrader's submitted/
    nbformat.write(nbformat.read(ROOT / "solutions" / NB00, as_version=4), folder / "correct" / "tp" / NB00)
    nbformat.write(_submission(RIGHT, None), folder / f"dora_{NB00}")  # one file per student
    out = folder.parent / "grades"
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "tp_utils.cli", "grade", str(folder), "--out", str(out),
                          "--timeout", str(TIMEOUT), "--memory", "1024", "--jobs", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, TQDM_DISABLE="1"))
    seconds = time.monotonic() - start
    print(run.stdout[-4000:], run.stderr[-4000:], f"\ntp grade took {seconds:.0f} s")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with open(out / "grades.csv", newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    with open(out / "details.csv", newline="") as f:
        details = list(csv.DictReader(f))
    return rows, details, out, seconds


def test_points_per_student(graded):
    rows, details, _, _ = graded
    ex = plan(ROOT / "solutions" / NB00, ROOT / "tests").exercises[0]
    full = sum(w for _, w in ex.items())
    assert len(ex.hidden) >= 3  # the tests of tests/test_notebook00.py and of tests/mutations/nb00.py
    column = "00:topk_predictions"
    assert float(rows["(maximum)"][column]) == full
    points = {s: float(r[column]) for s, r in rows.items() if s != "(maximum)"}
    assert set(points) == set(SUBMISSIONS) | {"correct", "dora"}
    for student in ("correct", "dora", "chatty", "helper"):
        assert points[student] == full, (student, [d for d in details if d["student"] == student])
    for student in ("empty", "crash", "segfault", "endless", "hog", "syntax"):
        assert points[student] == 0, student
    assert 0 < points["wrong"] < full  # it passes the graph test, not the values


def test_reasons(graded):
    _, details, _, _ = graded
    for student, (_, _, words) in SUBMISSIONS.items():
        if not words:
            continue
        first = next(d for d in details if d["student"] == student and d["status"] != "pass")
        assert words in first["reason"], (student, first)
    check = next(d for d in details if d["student"] == "wrong" and d["item"] == "check-topk_predictions-1")
    assert check["status"] == "fail" and "chelsea top-3 probabilities" in check["reason"]


def test_bounded_time_and_output(graded):
    _, details, out, seconds = graded
    endless = [d for d in details if d["student"] == "endless"]
    assert endless[0]["status"] == "timeout"
    assert seconds < 600  # an endless loop costs its time limit, not the run
    import json

    data = json.loads((out / "details.json").read_text())
    chatty = data["grades"]["chatty|00"]["topk_predictions"]
    assert chatty["output_bytes"] > 3_000_000 and len(chatty["output"]) < 5000  # kept: head and tail
    assert (out / "details.json").stat().st_size < 500_000


def test_reports(graded):
    rows, _, out, _ = graded
    md = (out / "grades.md").read_text()
    assert "| correct |" in md and "time-out" in md and "SIGSEGV" in md
    answers = (out / "answers.md").read_text()
    assert "*Answer.* \"Astronaut\"" in answers  # the solution's written answer, for a person to read
    assert "4 question(s) unanswered" in answers
    assert rows["correct"]["00:written answered"] == "4" and rows["empty"]["00:written answered"] == "0"


# ------------------------------------------------------------------------------ layouts

def test_layouts(tmp_path):
    known = {"00", "03"}
    for name in ["alice/00_setup_and_tour.ipynb", "bob/tp/03_patches_and_occlusion.ipynb",
                 "carol_00_setup_and_tour.ipynb", "dan smith-03_patches_and_occlusion.ipynb",
                 "eve.00.ipynb", "frank/notes.ipynb", "03_no_student.ipynb",
                 "alice/.ipynb_checkpoints/00_setup_and_tour-checkpoint.ipynb"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    found, warnings = find_submissions(tmp_path, known)
    assert {s: sorted(per) for s, per in found.items()} == {
        "alice": ["00"], "bob": ["03"], "carol": ["00"], "dan smith": ["03"], "eve": ["00"]}
    assert any("notes.ipynb" in w for w in warnings) and any("no student name" in w for w in warnings)
    assert notebook_number("bob_2024_03_patches.ipynb", known) == "03"


# ------------------------------------------------------------------------------ the children
# Pure-Python targets: this pytest process has torch's thread pool, which a forked child must not use.

def _events(child):
    return [e for e in child.events if "n" in e]


def test_child_limits():
    def chatty(emit):
        sys.stdout.write("a" * 100_000 + "THE END")
        emit({"n": 1})

    child = run_in_child(chatty, timeout=30, keep=100)
    assert _events(child) == [{"n": 1}] and child.output_bytes == 100_007
    assert child.output.startswith("a" * 100) and child.output.endswith("THE END") and len(child.output) < 300

    def endless(emit):
        emit({"n": 1})
        while True:
            pass

    start = time.monotonic()
    child = run_in_child(endless, timeout=1)
    assert child.end == "timeout" and _events(child) == [{"n": 1}] and time.monotonic() - start < 10

    child = run_in_child(lambda emit: os._exit(5), timeout=30)
    assert (child.end, child.code) == ("exit", 5)

    def hog(emit):
        try:
            bytearray(4 * 2 ** 30)
        except MemoryError:
            emit({"n": "memory"})

    child = run_in_child(hog, timeout=30, memory_mb=256)
    assert _events(child) == [{"n": "memory"}]


# ------------------------------------------------------------------------------ the dependency slice

def test_setup_slice_takes_what_the_checks_read():
    cells = [(0, "import tp_utils as tp\nfrom lib import load, heavy, plot, train", True),
             (1, "device = tp.get_device()\nmodel = load(device)", False),
             (2, "photos = [1, 2]\nunused = heavy()", False),
             (3, "plot(photos)", False),
             (4, "def f(x):\n    return x", True),
             (5, "batch = [p for p in photos]\nfor p in photos:\n    q = p\nmodel.eval()", False),
             (6, "big = train()", False),
             (7, "out = f(model, batch)\nassert out == expected_value", False)]
    needed, missing = setup_slice(cells, [7])
    assert needed == [1, 2, 5] and missing == {"expected_value"}


def test_cell_names():
    n = cell_names("import numpy as np\nx = np.zeros(3)\nfor i in range(3):\n    x[i] = y\n"
                         "def g(a):\n    return a + z\n[w for w in x]\nwith open(f) as h:\n    pass\nx.sort()\n")
    assert n.free == {"y", "z", "f"}
    assert {"np", "x", "i", "g", "h"} <= n.bound and "x" in n.mutated and "np" not in n.mutated


# ------------------------------------------------------------------------------ hidden tests

@pytest.mark.parametrize("solution", sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name[:2])
def test_every_exercise_has_a_hidden_test(solution):
    p = plan(solution, ROOT / "tests")
    assert p.exercises
    counts = {ex.name: len(ex.hidden) for ex in p.exercises}
    assert all(n >= 1 for n in counts.values()), counts


def test_hidden_tests_found_through_module_constants(tmp_path):
    (tmp_path / "test_notebook99.py").write_text(
        "import pytest\nfrom pathlib import Path\nfrom tp_utils.notebook import load_exports\n"
        "ROOT = Path(__file__).parent\nSOLUTIONS = ROOT / 'solutions'\nNB = SOLUTIONS / '99_x.ipynb'\n\n"
        "@pytest.fixture\ndef nb():\n    return load_exports(NB)\n\n"
        "@pytest.fixture\ndef doubled(nb):\n    return nb.g\n\n"
        "def check(module, x):\n    return module.h(x)\n\n"
        "def test_f(nb):\n    assert nb.f(1)\n\n"
        "def test_g(doubled):\n    assert doubled(1)\n\n"
        "def test_h(nb):\n    assert check(nb, 1)\n\n"
        "def test_other(nb):\n    assert nb.other\n")
    names = {ex: [h.name for h in hidden_tests(tmp_path, "99_x", [ex])] for ex in "fgh"}
    assert names == {"f": ["test_f"], "g": ["test_g"], "h": ["test_h"]}


def test_a_skipped_hidden_test_stays_in_the_maximum():
    ex = Exercise("99_x", "f", ["f"], 0, "", checks=[Check(1, "check-f-1", 1.0, "")],
                  hidden=[Hidden("t.py", "test_a")])
    events = [{"item": "check-f-1", "ok": True, "reason": "", "seconds": 0.1},
              {"node": "t.py::test_a", "item": "hidden:test_a", "outcome": "skipped",
               "reason": "could not import 'captum'", "seconds": 0.0}]
    child = ChildResult(events, "exit", 0, 1.0, "", 0)
    r = summarize(ex, child, hidden=True, timeout=10, memory_mb=None)
    assert (r["points"], r["max"]) == (1.0, 2.0)
    skipped = r["items"][1]
    assert skipped["status"] == "skipped" and "captum" in skipped["reason"]
