"""The worker: one Python per notebook that builds the reference state once and forks a child per
student and exercise (``python -m tp_tools.worker --worker SPEC``)."""
from __future__ import annotations

import ast
import json
import os
import sys
import traceback
import types
from pathlib import Path

from tp_tools.cells import _compile
from tp_tools.checking import answers_target, describe, exercise_target, overlay_submission, summarize
from tp_tools.child import _kill_group, run_in_child
from tp_tools.plans import Plan, plan


def prepare_process():
    """One thread, the CPU, no display, quiet warnings: a worker that forks children."""
    import warnings

    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import matplotlib

    matplotlib.use("Agg")
    import torch

    torch.set_num_threads(1)  # an OpenMP pool in the parent hangs its forked children
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    import tp_utils
    from tp_utils import device

    original = device.get_device
    if not getattr(original, "_tp_grade_cpu", False):
        def cpu_device(prefer=None):
            return original(prefer) if prefer is not None else torch.device("cpu")

        cpu_device._tp_grade_cpu = True
        device.get_device = cpu_device
        tp_utils.get_device = cpu_device
    warnings.filterwarnings("ignore")


def build_base(p: Plan) -> types.ModuleType:
    """A module holding the solution's export cells and the setup slice, run with the reference."""
    import matplotlib.pyplot as plt

    import tp_utils

    module = types.ModuleType(p.stem)
    module.__file__ = p.path
    ns = module.__dict__
    try:
        from IPython.display import display

        ns["display"] = display
    except ImportError:
        pass
    import contextlib
    import io

    tp_utils.seed_everything(0)
    printed = io.StringIO()  # the setup cells' prints are noise here
    with contextlib.redirect_stdout(printed):
        for index, source in p.exports + p.setup:
            exec(_compile(source, f"<solution {p.stem} cell {index}>"), ns)
            plt.close("all")
    return module


def preimport_for_hidden(p: Plan):
    """Import what the hidden tests import, once, before forking (pytest, captum, ...)."""
    import importlib

    files = {h.path for ex in p.exercises for h in ex.hidden}
    conftest = Path(next(iter(files))).parent / "conftest.py" if files else None
    if conftest is not None and conftest.exists():
        files.add(str(conftest))
    modules = {"pytest"}
    for path in files:
        try:
            tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module)
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "importorskip" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                modules.add(node.args[0].value)
    for name in sorted(modules):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing optional module skips its tests later
            pass


def worker(spec: dict) -> int:
    """Grade ``spec["students"]`` on one notebook; one JSON line per result in ``spec["results"]``."""
    out = open(spec["results"], "a", encoding="utf-8", buffering=1)

    def write(record: dict) -> None:
        out.write(json.dumps(record, default=str) + "\n")
        out.flush()

    p = plan(spec["solution"], spec.get("tests") if spec.get("hidden", True) else None, quick=spec.get("quick", False))
    prepare_process()
    try:
        module = build_base(p)
        if spec.get("hidden", True):
            preimport_for_hidden(p)
    except BaseException as err:  # noqa: B036
        write({"setup_error": f"running the solution's cells for {p.stem} failed: {describe(err)}",
               "traceback": traceback.format_exc()[-3000:]})
        return 1
    timeout, memory, threads = float(spec["timeout"]), spec.get("memory"), spec.get("threads", 1)
    zygote = None
    if spec.get("sandbox", True):
        from tp_tools.harness import Zygote, sandboxed_target
        from tp_utils import answers

        def door(name):
            return answers.earlier(name)  # TP_ANSWERS_DIR: the solutions (the trusted side only)

        try:
            zygote = Zygote(p, module, int(spec.get("id", 0)), door=door)
        except BaseException as err:  # noqa: B036
            write({"setup_error": f"starting the sandbox for {p.stem} failed: {describe(err)}",
                   "traceback": traceback.format_exc()[-3000:]})
            return 1
    for student, path in spec["students"]:
        child = run_in_child(answers_target(p, path), timeout=60, memory_mb=memory)
        write({"student": student, "notebook": p.stem, "answers": [e for e in child.events if "answer" in e],
               "answers_error": next((e["answers_error"] for e in child.events if "answers_error" in e), None)})
        for ex in p.exercises:
            if zygote is not None:
                target = sandboxed_target(module, p, ex, path, zygote, hidden=spec.get("hidden", True),
                                          timeout=timeout, memory_mb=memory, door=door)
            else:
                target = exercise_target(module, p, ex,
                                         lambda ns, pl, e, path=path: overlay_submission(ns, pl, e, path),
                                         hidden=spec.get("hidden", True))
            child = run_in_child(target, timeout=timeout, memory_mb=None if zygote else memory, threads=threads)
            if zygote is not None:
                for ev in child.events:
                    if ev.get("sandbox_pid"):
                        _kill_group(int(ev["sandbox_pid"]))
                zygote.sweep()
            record = summarize(ex, child, hidden=spec.get("hidden", True), timeout=timeout, memory_mb=memory)
            write({"student": student, "notebook": p.stem, **record})
    if zygote is not None:
        zygote.close()
    return 0


def _worker_main(argv) -> int:
    spec = json.loads(Path(argv[argv.index("--worker") + 1]).read_text())
    return worker(spec)


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
