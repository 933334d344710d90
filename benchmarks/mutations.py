"""Planted mistakes: how many of them the self-checks and the grader catch.

The catalogue, ``tests/mutations/nbNN.py``, lists for notebook NN plausible wrong answers as
``(function, what is wrong, code)``: the code replaces the solution region of that function in the
solution's exercise cell. Each file also holds hidden tests (pytest) that ``tp grade`` runs, for
the mistakes a self-check cannot see.

Nothing runs a whole notebook. For each notebook, this process runs once the solution's export
cells and the cells the self-checks need (``tp_tools.worker.build_base``: a dependency slice found
with ``ast``); then each mutant runs in a forked child that re-defines the exercise's functions
with the mutant's code and runs (a) the notebook's self-check cells of that exercise, stopping at
the first failure, and (b) if they all pass, ``tp grade``'s hidden tests of that exercise (those of
the catalogue first, then, with ``--all-hidden``, those of ``tests/test_notebook*.py``). Before the
mutants, the solution itself goes through the same checks and hidden tests: it must pass them all.

    python benchmarks/mutations.py                  # every notebook with a catalogue
    python benchmarks/mutations.py --notebooks 03 04 --jobs 2 --json mutations.json
    python benchmarks/mutations.py --full           # (b) for every mutant, all hidden tests

Prints, per notebook, the mutants caught by the self-checks and by the grader, and the ones that
slip through the self-checks (bugs in the checks: notebook, check cell, mistake and its code).
A new notebook is one new file ``tests/mutations/nbNN.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "tests" / "mutations"
sys.path.insert(0, str(ROOT))
from tp_utils.conventions import CODE_BEGIN as _BEGIN  # noqa: E402
from tp_utils.conventions import CODE_END as _END  # noqa: E402


def load_catalogue(path: Path) -> list[dict]:
    """The ``MUTANTS`` list of a catalogue file (run as a script: it may build its mutants)."""
    import runpy

    mutants = runpy.run_path(str(path)).get("MUTANTS")
    if mutants is None:
        raise ValueError(f"{path} has no MUTANTS list")
    return [{"function": f, "name": n, "code": c} for f, n, c in mutants]


def apply_mutant(source: str, function: str, code: str) -> str:
    """``source`` (an exercise cell) with the solution region of ``function`` replaced by ``code``."""
    lines = source.splitlines()
    start = next((i for i, ln in enumerate(lines) if re.match(rf"def {re.escape(function)}\(", ln)), None)
    if start is None:
        raise ValueError(f"the cell defines no function {function}")
    begin = next((i for i in range(start + 1, len(lines)) if _BEGIN.match(lines[i])), None)
    if begin is None or any(re.match(r"def \w+\(", ln) for ln in lines[start + 1:begin]):
        raise ValueError(f"{function} has no solution region")
    end = next(i for i in range(begin + 1, len(lines)) if _END.match(lines[i]))
    indent = _BEGIN.match(lines[begin]).group(1)
    body = textwrap.indent(textwrap.dedent(code).strip("\n"), indent).splitlines()
    return "\n".join(lines[:begin + 1] + body + lines[end:])


def _caught(summary: dict) -> tuple[bool, str]:
    bad = [it for it in summary["items"] if it["status"] in ("fail", "timeout", "crash")]
    if not bad:
        return False, ""
    it = bad[0]
    return True, f"{it['item']}: {it['reason']}"


def run_notebook(nn: str, solution: Path, *, full: bool, all_hidden: bool, jobs: int, timeout: float,
                 echo=print) -> dict:
    from tp_tools import checking, child as children, plans, worker

    p = plans.plan(solution, ROOT / "tests")
    catalogue = CATALOGUE / f"nb{nn}.py"
    report = {"notebook": p.stem, "mutants": 0, "caught_by_checks": 0, "caught_by_grader": 0,
              "slips": [], "escapes": [], "invalid": [], "results": [], "reference_failures": [], "problems": p.problems}
    if not catalogue.exists():
        report["problems"].append(f"no catalogue: write tests/mutations/nb{nn}.py")
        return report
    for ex in p.exercises:  # the catalogue's hidden tests, and with --all-hidden those of tests/ too
        ex.hidden = [h for h in ex.hidden if all_hidden or Path(h.path).parent == CATALOGUE]
    start = time.monotonic()
    module = worker.build_base(p)
    worker.preimport_for_hidden(p)
    setup_seconds = time.monotonic() - start
    mutants = load_catalogue(catalogue)
    limits = {"timeout": timeout, "memory_mb": 4096}

    # the solution itself must pass every check and hidden test
    t = time.monotonic()
    targets = [checking.exercise_target(module, p, ex, checking.overlay_source(ex.source, f"solution {ex.name}"))
               for ex in p.exercises]
    for ex, child in zip(p.exercises, children.run_many(targets, jobs=jobs, **limits)):
        summary = checking.summarize(ex, child, hidden=True, timeout=timeout, memory_mb=4096)
        for it in summary["items"]:
            if it["status"] not in ("pass", "skipped"):
                report["reference_failures"].append(f"{ex.name} {it['item']}: {it['status']}: {it['reason']}")
    report["reference_seconds"] = round(time.monotonic() - t, 1)

    # (a) the self-checks, stopping at the first failure
    jobs_a, cases = [], []
    for m in mutants:
        try:
            ex = p.exercise(m["function"])
            source = apply_mutant(ex.source, m["function"], m["code"])
        except (KeyError, ValueError, StopIteration) as err:
            report["invalid"].append({**m, "reason": str(err)})
            continue
        if source == ex.source:
            report["invalid"].append({**m, "reason": "the mutant is the solution"})
            continue
        cases.append((m, ex, source))
        jobs_a.append(checking.exercise_target(module, p, ex, checking.overlay_source(source), hidden=False,
                                            stop_first=True, first=[m["function"]]))
    t = time.monotonic()
    results_a = children.run_many(jobs_a, jobs=jobs, **limits)
    report["checks_seconds"] = round(time.monotonic() - t, 1)
    jobs_b, pending = [], []
    for (m, ex, source), child in zip(cases, results_a):
        summary = checking.summarize(ex, child, hidden=False, timeout=timeout, memory_mb=4096)
        fatal = next((e["fatal"] for e in child.events if "fatal" in e), None)
        if fatal:
            report["invalid"].append({**m, "reason": fatal})
            continue
        caught, why = _caught(summary)
        if "NameError" in why:  # a plausible mistake does not use unknown names: a stale catalogue
            report["invalid"].append({**m, "reason": f"stale mutant? {why}"})
            continue
        m = {**m, "exercise": ex.name, "caught_by_checks": caught, "why_checks": why,
             "checks": [f"cell {c.index} ({c.grade_id})" for c in ex.checks]}
        if caught and not full:
            m.update(caught_by_grader=True, why_grader=why)
            pending.append((m, None))
            continue
        pending.append((m, len(jobs_b)))
        jobs_b.append(checking.exercise_target(module, p, ex, checking.overlay_source(source), checks=False,
                                            stop_first=not full))
    # (b) the grader's hidden tests
    t = time.monotonic()
    results_b = children.run_many(jobs_b, jobs=jobs, **limits) if jobs_b else []
    report["hidden_seconds"] = round(time.monotonic() - t, 1)
    for m, k in pending:
        if k is not None:
            ex = p.exercise(m["exercise"])
            summary = checking.summarize(ex, results_b[k], hidden=True, timeout=timeout, memory_mb=4096)
            hidden_items = {"items": [it for it in summary["items"] if it["item"].startswith(plans.HIDDEN_PREFIX)]}
            caught_hidden, why = _caught(hidden_items)
            m.update(caught_by_hidden=caught_hidden, why_hidden=why,
                     caught_by_grader=m["caught_by_checks"] or caught_hidden,
                     why_grader=m["why_checks"] or why)
        report["mutants"] += 1
        report["results"].append({k: m[k] for k in ("function", "name", "caught_by_checks", "caught_by_grader",
                                                     "why_grader")})
        report["caught_by_checks"] += m["caught_by_checks"]
        report["caught_by_grader"] += m["caught_by_grader"]
        if not m["caught_by_checks"]:
            report["slips"].append(m)
        if not m["caught_by_grader"]:
            report["escapes"].append(m)
    report["seconds"] = round(time.monotonic() - start, 1)
    report["setup_seconds"] = round(setup_seconds, 1)
    echo(f"{nn} {p.stem:28s} {report['mutants']:3d} mutants: self-checks caught {report['caught_by_checks']:3d}"
         f" ({_pct(report['caught_by_checks'], report['mutants'])}), grader {report['caught_by_grader']:3d}"
         f" ({_pct(report['caught_by_grader'], report['mutants'])})   [{report['seconds']:.0f} s]")
    return report


def _pct(a, b) -> str:
    return f"{100 * a / b:5.1f} %" if b else "  -  "


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", nargs="+", metavar="NN", help="default: every solution notebook")
    parser.add_argument("--full", action="store_true",
                        help="run the hidden tests for every mutant, not only for those the self-checks miss "
                             "(implies --all-hidden)")
    parser.add_argument("--all-hidden", action="store_true",
                        help="hidden tests of tests/test_notebook*.py too, not only the catalogue's")
    parser.add_argument("--jobs", type=int, default=2, help="children at a time (default: 2)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mutant (default: 600)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # before torch: forked children hang on a parent's thread pool
    os.environ.update(CUDA_VISIBLE_DEVICES="", TQDM_DISABLE="1", MPLBACKEND="Agg")
    os.environ.setdefault("TP_ANSWERS_DIR", str(ROOT / "solutions"))
    from tp_tools import worker

    worker.prepare_process()
    solutions = {p.name[:2]: p for p in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))}
    wanted = args.notebooks or sorted(solutions)
    reports = {}
    start = time.monotonic()
    for nn in wanted:
        reports[nn] = run_notebook(nn, solutions[nn], full=args.full, all_hidden=args.all_hidden or args.full,
                                   jobs=args.jobs, timeout=args.timeout)
    total = {k: sum(r[k] for r in reports.values()) for k in ("mutants", "caught_by_checks", "caught_by_grader")}
    print(f"all {total['mutants']:3d} mutants: self-checks caught {total['caught_by_checks']} "
          f"({_pct(total['caught_by_checks'], total['mutants'])}), grader {total['caught_by_grader']} "
          f"({_pct(total['caught_by_grader'], total['mutants'])}) in {time.monotonic() - start:.0f} s")
    for nn, r in reports.items():
        for prob in r["problems"]:
            print(f"  {nn}: {prob}")
        for f in r["reference_failures"]:
            print(f"  {nn}: THE SOLUTION FAILS {f}")
        for m in r["invalid"]:
            print(f"  {nn}: invalid mutant {m['function']} '{m['name']}': {m['reason']}")
        for m in r["slips"]:
            print(f"  {nn} slips through the self-check {', '.join(m['checks'])} of `{m['exercise']}`: "
                  f"{m['function']}: {m['name']}" + ("" if m["caught_by_grader"] else "  (AND THE GRADER)")
                  + (f"\n      grader: {m['why_grader']}" if m.get("why_grader") else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"notebooks": reports, "total": total}, indent=1))
    bad = any(r["reference_failures"] or r["invalid"] or r["escapes"] for r in reports.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
