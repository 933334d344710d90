"""The door for earlier answers (tp_utils.answers) and the check for answers shipped in tp_utils."""
import shutil
from pathlib import Path

import nbformat
import pytest
import torch

import tp_utils as tp
from tp_tools import student
from tp_utils import answers
from tp_utils.conventions import STUB_MESSAGE

ROOT = Path(__file__).resolve().parents[1]


def test_door_finds_the_solution(model):
    fields = answers.earlier("receptive_fields", folder=ROOT / "solutions")(model)
    assert fields["conv1"] == (7, 2, 3.0) and fields["fire9"][0] == 155
    top = answers.earlier("top_activations", folder=ROOT / "solutions")
    maps = torch.tensor([[[0, 1], [2, 0]], [[5, 0], [0, 0]], [[0, 0], [0, 3]]], dtype=torch.float32)
    assert top(maps, 2) == [(1, 0, 0), (2, 1, 1)]


def test_door_finds_the_notebook_next_to_the_caller(monkeypatch, model):
    monkeypatch.delenv(answers.ENV_VAR, raising=False)
    monkeypatch.chdir(ROOT / "solutions")  # a kernel runs in its notebook's folder
    assert answers.earlier("receptive_fields")(model)["pool1"] == (11, 4, 5.0)


def test_door_names_the_exercise_to_finish(monkeypatch):
    monkeypatch.delenv(answers.ENV_VAR, raising=False)
    monkeypatch.chdir(ROOT / "notebooks")  # the student versions: stubs
    with pytest.raises(answers.UnfinishedExercise) as err:
        answers.earlier("top_activations")
    assert str(err.value).startswith("finish exercise 2 of notebook 03, `top_activations`, first")


def test_environment_variable_points_the_door(monkeypatch, model):
    monkeypatch.chdir(ROOT / "notebooks")
    monkeypatch.setenv(answers.ENV_VAR, str(ROOT / "solutions"))
    assert answers.earlier("top_activations")(torch.ones(2, 3, 3), 1) == [(0, 0, 0)]


def test_door_when_the_earlier_notebook_is_missing_or_broken(tmp_path):
    with pytest.raises(FileNotFoundError, match="03_patches_and_occlusion.ipynb"):
        answers.earlier("receptive_fields", folder=tmp_path)
    nb = nbformat.read(ROOT / "solutions" / "03_patches_and_occlusion.ipynb", as_version=4)
    for cell in nb.cells:  # a student who deleted the export tag of the cell
        if "def top_activations" in cell.source:
            cell.metadata["tags"] = []
    nbformat.write(nb, tmp_path / "03_patches_and_occlusion.ipynb")
    with pytest.raises(answers.UnfinishedExercise, match="no cell tagged 'export'"):
        answers.earlier("top_activations", folder=tmp_path)
    with pytest.raises(KeyError, match="receptive_fields"):
        answers.earlier("gram", folder=tmp_path)


def test_door_reports_a_stub_met_at_call_time(tmp_path):
    nb = nbformat.read(ROOT / "solutions" / "03_patches_and_occlusion.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "def helper():\n    raise NotImplementedError()\n\n\ndef top_activations(maps, k):\n    return helper()",
        metadata={"tags": ["export"]}))
    nbformat.write(nb, tmp_path / "03_patches_and_occlusion.ipynb")
    top = answers.earlier("top_activations", folder=tmp_path)
    with pytest.raises(answers.UnfinishedExercise, match="exercise 2 of notebook 03"):
        top(torch.ones(1, 2, 2), 1)


def test_door_table_points_at_real_functions():
    for name, (notebook, exercise) in answers.DOOR.items():
        nb = nbformat.read(ROOT / "solutions" / f"{notebook}.ipynb", as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert f"def {name}(" in text and f"**Exercise {exercise}.**" in text


def test_no_notebook_runs_another():
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert "load_exports" not in cell.source and ".ipynb" not in cell.source, path.name


def test_shipped_answers_are_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "helpers.py").write_text(
        "def twice_all(values):\n    doubled = []\n    for value in values:\n"
        "        doubled.append(value * 2)\n    return sorted(doubled, reverse=True)\n")
    sol = nbformat.v4.new_notebook()
    sol.cells = [nbformat.v4.new_code_cell(  # the same code with other names is still reported
        "def f(xs):\n    ### BEGIN SOLUTION\n    out = []\n    for x in xs:\n        out.append(x * 2)\n"
        "    return sorted(out, reverse=True)\n    ### END SOLUTION\n")]
    (tmp_path / "solutions").mkdir()
    nbformat.write(sol, tmp_path / "solutions" / "99_t.ipynb")
    problems = student.shipped_answers(tmp_path / "solutions", package)
    assert len(problems) == 1 and "helpers.py" in problems[0] and "cell 0" in problems[0]
    (package / "helpers.py").write_text("def other(v):\n    return {k: v[k] for k in sorted(v)}\n")
    assert student.shipped_answers(tmp_path / "solutions", package) == []


def test_the_package_ships_no_answer():
    assert student.shipped_answers(ROOT / "solutions", ROOT / "tp_utils") == []


def test_hints_for_unfinished_exercises():
    from tp_utils.checks import _hint

    def topk_predictions():
        raise NotImplementedError(STUB_MESSAGE)  # the stub `tp generate` writes

    def saliency_map():
        raise NotImplementedError()  # an older stub, or nbgrader's default

    for stub in (topk_predictions, saliency_map):
        try:
            stub()
        except NotImplementedError as err:
            hint = _hint(NotImplementedError, err, err.__traceback__)
        assert hint.startswith(f"`{stub.__name__}` is not written yet")
    try:
        seconds  # noqa: F821
    except NameError as err:
        assert "`seconds`" in _hint(NameError, err, err.__traceback__)
    assert _hint(NotImplementedError, NotImplementedError("a message of the student's own"), None) is None
    assert _hint(ValueError, ValueError("x"), None) is None


def test_door_reports_a_syntax_error(tmp_path):
    nb = nbformat.read(ROOT / "solutions" / "03_patches_and_occlusion.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("def oops(:\n    pass", metadata={"tags": ["export"]}))
    nbformat.write(nb, tmp_path / "03_patches_and_occlusion.ipynb")
    with pytest.raises(answers.UnfinishedExercise, match="syntax error"):
        answers.earlier("top_activations", folder=tmp_path)
