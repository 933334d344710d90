"""Notebook 11 (style transfer): the content loss and the full loss (content + style + TV) against
float64 NumPy references, and the door that gives notebook 11 the Gram matrix of notebook 10 and the
TV loss of notebook 09."""
from pathlib import Path

import numpy as np
import pytest
import torch

from tp_utils import answers
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"


@pytest.fixture(scope="module")
def nb():
    module = load_exports(SOLUTIONS / "11_style_transfer.ipynb")
    # what the notebook's door cell binds, pointed at the solutions
    module.gram_matrix = answers.earlier("gram_matrix", folder=SOLUTIONS)
    module.tv_loss = answers.earlier("tv_loss", folder=SOLUTIONS)
    return module


def test_door_gives_notebook_10s_gram_matrix_and_09s_tv_loss():
    gram = answers.earlier("gram_matrix", folder=SOLUTIONS)
    tv = answers.earlier("tv_loss", folder=SOLUTIONS)
    assert gram.__module__ == "10_textures.ipynb" and tv.__module__ == "09_feature_inversion.ipynb"
    ten = load_exports(SOLUTIONS / "10_textures.ipynb")
    f = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(gram(f), ten.gram_matrix(f))
    torch.testing.assert_close(gram(f, normalize=False), ten.gram_matrix(f, normalize=False))
    assert float(tv(torch.arange(6.0).view(1, 1, 2, 3))) == pytest.approx(31.0)


def test_door_stops_at_the_unfinished_student_notebook_10(monkeypatch):
    monkeypatch.delenv(answers.ENV_VAR, raising=False)
    with pytest.raises(answers.UnfinishedExercise, match="finish exercise 1 of notebook 10, `gram_matrix`, first"):
        answers.earlier("gram_matrix", folder=ROOT / "notebooks")


def content_reference(f, p):
    f, p = np.asarray(f, np.float64), np.asarray(p, np.float64)
    p = np.broadcast_to(p, f.shape)
    return ((f - p) ** 2).sum(axis=(1, 2, 3)) / (p ** 2).sum(axis=(1, 2, 3))


@pytest.mark.parametrize("shape", [(1, 2, 3, 4), (3, 5, 4, 4), (2, 16, 1, 7)])
@pytest.mark.parametrize("shared", [True, False])
def test_content_loss_equals_float64_reference(nb, shape, shared):
    g = torch.Generator().manual_seed(sum(shape))
    f = torch.randn(shape, generator=g)
    p = torch.randn((1,) + shape[1:] if shared else shape, generator=g)
    got = nb.content_loss(f, p)
    assert got.shape == (shape[0],)
    np.testing.assert_allclose(got.numpy(), content_reference(f.numpy(), p.numpy()), rtol=1e-5)


def gram_reference(f):
    f = np.asarray(f, np.float64)
    n, c, h, w = f.shape
    return np.einsum("nchw,ndhw->ncd", f, f) / (c * h * w)


def tv_reference(x):
    """Per image: the squared differences between vertical and horizontal neighbours, / (C H W)."""
    x = np.asarray(x, np.float64)
    dy = ((x[:, :, 1:, :] - x[:, :, :-1, :]) ** 2).sum(axis=(1, 2, 3))
    dx = ((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2).sum(axis=(1, 2, 3))
    return (dy + dx) / x[0].size


def as_float(w):
    return w.numpy().astype(np.float64) if isinstance(w, torch.Tensor) else float(w)


@pytest.mark.parametrize("per_image", [False, True])
def test_style_transfer_loss_equals_float64_reference(nb, per_image):
    g = torch.Generator().manual_seed(5)
    n = 3
    x = torch.randn(n, 3, 10, 12, generator=g)
    features = {"content": torch.randn(n, 6, 5, 6, generator=g), "s1": torch.rand(n, 4, 5, 6, generator=g),
                "s2": torch.randn(n, 8, 3, 3, generator=g)}
    targets = {"content": {"content": torch.randn(1, 6, 5, 6, generator=g)},
               "style": {"s1": torch.rand(n if per_image else 1, 4, 4, generator=g), "s2": torch.rand(1, 8, 8, generator=g)}}
    weights = {"content": torch.rand(n, generator=g) if per_image else 1.5,
               "style": {"s1": torch.rand(n, generator=g) if per_image else 3.0, "s2": 0.25},
               "tv": torch.rand(n, generator=g) if per_image else 0.7}
    got = nb.style_transfer_loss(x, features, targets, weights)
    content = as_float(weights["content"]) * content_reference(features["content"].numpy(), targets["content"]["content"].numpy())
    style_term = sum(as_float(weights["style"][l]) * ((gram_reference(features[l].numpy()) - targets["style"][l].numpy()) ** 2).sum(axis=(1, 2))
                     for l in ("s1", "s2"))
    tv = as_float(weights["tv"]) * tv_reference(x.numpy())
    for key, want in {"content": content, "style": style_term, "tv": tv, "total": content + style_term + tv}.items():
        assert got[key].shape == (n,), key
        np.testing.assert_allclose(got[key].detach().numpy(), want, rtol=1e-5, err_msg=key)


def test_tv_term_counts_both_axes(nb):
    rows = torch.arange(4.0).view(1, 1, 4, 1).expand(1, 1, 4, 5).contiguous()   # varies down only
    cols = rows.transpose(2, 3).contiguous()                                     # varies across only
    zero = {"content": 0.0, "style": {}, "tv": 1.0}
    empty = {"content": {}, "style": {}}
    for x in (rows, cols):
        got = nb.style_transfer_loss(x, {}, empty, zero)["tv"]
        np.testing.assert_allclose(got.numpy(), tv_reference(x.numpy()), rtol=1e-6)
        assert float(got) > 0


def test_content_term_uses_the_content_layer_only(nb):
    g = torch.Generator().manual_seed(6)
    f = {"c": torch.randn(2, 3, 4, 4, generator=g), "s": torch.randn(2, 3, 4, 4, generator=g)}
    targets = {"content": {"c": f["c"][:1].clone()}, "style": {"s": torch.zeros(1, 3, 3)}}
    got = nb.style_transfer_loss(torch.zeros(2, 3, 4, 4), f, targets, {"content": 1.0, "style": {"s": 0.0}, "tv": 0.0})
    np.testing.assert_allclose(got["content"].numpy(), content_reference(f["c"].numpy(), f["c"][:1].numpy()), rtol=1e-5)
    assert float(got["content"][0]) == pytest.approx(0.0, abs=1e-7)


def test_style_transfer_loss_is_differentiable_in_the_image(nb):
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64, requires_grad=True, generator=torch.Generator().manual_seed(7))

    def total(img):
        feats = {"c": img * 2.0, "s": img ** 2}
        targets = {"content": {"c": torch.ones(1, 3, 6, 6, dtype=torch.float64)},
                   "style": {"s": torch.eye(3, dtype=torch.float64)[None] * 0.1}}
        return nb.style_transfer_loss(img, feats, targets, {"content": 1.0, "style": {"s": 2.0}, "tv": 0.5})["total"]

    assert torch.autograd.gradcheck(total, (x,))
