"""The reports of ``tp grade``: grades.csv, grades.md, details.csv, answers.md, details.json."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from tp_tools.child import KEEP_OUTPUT
from tp_tools.plans import HIDDEN_PREFIX


def _fmt(x: float) -> str:
    return f"{x:g}"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _answered(a: dict, nb: dict) -> int:
    """Questions answered: the solution's regions, less the stubs left in the student's cells."""
    return sum(max(0, q - x["unanswered"]) for q, x in zip(nb["questions"], a["answers"]))


def write_reports(data: dict, out: Path):
    out = Path(out)
    notebooks, students = data["notebooks"], data["students"]
    columns = [(nn, ex["name"], ex["max"]) for nn, nb in notebooks.items() for ex in nb["exercises"]]

    def record(s: str, nn: str, name: str):
        return data["grades"].get(f"{s}|{nn}", {}).get(name)

    # grades.csv: one row per student, the maxima first
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student"] + [f"{nn}:{name}" for nn, name, _ in columns]
                   + [f"{nn}:total" for nn in notebooks] + [f"{nn}:written answered" for nn in notebooks]
                   + ["total"])
        w.writerow(["(maximum)"] + [_fmt(m) for _, _, m in columns]
                   + [_fmt(sum(e["max"] for e in nb["exercises"])) for nb in notebooks.values()]
                   + [_fmt(sum(nb["questions"])) for nb in notebooks.values()]
                   + [_fmt(sum(m for _, _, m in columns))])
        for s in students:
            pts = [record(s, nn, name) for nn, name, _ in columns]
            totals = [sum((record(s, nn, e["name"]) or {}).get("points", 0) for e in nb["exercises"])
                      for nn, nb in notebooks.items()]
            written = []
            for nn, nb in notebooks.items():
                a = data["answers"].get(f"{s}|{nn}")
                written.append("" if a is None else _fmt(_answered(a, nb)))
            w.writerow([s] + [_fmt(r["points"]) if r else "" for r in pts] + [_fmt(t) for t in totals]
                       + written + [_fmt(sum(totals))])
    # details.csv: one row per check or hidden test
    with open(out / "details.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "notebook", "exercise", "item", "points", "max", "status", "reason", "seconds"])
        for s in students:
            for nn, name, _ in columns:
                r = record(s, nn, name)
                for it in (r or {}).get("items", []):
                    w.writerow([s, nn, name, it["item"], _fmt(it["points"]), _fmt(it["max"]), it["status"],
                                it["reason"], "" if it["seconds"] is None else it["seconds"]])
    # grades.md
    lines = ["# Grades", "", f"{len(students)} students, graded in {data.get('seconds', 0):.0f} s "
             f"(limits per exercise: {data.get('timeout', 0):g} s, {data.get('memory')} MB). "
             "Points: one per self-check cell (taken from the solution notebook) and one per hidden "
             "test. Written answers are in `answers.md`, for a person to grade.", ""]
    for e in data.get("errors", []):
        lines.append(f"**GRADER ERROR**: {_md(e)[:500]}")
    for wmsg in data.get("warnings", []):
        lines.append(f"- warning: {_md(wmsg)}")
    lines += ["", "## Totals", "", "| student | " + " | ".join(f"{nn}" for nn in notebooks) + " | total |",
              "|---|" + "---:|" * (len(notebooks) + 1)]
    for s in students:
        totals = [sum((record(s, nn, e["name"]) or {}).get("points", 0) for e in nb["exercises"])
                  for nn, nb in notebooks.items()]
        lines.append(f"| {_md(s)} | " + " | ".join(_fmt(t) for t in totals) + f" | {_fmt(sum(totals))} |")
    lines.append("| *maximum* | " + " | ".join(_fmt(sum(e["max"] for e in nb["exercises"])) for nb in notebooks.values())
                 + f" | {_fmt(sum(m for _, _, m in columns))} |")
    for nn, nb in notebooks.items():
        exs = nb["exercises"]
        lines += ["", f"## {nb['stem']}", "", "| student | " + " | ".join(f"{e['name']} (/{_fmt(e['max'])})" for e in exs)
                  + " | total | written answered |", "|---|" + "---:|" * (len(exs) + 2)]
        for s in students:
            cells = []
            for e in exs:
                r = record(s, nn, e["name"])
                cells.append("" if r is None else _fmt(r["points"]))
            a = data["answers"].get(f"{s}|{nn}")
            written = "" if a is None else f"{_fmt(_answered(a, nb))}/{_fmt(sum(nb['questions']))}"
            total = sum((record(s, nn, e["name"]) or {}).get("points", 0) for e in exs)
            lines.append(f"| {_md(s)} | " + " | ".join(cells) + f" | {_fmt(total)} | {written} |")
        counts = ", ".join(f"`{e['name']}` {n}" for e in exs for n in [nb.get("hidden", {}).get(e["name"], 0)])
        lines.append(f"\nHidden tests per exercise: {counts}. A hidden test skipped (an optional package "
                     "missing on the grading machine) counts in the maximum and is listed below: install "
                     "the package and grade again.")
        for prob in nb.get("problems", []):
            lines.append(f"\n- grading note: {_md(prob)}")
    lines += ["", "## Why points were lost", ""]
    for s in students:
        lost = []
        for nn, name, _ in columns:
            r = record(s, nn, name)
            not_run = 0
            for it in (r or {}).get("items", []):
                if it["status"] == "not run":
                    not_run += 1
                elif it["status"] != "pass":
                    lost.append(f"  - {nn} `{name}` {it['item'].replace(HIDDEN_PREFIX, 'hidden ')}: "
                                f"{it['status']}: {_md(it['reason'])}")
            if not_run:
                lost.append(f"  - {nn} `{name}`: {not_run} more test(s) not run (the process had stopped)")
            if r and r.get("output_bytes", 0) > 2 * KEEP_OUTPUT:
                lost.append(f"  - {nn} `{name}`: printed {r['output_bytes']:,} bytes (truncated in details.json)")
        if lost:
            lines += [f"- **{_md(s)}**"] + lost
    (out / "grades.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # answers.md
    lines = ["# Written answers", "", "For a person to read and grade (each heading gives the points "
             "of its cell, from its nbgrader metadata).", ""]
    for nn, nb in notebooks.items():
        for k, (grade_id, pts) in enumerate(nb["manual"]):
            lines += [f"## {nb['stem']}: {grade_id} ({_fmt(pts)} points)", ""]
            for s in students:
                a = data["answers"].get(f"{s}|{nn}")
                if a is None:
                    lines += [f"### {s}", "", "*(notebook not submitted or not readable)*", ""]
                    continue
                ans = next((x for x in a["answers"] if x["answer"] == grade_id), None)
                if ans is None or not ans["found"]:
                    lines += [f"### {s}", "", "*(answer cell not found)*", ""]
                    continue
                note = f" — {ans['unanswered']} question(s) unanswered" if ans["unanswered"] else ""
                lines += [f"### {s}{note}", ""] + ["> " + ln for ln in ans["text"].splitlines()] + [""]
    (out / "answers.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "details.json").write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
