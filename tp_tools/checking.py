"""Inside a child: one exercise of one submission (its cell over the reference state, the
self-checks, the hidden tests), its result in points, and the written answers."""
from __future__ import annotations

import ast
import os
import re
import time
import traceback
import types
from pathlib import Path

from tp_utils.conventions import ANSWER_STUB, MD_BEGIN_TEXT, is_export
from tp_tools.cells import cell_names, _code, _compile, _definitions_only, _top_defs
from tp_tools.child import ChildResult
from tp_tools.plans import Exercise, HIDDEN_PREFIX, Plan


def describe(err: BaseException, limit: int = 240) -> str:
    """One line that says what went wrong, for the report."""
    name = type(err).__name__
    text = " ".join(str(err).split())
    if isinstance(err, NotImplementedError) or name == "UnfinishedExercise":
        out = "not done: it raises NotImplementedError" if isinstance(err, NotImplementedError) else text
    elif isinstance(err, AssertionError):
        out = f"wrong value: {text}" if text else "wrong value: " + _failing_line(err)
    elif isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and "alloc" in text.lower()):
        out = f"memory limit exceeded ({name}: {text})"
    elif isinstance(err, SystemExit):
        out = f"the code called sys.exit({err.code!r})"
    elif isinstance(err, OSError) and err.errno == 27:
        out = "output or file limit exceeded (a file over 256 MB)"
    elif isinstance(err, SyntaxError):
        out = f"SyntaxError: {err.msg} (line {err.lineno})"
    else:
        out = f"{name}: {text}"
        if isinstance(err, NameError):
            out += " (a helper must be defined in the exercise's cell or in a cell of definitions only)"
    where = _student_frame(err)
    if where and not isinstance(err, SyntaxError):
        out += f" [{where}]"
    return out if len(out) <= limit else out[:limit - 3] + "..."


def _failing_line(err) -> str:
    tb = traceback.extract_tb(err.__traceback__)
    return f"assertion failed: {tb[-1].line}" if tb and tb[-1].line else "assertion failed"


def _student_frame(err) -> str | None:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith("<submission")]
    if not frames:
        return None
    f = frames[-1]
    return f"{f.filename.strip('<>').replace('submission ', '')}, line {f.lineno}"


def find_exercise_cell(cells, exercise: Exercise) -> int | None:
    """Index of the student's cell for ``exercise``: by grade id, else the last code cell
    defining its first function (tagged ``export`` preferred)."""
    want = f"answer-{exercise.name}"
    by_id = [i for i, c in enumerate(cells) if c.cell_type == "code"
             and c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == want]
    if by_id:
        return by_id[-1]
    by_def = [i for i, c in enumerate(cells) if c.cell_type == "code" and exercise.functions[0] in _top_defs(c.source)]
    tagged = [i for i in by_def if is_export(cells[i])]
    return (tagged or by_def or [None])[-1]


def submission_cells(notebook: str, exercise: Exercise):
    """``(cells, target, reason)``: the cells of a submitted notebook and the index of the cell of
    ``exercise``, or ``(None, None, reason)`` when the exercise cannot be graded."""
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as err:  # noqa: BLE001
        return None, None, f"the notebook cannot be read ({type(err).__name__}: {' '.join(str(err).split())[:150]})"
    target = find_exercise_cell(nb.cells, exercise)
    if target is None:
        return None, None, f"no cell defines {exercise.functions[0]}() (the cell of exercise `{exercise.name}` is missing)"
    return nb.cells, target, None


def context_cells(cells, target: int):
    """``(index, cell, tree)`` of the student's context cells: the code cells other than ``target``
    and the graded ones that parse and are tagged ``export`` or hold only definitions."""
    for i, cell in enumerate(cells):
        if i == target or cell.cell_type != "code":
            continue
        meta = cell.get("metadata", {})
        if str(meta.get("nbgrader", {}).get("grade_id", "")).startswith(("answer-", "check-")):
            continue
        try:
            tree = ast.parse(_code(cell.source))
        except SyntaxError:
            continue
        if not is_export(cell) and not _definitions_only(tree):
            continue
        yield i, cell, tree


def overlay_submission(ns: dict, p: Plan, exercise: Exercise, notebook: str) -> str | None:
    """Run the student's context cells, then their cell of ``exercise``, in ``ns``.
    Returns the reason when the exercise cannot be graded (else None)."""
    cells, target, reason = submission_cells(notebook, exercise)
    if reason:
        return reason
    exercise_functions = {f for ex in p.exercises for f in ex.functions}
    for i, cell, tree in context_cells(cells, target):
        tree.body = [s for s in tree.body if not (isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
                                                   and s.name in exercise_functions)]
        try:
            exec(_compile(tree, f"<submission cell {i}>", _code(cell.source)), ns)
        except BaseException as err:  # noqa: B036 - helpers are optional: the checks will say
            print(f"[grader] cell {i} of the submission failed: {describe(err)}")
    try:
        exec(_compile(_code(cells[target].source), f"<submission cell {target}>"), ns)
    except BaseException as err:  # noqa: B036
        return f"its cell fails to run: {describe(err)}"
    missing = [f for f in exercise.functions if not callable(ns.get(f))]
    if missing:
        return f"its cell does not define {', '.join(missing)}"
    return None


def overlay_source(source: str, label: str = "mutant"):
    """An overlay that runs ``source`` as the exercise's cell (the mutation catalogue's)."""
    def overlay(ns: dict, p: Plan, exercise: Exercise) -> str | None:
        try:
            exec(_compile(_code(source), f"<submission {label}>"), ns)
        except BaseException as err:  # noqa: B036
            return f"its cell fails to run: {describe(err)}"
        return None
    return overlay


def run_checks(ns: dict, exercise: Exercise, emit, stop_first: bool = False, first=()) -> bool:
    """Run the exercise's self-check cells in ``ns``; with ``first`` (function names), the cells
    that call them run first (with ``stop_first``, that finds a failure sooner)."""
    import matplotlib.pyplot as plt

    import tp_utils

    tp_utils.seed_everything(0)
    all_ok = True
    checks = sorted(exercise.checks, key=lambda c: not (set(first) & cell_names(c.source).free))
    for check in checks:
        emit({"start": check.grade_id})
        t = time.perf_counter()
        try:
            exec(_compile(check.source, f"<check {check.grade_id}>"), ns)
            ok, reason = True, ""
        except BaseException as err:  # noqa: B036
            if type(err).__name__ in ("SandboxDied", "Closed"):  # the student's process is gone
                emit({"stopped": str(err), "during": check.grade_id})
                raise
            ok, reason = False, describe(err)
        finally:
            plt.close("all")
        emit({"item": check.grade_id, "ok": ok, "reason": reason, "seconds": round(time.perf_counter() - t, 3)})
        all_ok &= ok
        if stop_first and not ok:
            break
    return all_ok


class _Collector:
    """pytest plugin: reports each test's outcome as an event."""

    def __init__(self, emit, names) -> None:
        self.emit, self.names = emit, names

    def _item(self, nodeid):
        name = nodeid.split("::")[-1].split("[")[0]
        return HIDDEN_PREFIX + name

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        self.emit({"start": self._item(nodeid), "node": nodeid})

    def pytest_runtest_logreport(self, report):
        if report.when != "call" and report.outcome == "passed":
            return
        reason = ""
        if report.outcome != "passed":
            crash = getattr(report.longrepr, "reprcrash", None)
            if crash is not None:
                reason = crash.message
            elif isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
                reason = str(report.longrepr[-1])
            else:
                reason = str(report.longrepr).strip().splitlines()[-1] if report.longrepr else ""
            reason = re.sub(r" at 0x[0-9a-f]+", "", " ".join(reason.split()))
            if "SandboxDied: " in reason or "proxy.Closed: " in reason:  # the student's process is gone
                self.emit({"stopped": reason.split("SandboxDied: ")[-1].split("Closed: ")[-1],
                           "during": self._item(report.nodeid)})
            if reason.startswith(("NotImplementedError", "tp_utils.answers.UnfinishedExercise")):
                reason = "not done: it raises NotImplementedError"
            if len(reason) > 160:
                reason = reason[:157] + "..."
            if report.when != "call" and report.outcome == "failed":
                reason = f"error in the test's {report.when}: {reason}"
        self.emit({"node": report.nodeid, "item": self._item(report.nodeid), "outcome": report.outcome,
                   "reason": reason[:240], "seconds": round(report.duration, 3)})

    def pytest_collectreport(self, report):
        if report.failed:
            self.emit({"grader_error": f"collecting {report.nodeid} failed: "
                                       f"{' '.join(str(report.longrepr).split())[-300:]}"})


def run_hidden(module: types.ModuleType, p: Plan, exercise: Exercise, emit, stop_first: bool = False):
    import pytest

    from tp_utils import notebook as tpn

    original = tpn.load_exports
    target = Path(p.path).resolve()

    def load_exports(path, name=None):
        if Path(path).resolve() == target:
            return module
        return original(path, name)

    tpn.load_exports = load_exports
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    root = Path(exercise.hidden[0].path).resolve().parent
    while root.parent != root and not (root / "pyproject.toml").exists() and not (root / "setup.cfg").exists():
        root = root.parent
    args = [h.nodeid for h in exercise.hidden] + [
        "-q", "-s", "--tb=no", "--no-header", "-p", "no:cacheprovider", "-o", "addopts=",
        f"--rootdir={root}", f"--basetemp={Path.cwd() / 'pytest'}", "-W", "ignore"]
    if stop_first:
        args.append("-x")
    code = pytest.main(args, plugins=[_Collector(emit, [h.name for h in exercise.hidden])])
    if int(code) not in (0, 1):
        emit({"grader_error": f"pytest ended with exit code {int(code)}"})


def exercise_target(module: types.ModuleType, p: Plan, exercise: Exercise, overlay, *,
                    hidden: bool = True, checks: bool = True, stop_first: bool = False,
                    hidden_if_checks_pass: bool = False, first=()):
    """What a child runs for one exercise: ``overlay(ns, plan, exercise)`` (the submission's
    code), then the self-checks, then the hidden tests."""
    def target(emit) -> None:
        ns = module.__dict__
        fatal = overlay(ns, p, exercise)
        if fatal:
            emit({"fatal": fatal})
            return
        ok = run_checks(ns, exercise, emit, stop_first=stop_first, first=first) if checks else True
        if hidden and exercise.hidden and (ok or not (stop_first or hidden_if_checks_pass)):
            run_hidden(module, p, exercise, emit, stop_first=stop_first)
    return target


def summarize(exercise: Exercise, child: ChildResult, *, hidden: bool, timeout: float,
              memory_mb: int | None) -> dict:
    """Points and reasons of one exercise from its child's events."""
    results, nodes, running, fatal, grader_errors = {}, {}, None, None, []
    stopped = next((ev for ev in child.events if "stopped" in ev), None)
    events = child.events[:child.events.index(stopped)] if stopped else child.events
    if stopped:
        running = stopped.get("during")
    for ev in events:
        if "fatal" in ev:
            fatal = ev["fatal"]
        elif "grader_error" in ev:
            grader_errors.append(ev["grader_error"])
        elif "start" in ev:
            running = ev["start"]
        elif "node" in ev:
            nodes.setdefault(ev["item"], []).append(ev)
            running = None
        elif "item" in ev:
            results[ev["item"]] = ev
            running = None
    for item, evs in nodes.items():
        failed = [e for e in evs if e["outcome"] == "failed"]
        if failed:
            case = failed[0]["node"].split("::")[-1]
            results[item] = {"ok": False, "reason": failed[0]["reason"] + (f" (case {case})" if "[" in case else ""),
                             "seconds": round(sum(e["seconds"] for e in evs), 3)}
        elif all(e["outcome"] == "skipped" for e in evs):
            results[item] = {"ok": None, "reason": "skipped: " + evs[0]["reason"]}
        else:
            results[item] = {"ok": True, "reason": "", "seconds": round(sum(e["seconds"] for e in evs), 3)}
    stop = None if child.end == "exit" and child.code == 0 else child.stop_reason(timeout, memory_mb)
    if stopped and not stop:
        stop = stopped["stopped"]
        running = stopped.get("during", running)
    crash_line = _crash_line(child.output) if child.end == "signal" else ""
    stopped_status = "timeout" if child.end == "timeout" or str(stop).startswith("time-out") else "crash"
    nothing = not results and not nodes
    items, points, maximum = [], 0.0, 0.0
    for item, worth in exercise.items(hidden):
        r = results.get(item)
        if fatal:
            status, reason = "fail", fatal
        elif stop and (item == running or (nothing and running is None)):
            status, reason = stopped_status, stop + crash_line
        elif r is not None and r.get("ok") is None:
            status, reason = "skipped", r["reason"]  # stays in the maximum: the report says why
        elif r is not None:
            status, reason = ("pass", "") if r["ok"] else ("fail", r["reason"])
        elif stop:
            status, reason = "not run", f"{stop}" + (f" during {running}" if running else "")
        elif grader_errors:
            status, reason = "grader error", grader_errors[0]
        else:
            status, reason = "not run", "the tests stopped at the first failure"
        got = worth if status == "pass" else 0.0
        points += got
        maximum += worth
        items.append({"item": item, "points": got, "max": worth, "status": status, "reason": reason,
                      "seconds": (r or {}).get("seconds")})
    return {"exercise": exercise.name, "functions": exercise.functions, "points": points, "max": maximum,
            "items": items, "seconds": round(child.seconds, 2), "output": child.output,
            "output_bytes": child.output_bytes, "grader_errors": grader_errors}


def _crash_line(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("Fatal Python error"):
            return f"; {line.strip()}"
    return ""


def answers_target(p: Plan, notebook: str):
    """A child's work: the student's written answers (markdown cells with a manual grade id)."""
    def target(emit) -> None:
        import nbformat

        try:
            nb = nbformat.read(notebook, as_version=4)
        except Exception as err:  # noqa: BLE001
            emit({"answers_error": f"the notebook cannot be read ({type(err).__name__})"})
            return
        markdown = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]
        for k, (index, grade_id, points, source) in enumerate(p.manual):
            hits = [c for _, c in markdown if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id]
            if not hits and len(nb.cells) > index and nb.cells[index].cell_type == "markdown":
                hits = [nb.cells[index]]
            text = hits[-1].source if hits else ""
            questions = source.count(MD_BEGIN_TEXT)
            emit({"answer": grade_id, "points": points, "text": text[:20000],
                  "unanswered": text.count(ANSWER_STUB[0]) if hits else questions,
                  "found": bool(hits)})
    return target
