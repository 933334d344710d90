"""``tp grade``: grade a folder of submissions without nbgrader, each exercise in its own process.

What is graded
--------------
The solution notebook says it (:func:`tp_tools.grading.cell_roles`): an **exercise** is a
solution cell (``### BEGIN SOLUTION``) and the function(s) it defines; its **self-checks** are the
test cells whose grade id is ``check-<exercise>-<k>`` (one point each, or the points in their
nbgrader metadata), always taken from the *solution* notebook, so that a student who edited a
check gains nothing; its **hidden tests** are the pytest tests of ``tests/test_notebook*.py`` and
``tests/mutations/nb*.py`` that call one of the exercise's functions on a fixture loading
``solutions/<notebook>.ipynb`` with :func:`tp_utils.notebook.load_exports` (:func:`tp_tools.plans.hidden_tests`:
module-level path constants resolved, through fixtures and helpers; one point per test function,
all its parametrizations must pass; a test skipped for a missing optional package stays in the
maximum and the report says so). Written answers (markdown cells with
``<!-- BEGIN SOLUTION -->`` regions) are collected for a person to read.

How an exercise runs
--------------------
For each notebook, a worker process (one Python that imports torch once) runs the solution's
``export`` cells and the few other cells the self-checks need (a dependency slice found with
``ast``: for each free name of a check cell, the last earlier cell that binds it, recursively),
with the reference functions. Then, for each student and exercise, it forks a child that takes
over that state copy-on-write and

1. runs the student's ``export`` cells that hold no exercise (imports) and their untagged cells
   made only of imports, function and class definitions (helpers), tolerating errors there;
2. runs the student's cell of this exercise (found by its grade id ``answer-<exercise>``, else by
   the ``def`` of its first function): the student's functions replace the reference ones for
   this exercise only, every other exercise keeps the reference version, so that one mistake
   costs points once;
3. runs the self-checks, then the hidden tests (pytest, in the same child, with
   ``load_exports`` of this notebook answering the student's module).

The child has a wall-clock limit (``--timeout``, killed with its process group when over), a
memory limit (``RLIMIT_AS`` = what the worker had already mapped + ``--memory`` MB), no core dumps,
a 256 MB file-size limit, stdin from /dev/null, and its stdout/stderr go to a pipe of which the
worker keeps the first and last 2,000 bytes. Whatever a submission does (crash the interpreter,
loop forever, print megabytes, exhaust memory, call ``sys.exit``), it ends that child only: the
items already passed keep their points, the others get the reason. Grading runs on the CPU
(a forked child cannot use its parent's GPU context) with one thread per process
(``--jobs`` processes in parallel), seeded with ``tp.seed_everything(0)`` before the checks, and
with ``TP_ANSWERS_DIR`` set to the solutions, so that a later notebook is graded alone.

Requires a POSIX system (``os.fork``, ``resource``): Linux or macOS (where the memory limit is not
enforced by the kernel); on Windows use WSL or nbgrader.

Where the code is
-----------------
This module is the command: it finds the submissions, starts one worker per notebook and collects
their results into the reports. :mod:`tp_tools.cells` (a cell's code, the names it uses and binds,
the dependency slice), :mod:`tp_tools.plans` (the plan: exercises, checks, hidden tests),
:mod:`tp_tools.child` (a forked child with its limits), :mod:`tp_tools.worker` (the worker process
and its reference state), :mod:`tp_tools.checking` (inside a child: one exercise, its points),
:mod:`tp_tools.submissions` (the folder's layouts), :mod:`tp_tools.reports` (the files written);
:mod:`tp_tools.sandbox`, :mod:`tp_tools.proxy` and :mod:`tp_tools.harness` keep the submission
apart from the grader.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tp_utils.conventions import MD_BEGIN_TEXT
from tp_tools.child import _kill_group
from tp_tools.plans import Exercise, plan
from tp_tools.reports import _fmt, write_reports
from tp_tools.submissions import find_submissions

ROOT = Path(__file__).resolve().parents[1]


def _spawn(spec: dict, workdir: Path, solutions: Path):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               TQDM_DISABLE="1", MPLBACKEND="Agg", CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0",
               TP_ANSWERS_DIR=str(solutions), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    path = workdir / f"spec-{spec['id']}.json"
    path.write_text(json.dumps(spec))
    log = open(workdir / f"worker-{spec['id']}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "tp_tools.worker", "--worker", str(path)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            cwd=workdir, start_new_session=True)
    return proc, log


def grade(submissions, out, *, solutions=None, tests=None, notebooks=None, timeout: float = 600,
          memory: int | None = 4096, jobs: int = 1, hidden: bool = True, quick: bool = False,
          sandbox: bool = True, echo=print) -> dict:
    """Grade every submission in ``submissions``; write the reports to ``out``; return the data."""
    solutions = Path(solutions or ROOT / "solutions").resolve()
    tests = Path(tests or solutions.parent / "tests").resolve()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    references = {p.name[:2]: p for p in sorted(solutions.glob("[0-9][0-9]_*.ipynb"))}
    found, warnings = find_submissions(submissions, set(references))
    wanted = sorted(notebooks or {nn for per in found.values() for nn in per})
    unknown = [nn for nn in wanted if nn not in references]
    if unknown:
        raise ValueError(f"no solution notebook for {', '.join(unknown)} in {solutions}")
    plans = {nn: plan(references[nn], tests if hidden else None, quick=quick) for nn in wanted}
    for w in warnings:
        echo(f"warning: {w}")
    if sandbox:
        from tp_tools.sandbox import isolation

        echo(f"submissions run in a sandbox: {isolation()}")
    else:
        echo("warning: --unsandboxed: submissions run in the grader's processes (trusted code only)")
    for nn, p in plans.items():
        for ex in p.exercises:
            echo(f"{p.stem[:2]} {ex.name}: {len(ex.checks)} self-check(s), {len(ex.hidden)} hidden test(s)"
                 + ("" if ex.hidden or not hidden else "  (warning: no hidden test calls it)"))
    students = sorted(found)
    echo(f"grading {len(students)} students on notebook(s) {', '.join(wanted)} "
         f"(limits: {timeout:g} s and {memory} MB per exercise, {jobs} process(es) at a time)")
    records, missing_records = [], []
    specs = []
    workdir = Path(tempfile.mkdtemp(prefix="tp-grade-run-"))
    for nn in wanted:
        todo = [(s, str(found[s][nn].resolve())) for s in students if nn in found[s]]
        for s in students:
            if nn not in found[s]:
                missing_records.append((s, nn))
        # one worker per notebook when there are enough notebooks to keep `jobs` busy (each worker
        # pays for torch and the setup cells once), else the students split between `jobs` workers
        n_chunks = 1 if len(wanted) >= jobs else max(1, jobs)
        chunks = [todo[k::n_chunks] for k in range(n_chunks)]
        for chunk in (c for c in chunks if c):
            specs.append({"id": len(specs), "solution": str(references[nn]), "tests": str(tests),
                          "students": chunk, "timeout": timeout, "memory": memory, "hidden": hidden,
                          "quick": quick, "sandbox": sandbox,
                          "threads": max(1, (os.cpu_count() or 1) // max(1, jobs)),
                          "results": str(workdir / f"results-{len(specs)}.jsonl"), "notebook": nn})
    start = time.monotonic()
    running, queue, offsets = [], list(specs), {}
    while queue or running:
        while queue and len(running) < max(1, jobs):
            spec = queue.pop(0)
            n_ex = len(plans[spec["notebook"]].exercises)
            budget = 900 + len(spec["students"]) * (n_ex * (timeout + 30) + 90)
            proc, log = _spawn(spec, workdir, solutions)
            running.append((spec, proc, log, time.monotonic() + budget))
        time.sleep(0.2)
        for entry in list(running):
            spec, proc, log, deadline = entry
            done = proc.poll() is not None
            if not done and time.monotonic() > deadline:
                _kill_group(proc.pid)
                proc.wait()
                done = True
                records.append({"worker_error": f"the worker for notebook {spec['notebook']} ran past its "
                                                f"budget and was stopped", "spec": spec["id"]})
            new = _read_new(Path(spec["results"]), offsets)
            for rec in new:
                rec["spec"] = spec["id"]
                records.append(rec)
                if "exercise" in rec:
                    echo(f"  {rec['student']:20s} {rec['notebook'][:2]} {rec['exercise']:24s} "
                         f"{_fmt(rec['points'])}/{_fmt(rec['max'])}  {rec['seconds']:6.1f} s")
            if done:
                log.close()
                if proc.returncode != 0 and not any("setup_error" in r for r in records if r.get("spec") == spec["id"]):
                    tail = (workdir / f"worker-{spec['id']}.log").read_text(errors="replace")[-1500:]
                    records.append({"worker_error": f"the worker for notebook {spec['notebook']} ended with "
                                                    f"status {proc.returncode}: {tail}", "spec": spec["id"]})
                running.remove(entry)
    seconds = time.monotonic() - start
    data = _collect(records, plans, students, missing_records, specs, hidden)
    data.update(seconds=round(seconds, 1), warnings=warnings, timeout=timeout, memory=memory)
    write_reports(data, out)
    shutil.rmtree(workdir, ignore_errors=True)
    echo(f"graded in {seconds:.0f} s; reports in {out}: grades.csv, grades.md, details.csv, answers.md, details.json")
    return data


def _read_new(path: Path, offsets: dict) -> list:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        f.seek(offsets.get(path, 0))
        text = f.read()
        complete = text[:text.rfind("\n") + 1]
        offsets[path] = offsets.get(path, 0) + len(complete.encode("utf-8"))
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def _collect(records, plans, students, missing_records, specs, hidden) -> dict:
    """Everything the reports show: one entry per student, notebook and exercise."""
    grades = {}  # (student, NN) -> {exercise: record}
    answers = {}
    errors = [r for r in records if "setup_error" in r or "worker_error" in r]
    by_spec = {s["id"]: s for s in specs}
    for r in records:
        if "exercise" in r:
            grades.setdefault((r["student"], r["notebook"][:2]), {})[r["exercise"]] = r
        elif "answers" in r:
            answers[(r["student"], r["notebook"][:2])] = r
    for r in errors:  # every student of a failed worker gets the reason, not a silent zero
        spec = by_spec.get(r.get("spec"))
        if spec is None:
            continue
        reason = "GRADER ERROR: " + (r.get("setup_error") or r.get("worker_error"))[:300]
        for student, _ in spec["students"]:
            for ex in plans[spec["notebook"]].exercises:
                grades.setdefault((student, spec["notebook"]), {}).setdefault(ex.name, _absent(ex, hidden, reason, "grader error"))
    for student, nn in missing_records:
        for ex in plans[nn].exercises:
            grades.setdefault((student, nn), {})[ex.name] = _absent(ex, hidden, "notebook not submitted", "missing")
    return {"students": students, "notebooks": {nn: {"stem": p.stem, "exercises": [
        {"name": ex.name, "functions": ex.functions, "max": sum(w for _, w in ex.items(hidden)),
         "items": ex.items(hidden)} for ex in p.exercises], "manual": [(g, pts) for _, g, pts, _ in p.manual],
        "questions": [src.count(MD_BEGIN_TEXT) for _, _, _, src in p.manual],
        "hidden": {ex.name: len(ex.hidden) if hidden else 0 for ex in p.exercises},
        "problems": p.problems} for nn, p in plans.items()},
        "grades": {f"{s}|{nn}": v for (s, nn), v in grades.items()},
        "answers": {f"{s}|{nn}": v for (s, nn), v in answers.items()},
        "errors": [r.get("setup_error") or r.get("worker_error") for r in errors]}


def _absent(ex: Exercise, hidden: bool, reason: str, status: str) -> dict:
    items = [{"item": i, "points": 0.0, "max": w, "status": status, "reason": reason, "seconds": None}
             for i, w in ex.items(hidden)]
    return {"exercise": ex.name, "functions": ex.functions, "points": 0.0,
            "max": sum(w for _, w in ex.items(hidden)), "items": items, "seconds": 0.0, "output": "",
            "output_bytes": 0, "grader_errors": []}


def main_from_args(args, root: Path | None = None) -> int:
    root = Path(root or ROOT)
    data = grade(args.submissions, args.out, solutions=args.solutions or root / "solutions",
                 tests=args.tests or root / "tests", notebooks=args.notebooks, timeout=args.timeout,
                 memory=args.memory or None, jobs=args.jobs, hidden=not args.no_hidden,
                 quick=getattr(args, "quick", False), sandbox=not getattr(args, "unsandboxed", False))
    return 1 if data["errors"] else 0
