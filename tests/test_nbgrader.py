"""nbgrader, the instructors' tool: it generates the same student notebooks as `tp generate`,
and autogrades a correct, a wrong and an empty submission of notebook 00 as expected."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tp_tools import grading
from tp_utils.conventions import CODE_STUB

ROOT = Path(__file__).resolve().parents[1]
NB00 = "00_setup_and_tour.ipynb"
pytest.importorskip("nbgrader")


def nbgrader(course: Path, *args):
    env = dict(os.environ, TQDM_DISABLE="1")
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--force"], cwd=course, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(  # the repository's configuration, as the README says
        (ROOT / "nbgrader_config.py").read_text() + f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'cnn-viz'\nc.ExecutePreprocessor.timeout = 600\n")
    source = course / "source" / "tp"
    source.mkdir(parents=True)
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        shutil.copy(path, source / path.name)
    nbgrader(course, "generate_assignment", "tp")
    return course


def test_solutions_carry_nbgrader_metadata():
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert grading.metadata_problems(nb, path.name) == []
        roles = [role for role, _, _ in grading.cell_roles(nb)]
        assert "solution" in roles and "tests" in roles and "manual" in roles, path.name


def test_nbgrader_generates_the_same_student_notebooks(course):
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        ours = nbformat.read(path, as_version=4)
        theirs = nbformat.read(course / "release" / "tp" / path.name, as_version=4)
        assert [(c.cell_type, c.source) for c in theirs.cells] == [(c.cell_type, c.source) for c in ours.cells]


def test_nbgrader_autogrades_correct_wrong_and_empty(course):
    from nbgrader.api import Gradebook

    release = course / "release" / "tp" / NB00
    wrong = nbformat.read(release, as_version=4)
    for cell in wrong.cells:  # top-k of the raw scores, not of the probabilities
        if "def topk_predictions" in cell.source:
            cell.source = cell.source.replace(
                "\n    ".join(CODE_STUB),
                "with torch.no_grad():\n        return model(x).topk(k, dim=1)")
    for student, notebook in [("correct", nbformat.read(ROOT / "solutions" / NB00, as_version=4)),
                              ("wrong", wrong), ("empty", nbformat.read(release, as_version=4))]:
        folder = course / "submitted" / student / "tp"
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / NB00)
    nbgrader(course, "autograde", "tp", "--CourseDirectory.notebook_id=00_setup_and_tour")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {}
        for student in ("correct", "wrong", "empty"):
            nb = gb.find_submission_notebook("00_setup_and_tour", "tp", student)
            scores[student] = {g.name: (g.auto_score, g.max_score) for g in nb.grades}
    assert scores["correct"]["check-topk_predictions-1"] == (1.0, 1.0)
    assert scores["wrong"]["check-topk_predictions-1"] == (0.0, 1.0)
    assert scores["empty"]["check-topk_predictions-1"] == (0.0, 1.0)
    assert scores["correct"]["written-1"][1] == 4  # four questions, graded by a person


def test_nbgrader_validate_shows_the_one_line_hint(course):
    """nbgrader's Validate (the button in JupyterLab) reports a failing cell's traceback and stderr:
    the course's hint for an unfinished exercise must reach it."""
    result = subprocess.run([sys.executable, "-m", "nbgrader", "validate", str(course / "release" / "tp" / NB00)],
                            cwd=course, env=dict(os.environ, TQDM_DISABLE="1"), capture_output=True, text=True,
                            timeout=600)
    out = result.stdout + result.stderr
    assert "NotImplementedError" in out, out[-2000:]
    assert "➜ `topk_predictions` is not written yet" in out, out[-2000:]
