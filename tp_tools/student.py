"""Generate student notebooks from solutions and check that they stay in sync.

In a solution notebook, code between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
becomes ``# YOUR CODE HERE`` / ``raise NotImplementedError("not written yet: ...")`` (same
indentation; the repository's ``nbgrader_config.py`` gives nbgrader the same stub);
in markdown cells, text between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->``
(or the ``###`` markers) becomes ``YOUR ANSWER HERE``. Outputs are dropped.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

from tp_utils.conventions import ANSWER_STUB, CODE_STUB, STUB_MESSAGE  # noqa: F401 - re-exported
from tp_utils.conventions import BEGIN as _BEGIN
from tp_utils.conventions import BEGIN_HIDDEN as _BEGIN_HIDDEN
from tp_utils.conventions import END as _END
from tp_utils.conventions import END_HIDDEN as _END_HIDDEN
MIN_SECRET_CHARS = 8  # shorter solution lines ("return x") are too common to count as leaks


def split_solution(source: str, markdown: bool = False) -> tuple[str, list[str]]:
    """``(student source, solution lines removed)`` for one cell's source.

    Hidden tests (``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``, nbgrader's markers) are
    removed with no stub; their lines count as removed too."""
    out, removed, indent, inside, hidden = [], [], "", False, False
    for line in source.splitlines():
        begin, end = _BEGIN.match(line), _END.match(line)
        if _BEGIN_HIDDEN.match(line) and not inside and not hidden:
            hidden = True
        elif _END_HIDDEN.match(line) and hidden:
            hidden = False
        elif hidden:
            removed.append(line)
        elif begin and not inside:
            inside, indent = True, begin.group(1)
            out += [indent + s for s in (ANSWER_STUB if markdown else CODE_STUB)]
        elif end and inside:
            inside = False
        elif end or begin:
            raise ValueError(f"unbalanced solution markers near: {line.strip()!r}")
        elif inside:
            removed.append(line)
        else:
            out.append(line)
    if inside or hidden:
        raise ValueError("a BEGIN SOLUTION marker has no END SOLUTION" if inside
                         else "a BEGIN HIDDEN TESTS marker has no END HIDDEN TESTS")
    # a final newline stays, as with nbgrader (which splits on "\n")
    return "\n".join(out) + ("\n" if source.endswith("\n") and out else ""), removed


def make_student(solution: nbformat.NotebookNode, source_name: str = "") -> nbformat.NotebookNode:
    """The student version of a solution notebook: stubs instead of solutions, no outputs."""
    nb = nbformat.v4.new_notebook(metadata={
        "kernelspec": solution.metadata.get("kernelspec", {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}),
        "language_info": {"name": "python"},
        "tp": {"generated_from": source_name, "edit": "do not edit: run `tp generate`"},
    })
    for cell in solution.cells:
        source, _ = split_solution(cell.source, markdown=cell.cell_type == "markdown")
        tags = cell.get("metadata", {}).get("tags", [])
        meta = {"tags": list(tags)} if tags else {}
        if "nbgrader" in cell.get("metadata", {}):  # so that nbgrader can grade the submissions
            meta["nbgrader"] = dict(cell.metadata["nbgrader"])
        if cell.cell_type == "code":
            nb.cells.append(nbformat.v4.new_code_cell(source, metadata=meta))
        elif cell.cell_type == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(source, metadata=meta))
        else:
            nb.cells.append(nbformat.v4.new_raw_cell(source, metadata=meta))
    for i, cell in enumerate(nb.cells):  # stable ids, so regenerating changes nothing
        cell["id"] = f"cell-{i}"
    return nb


def secret_lines(solution: nbformat.NotebookNode) -> set[str]:
    """Stripped solution-region lines that appear nowhere else in the solution notebook."""
    inside, outside = set(), set()
    for cell in solution.cells:
        student, removed = split_solution(cell.source, markdown=cell.cell_type == "markdown")
        inside.update(ln.strip() for ln in removed)
        outside.update(ln.strip() for ln in student.splitlines())
    return {ln for ln in inside - outside if len(ln.replace(" ", "")) >= MIN_SECRET_CHARS}


def find_leaks(student: nbformat.NotebookNode, solution: nbformat.NotebookNode) -> list[str]:
    """Solution lines that appear in the student notebook (sources and outputs)."""
    secrets = secret_lines(solution)
    text = nbformat.writes(student)  # outputs too (sources there are JSON-escaped, hence `seen`)
    seen = {ln.strip() for cell in student.cells for ln in cell.source.splitlines()}
    return sorted(s for s in secrets if s in seen or s in text)


def student_text(solution: nbformat.NotebookNode, name: str) -> str:
    """The file content of the student version of ``solutions/NAME``."""
    return nbformat.writes(make_student(solution, f"solutions/{name}")) + "\n"


def generate(solutions_dir: Path, notebooks_dir: Path) -> list[Path]:
    """Write ``notebooks_dir/NAME.ipynb`` for every ``solutions_dir/NAME.ipynb``, after bringing
    the solution's nbgrader metadata up to date (see :mod:`tp_tools.grading`)."""
    from tp_tools.grading import annotate

    Path(notebooks_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for sol in sorted(Path(solutions_dir).glob("*.ipynb")):
        solution = nbformat.read(sol, as_version=4)
        if annotate(solution):
            nbformat.write(solution, sol)
            written.append(sol)
        out = Path(notebooks_dir) / sol.name
        out.write_text(student_text(solution, sol.name), encoding="utf-8")
        written.append(out)
    return written


def check(solutions_dir: Path, notebooks_dir: Path) -> list[str]:
    """Problems found: student notebooks missing, stale, with outputs, or leaking solutions;
    solutions whose nbgrader metadata is stale."""
    from tp_tools.grading import metadata_problems

    problems = []
    solutions = {p.name: p for p in Path(solutions_dir).glob("*.ipynb")}
    students = {p.name: p for p in Path(notebooks_dir).glob("*.ipynb")}
    for name in sorted(set(students) - set(solutions)):
        problems.append(f"notebooks/{name} has no solution in solutions/")
    for name, sol_path in sorted(solutions.items()):
        if name not in students:
            problems.append(f"notebooks/{name} is missing: run `tp generate`")
            continue
        solution = nbformat.read(sol_path, as_version=4)
        on_disk = students[name].read_text(encoding="utf-8")
        student = nbformat.reads(on_disk, as_version=4)
        if on_disk != student_text(solution, name):
            problems.append(f"notebooks/{name} is out of date with solutions/{name}: run `tp generate`")
        with_outputs = [i for i, c in enumerate(student.cells)
                        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]
        if with_outputs:
            problems.append(f"notebooks/{name}: cells {with_outputs} hold outputs")
        for line in find_leaks(student, solution):
            problems.append(f"notebooks/{name} leaks a solution line: {line!r}")
        problems += metadata_problems(solution, name)
    return problems


# ---- answers shipped in the package -------------------------------------------------------
# Students have tp_utils' source: no exercise's answer may be found there. Lines are compared by
# their *shape* (identifiers renamed away, attribute names and keywords kept), so that renaming
# the variables of a copied function does not hide it.

def _shape(line: str) -> str | None:
    import io
    import keyword
    import tokenize

    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    out, previous = [], ""
    for tok in tokens:
        if tok.type == tokenize.NAME:
            out.append(tok.string if keyword.iskeyword(tok.string) or previous == "." else "v")
        elif tok.type == tokenize.STRING:
            out.append("s")
        elif tok.type == tokenize.NUMBER:
            out.append("n")
        elif tok.type == tokenize.OP:
            out.append(tok.string)
        previous = tok.string
    return " ".join(out) if len(out) >= 3 else None  # "pass", "return x": too common to count


def _shapes(lines) -> list[str]:
    return [s for s in (_shape(ln) for ln in lines if ln.strip() and not ln.strip().startswith("#"))
            if s is not None]


def _common(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two lists of line shapes."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _regions(source: str) -> list[list[str]]:
    regions, inside = [], False
    for line in source.splitlines():
        if _BEGIN.match(line):
            inside = True
            regions.append([])
        elif _END.match(line):
            inside = False
        elif inside:
            regions[-1].append(line)
    return regions


def solution_regions(solutions_dir: Path):
    """``(notebook path, cell index, region lines)`` of every solution region of the code cells
    of the notebooks of ``solutions_dir``, in order."""
    for sol in sorted(Path(solutions_dir).glob("*.ipynb")):
        nb = nbformat.read(sol, as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                for region in _regions(cell.source):
                    yield sol, i, region


MIN_SHARED_LINES = 4  # a region is reported when at least this many of its lines, and half of
                      # them, appear in that order in one module of the package


def shipped_answers(solutions_dir: Path, package_dir: Path) -> list[str]:
    """Solution regions whose code also stands in the package (same line shapes, same order)."""
    modules = {p.name: _shapes(p.read_text(encoding="utf-8").splitlines())
               for p in sorted(Path(package_dir).glob("*.py"))}
    problems = []
    for sol, i, region in solution_regions(solutions_dir):
        shapes = _shapes(region)
        for module, package in modules.items():
            shared = _common(shapes, package)
            if shared >= MIN_SHARED_LINES and shared >= len(shapes) / 2:
                problems.append(f"solutions/{sol.name} cell {i}: {shared} of the {len(shapes)} "
                                f"lines of a solution region also stand in tp_utils/{module}")
    return problems
