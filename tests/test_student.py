"""The student-notebook generator and the sync / output / leak check."""
import json
import textwrap
from pathlib import Path

import nbformat
import pytest

from tp_tools import student
from tp_utils.cli import main

ROOT = Path(__file__).resolve().parents[1]

SOLUTION_CODE = """def double(x):
    \"\"\"Twice x.\"\"\"
    ### BEGIN SOLUTION
    result = x + x  # the secret
    return result
    ### END SOLUTION
"""


def make_solution():
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell(SOLUTION_CODE, metadata={"tags": ["export"]})
    code.outputs = [nbformat.v4.new_output("stream", text="hello\n")]
    code.execution_count = 3
    md = nbformat.v4.new_markdown_cell("**Q1.** Why?\n\n<!-- BEGIN SOLUTION -->\nBecause of ReLU sparsity.\n<!-- END SOLUTION -->")
    nb.cells = [code, md]
    return nb


def test_markers_are_replaced_by_stubs():
    stu = student.make_student(make_solution())
    code, md = stu.cells
    assert "x + x" not in code.source and "### BEGIN" not in code.source
    assert "    # YOUR CODE HERE\n    raise NotImplementedError(\"not written yet: " in code.source
    assert '"""Twice x."""' in code.source
    assert code.outputs == [] and code.execution_count is None
    assert code.metadata["tags"] == ["export"]
    assert "ReLU sparsity" not in md.source and "YOUR ANSWER HERE" in md.source


def test_unbalanced_markers_are_errors():
    with pytest.raises(ValueError, match="END SOLUTION"):
        student.split_solution("### BEGIN SOLUTION\nx = 1\n")
    with pytest.raises(ValueError, match="unbalanced"):
        student.split_solution("x = 1\n### END SOLUTION\n")


def test_planted_leak_is_detected():
    sol = make_solution()
    stu = student.make_student(sol)
    assert student.find_leaks(stu, sol) == []
    stu.cells.append(nbformat.v4.new_code_cell("y = 2\nresult = x + x  # the secret"))
    assert student.find_leaks(stu, sol) == ["result = x + x  # the secret"]


def test_check_reports_stale_outputs_and_leaks(tmp_path):
    sols, nbs = tmp_path / "solutions", tmp_path / "notebooks"
    sols.mkdir()
    nbformat.write(make_solution(), sols / "01_x.ipynb")
    assert any("missing" in p for p in student.check(sols, nbs))
    student.generate(sols, nbs)
    assert student.check(sols, nbs) == []
    nb = nbformat.read(nbs / "01_x.ipynb", as_version=4)
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="out\n")]
    nb.cells[0].source += "\npass"
    nbformat.write(nb, nbs / "01_x.ipynb")
    problems = student.check(sols, nbs)
    assert any("out of date" in p for p in problems)
    assert any("hold outputs" in p for p in problems)
    assert not any("leaks" in p for p in problems)  # an edit that is not a solution line
    nb.cells[0].source += "\n    result = x + x  # the secret"
    nbformat.write(nb, nbs / "01_x.ipynb")
    assert any("leaks a solution line" in p for p in student.check(sols, nbs))


def test_repository_notebooks_are_in_sync(capsys):
    """The check CI runs: notebooks/ regenerated from solutions/, output-free, leak-free."""
    assert main(["check"]) == 0, capsys.readouterr().out
    solutions = sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))
    assert solutions and solutions == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_every_solution_notebook_has_exercises_and_answers():
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert any("### BEGIN SOLUTION" in c.source for c in code), path.name
        assert any("<!-- BEGIN SOLUTION -->" in c.source for c in nb.cells if c.cell_type == "markdown"), path.name
        assert all(c.execution_count is not None for c in code if c.source.strip()), f"{path.name} has unexecuted cells"


def test_figures_are_exported(tmp_path, capsys):
    assert main(["figures", str(ROOT / "solutions" / "00_setup_and_tour.ipynb"), str(tmp_path)]) == 0
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_check_acts_on_the_checkout_it_is_run_in(tmp_path, monkeypatch, capsys):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "tp_utils").mkdir()
    nbformat.write(make_solution(), tmp_path / "solutions" / "01_x.ipynb")
    monkeypatch.chdir(tmp_path / "solutions")
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert f"checking {tmp_path / 'notebooks'}" in out and "notebooks/01_x.ipynb is missing" in out


def test_hidden_tests_are_removed_and_graded_cells_marked():
    from tp_tools import grading

    nb = make_solution()
    nb.cells.insert(1, nbformat.v4.new_code_cell(
        "tp.checks.check_equal('double', double(2), 4)\n### BEGIN HIDDEN TESTS\nassert double(-3) == -6\n"
        "### END HIDDEN TESTS"))
    assert grading.annotate(nb) and not grading.annotate(nb)  # idempotent
    roles = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    assert roles[0]["solution"] and not roles[0]["grade"]                       # the exercise
    assert roles[1]["grade"] and roles[1]["locked"] and roles[1]["points"] == 1  # its check
    assert roles[2]["solution"] and roles[2]["grade"] and roles[2]["points"] == 1  # a written answer
    stu = student.make_student(nb)
    assert "double(-3)" not in stu.cells[1].source and "check_equal" in stu.cells[1].source
    assert stu.cells[1].metadata["nbgrader"] == roles[1]
    assert "assert double(-3) == -6" in student.secret_lines(nb)


def test_nbgrader_config_writes_the_same_stub():
    """The repository's nbgrader_config.py gives nbgrader the stub that `tp generate` writes."""
    from traitlets.config import Config

    namespace = {"get_config": Config}
    exec((Path(__file__).resolve().parents[1] / "nbgrader_config.py").read_text(), namespace)
    stub = namespace["c"].ClearSolutions.code_stub["python"]
    assert stub == "\n".join(student.CODE_STUB)
    # and that stub is what the released notebooks hold, and it stops a student who runs it unchanged
    released = (Path(__file__).resolve().parents[1] / "notebooks" / "00_setup_and_tour.ipynb").read_text()
    assert json.dumps(student.CODE_STUB[-1])[1:-1] in released
    with pytest.raises(NotImplementedError):
        exec("def f():\n" + textwrap.indent(stub, "    ") + "\nf()", {})
