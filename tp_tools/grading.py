"""nbgrader cell metadata for the solution notebooks, derived from their structure.

nbgrader needs to know the role of each cell; the course's notebooks say it already:

- a code cell with a ``### BEGIN SOLUTION`` region is an **autograded answer** (the student's code);
- a markdown cell with ``<!-- BEGIN SOLUTION -->`` regions is a **manually graded answer**
  (one point per question);
- a code cell that calls ``tp.checks.check_*``, or the first code cell after an answer when it
  asserts, is an **autograder test** (read-only, one point; ``### BEGIN HIDDEN TESTS`` /
  ``### END HIDDEN TESTS`` hide part of it from students);
- every other cell carries no nbgrader metadata.

:func:`annotate` writes that metadata (``tp generate`` runs it on every solution notebook), and
:func:`metadata_problems` reports cells whose stored metadata disagrees (``tp check``). The points
follow from the structure (one per check cell, one per question), so that they stay right when a
question or a check is added.
"""
from __future__ import annotations

import re

import nbformat

SCHEMA_VERSION = 3
from tp_utils.conventions import CODE_REGION as _CODE_REGION
from tp_utils.conventions import DEF as _DEF
from tp_utils.conventions import MD_REGION as _MD_REGION
_CHECK = re.compile(r"\btp\.checks\.check_\w+\(")
_ASSERT = re.compile(r"^\s*assert\b", re.M)


def cell_roles(nb: nbformat.NotebookNode) -> list[tuple[str | None, str | None, int]]:
    """For each cell: ``(role, grade_id, points)``; role is "solution", "manual", "tests" or None."""
    roles, last_exercise, previous_code_role, answers, checks = [], "start", None, 0, {}
    for cell in nb.cells:
        src = cell.source
        role = grade_id = None
        points = 0
        if cell.cell_type == "code" and _CODE_REGION.search(src):
            names = _DEF.findall(src)
            last_exercise = names[0] if names else f"cell{len(roles)}"
            role, grade_id = "solution", f"answer-{last_exercise}"
        elif cell.cell_type == "markdown" and _MD_REGION.search(src):
            answers += 1
            role, grade_id, points = "manual", f"written-{answers}", len(_MD_REGION.findall(src))
        elif cell.cell_type == "code" and (_CHECK.search(src) or
                                           (previous_code_role == "solution" and _ASSERT.search(src))):
            checks[last_exercise] = checks.get(last_exercise, 0) + 1
            role, grade_id, points = "tests", f"check-{last_exercise}-{checks[last_exercise]}", 1
        if cell.cell_type == "code":
            previous_code_role = role
        roles.append((role, grade_id, points))
    return roles


def _metadata(role: str, grade_id: str, points: int) -> dict:
    md = {"grade": role in ("manual", "tests"), "grade_id": grade_id, "locked": role == "tests",
          "schema_version": SCHEMA_VERSION, "solution": role in ("solution", "manual"), "task": False}
    if md["grade"]:
        md["points"] = points
    return md


def annotate(nb: nbformat.NotebookNode) -> bool:
    """Write nbgrader metadata into ``nb``'s cells (in place); True if anything changed."""
    changed = False
    for cell, (role, grade_id, points) in zip(nb.cells, cell_roles(nb)):
        old = cell.metadata.get("nbgrader")
        if role is None:
            if old is not None:
                del cell.metadata["nbgrader"]
                changed = True
            continue
        new = _metadata(role, grade_id, points)
        if old != new:
            cell.metadata["nbgrader"] = new
            changed = True
    return changed


def metadata_problems(nb: nbformat.NotebookNode, name: str) -> list[str]:
    """Cells whose nbgrader metadata is missing or disagrees with their role."""
    copy = nbformat.from_dict(nb)
    copy.cells = [nbformat.from_dict(c) for c in nb.cells]
    if not annotate(copy):
        return []
    stale = [i for i, (a, b) in enumerate(zip(nb.cells, copy.cells))
             if a.metadata.get("nbgrader") != b.metadata.get("nbgrader")]
    return [f"solutions/{name}: nbgrader metadata of cells {stale[:8]} is missing or stale: run `tp generate`"]
