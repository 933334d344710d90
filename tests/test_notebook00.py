"""Notebook 00's exercise, imported from its export cells without running the notebook."""
from pathlib import Path

import pytest
import torch

import tp_utils as tp
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def nb():
    return load_exports(ROOT / "solutions" / "00_setup_and_tour.ipynb")


def test_topk_matches_expected_values(nb, model):
    probs, indices = nb.topk_predictions(model, tp.preprocess("chelsea"), k=5)
    want = tp.checks.expected("00")
    assert indices[0].tolist() == want["chelsea_top5_indices"]
    assert torch.allclose(probs[0], torch.tensor(want["chelsea_top5_probs"]), atol=1e-5)


def test_topk_on_a_batch(nb, model):
    x = torch.cat([tp.preprocess(n) for n in ("coffee", "rocket", "chelsea")])
    probs, indices = nb.topk_predictions(model, x, k=3)
    assert probs.shape == indices.shape == (3, 3)
    assert (probs[:, :-1] >= probs[:, 1:]).all()
    assert [tp.class_name(int(i)) for i in indices[:, 0]] == ["espresso", "missile", "Egyptian cat"]
    full = model(x).softmax(1)
    assert torch.allclose(probs, full.gather(1, indices), atol=1e-6)


def test_topk_builds_no_graph(nb, model):
    import copy

    trainable = copy.deepcopy(model).requires_grad_(True)  # frozen parameters would hide a missing no_grad
    probs, indices = nb.topk_predictions(trainable, tp.preprocess("coffee"), k=2)
    assert probs.grad_fn is None and not probs.requires_grad


def test_student_version_raises_until_written(model):
    student = load_exports(ROOT / "notebooks" / "00_setup_and_tour.ipynb")
    with pytest.raises(NotImplementedError):
        student.topk_predictions(model, tp.preprocess("chelsea"))


def test_loader_ignores_untagged_cells(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise SystemExit('heavy cell ran')"),
                nbformat.v4.new_code_cell("%matplotlib inline\nVALUE = 41 + 1", metadata={"tags": ["export"]})]
    nbformat.write(nb, tmp_path / "t.ipynb")
    assert load_exports(tmp_path / "t.ipynb").VALUE == 42
