"""Notebook 09 (feature inversion): TV, the feature loss and the inversion against independent references."""
from pathlib import Path

import numpy as np
import pytest
import torch

import tp_utils as tp
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(1, 3, 5, 7), (4, 3, 16, 9), (2, 1, 1, 6), (3, 2, 6, 1), (2, 3, 2, 2)]


@pytest.fixture(scope="module")
def nb():
    return load_exports(ROOT / "solutions" / "09_feature_inversion.ipynb")


def tv_numpy(x):
    """Sum of squared differences of vertical and horizontal neighbours, float64, no wrap-around."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sum(np.diff(x, axis=-2) ** 2) + np.sum(np.diff(x, axis=-1) ** 2))


def tv_gradient_numpy(x):
    """Closed-form gradient of tv_numpy: 2 (x_p - x_q) for each neighbour pair (p, q), summed."""
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    dy, dx = np.diff(x, axis=-2), np.diff(x, axis=-1)
    g[..., 1:, :] += 2 * dy
    g[..., :-1, :] -= 2 * dy
    g[..., :, 1:] += 2 * dx
    g[..., :, :-1] -= 2 * dx
    return g


@pytest.mark.parametrize("shape", SHAPES)
def test_tv_loss_against_numpy_float64(nb, shape):
    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    value = nb.tv_loss(torch.from_numpy(x))
    assert value.dim() == 0
    assert float(value) == pytest.approx(tv_numpy(x), rel=1e-12, abs=1e-12)
    # float32, as in the notebooks
    assert float(nb.tv_loss(torch.from_numpy(x).float())) == pytest.approx(tv_numpy(x), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_tv_loss_gradient_against_closed_form(nb, shape):
    x = torch.from_numpy(np.random.default_rng(7).standard_normal(shape)).requires_grad_(True)
    (grad,) = torch.autograd.grad(nb.tv_loss(x), x)
    np.testing.assert_allclose(grad.numpy(), tv_gradient_numpy(x.detach().numpy()), rtol=1e-10, atol=1e-12)


def test_tv_loss_by_hand(nb):
    x = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])
    # horizontal: 1 + 4 + 0 + 0; vertical: 4 + 1 + 1
    assert float(nb.tv_loss(x)) == pytest.approx(11.0)
    assert float(nb.tv_loss(torch.full((2, 3, 8, 8), -1.5))) == 0.0


@pytest.mark.parametrize("shape", [(1, 8, 4, 4), (2, 5, 3, 7), (1, 1000, 1, 1)])
def test_feature_loss_against_numpy(nb, shape):
    rng = np.random.default_rng(len(shape) + shape[1])
    f, f0 = rng.standard_normal(shape), 5.0 * rng.standard_normal(shape)
    value = nb.feature_loss(torch.from_numpy(f), torch.from_numpy(f0))
    assert value.dim() == 0
    assert float(value) == pytest.approx(np.sum((f - f0) ** 2) / np.sum(f0 ** 2), rel=1e-12)


def test_feature_loss_is_relative(nb):
    f = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    f0 = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(1))
    assert float(nb.feature_loss(1e3 * f, 1e3 * f0)) == pytest.approx(float(nb.feature_loss(f, f0)), rel=1e-5)
    assert float(nb.feature_loss(torch.zeros_like(f0), f0)) == pytest.approx(1.0)


def _features(model, layer, x):
    with torch.no_grad(), tp.capture_activations(model, layer) as acts:
        model(x)
    return acts[layer]


def pixel_start(shape):
    """The noise invert() starts from with seed 0."""
    return tp.optimize.pixel_image(shape, sd=0.1, generator=torch.Generator().manual_seed(0))().detach()


@pytest.mark.parametrize("layer", ["conv1", "fire3"])
def test_invert_matches_the_features(nb, model, layer):
    x0 = tp.preprocess("coffee", size=64)
    result, error = nb.invert(model, layer, x0, lam=0.1, steps=25, lr=0.1,
                              generator=torch.Generator().manual_seed(0))
    f0, f = _features(model, layer, x0), _features(model, layer, result.image)
    independent = float(np.sqrt(np.sum((f - f0).double().numpy() ** 2) / np.sum(f0.double().numpy() ** 2)))
    assert error == pytest.approx(independent, rel=1e-4)
    assert result.losses[-1] < 0.5 * result.losses[0]
    start = pixel_start(x0.shape)
    assert error < float(nb.feature_loss(_features(model, layer, start), f0)) ** 0.5
    assert all(not m._forward_hooks for m in model.modules())  # the extractor's hooks are gone


def test_invert_is_deterministic_and_uses_tv(nb, model):
    x0 = tp.preprocess("coffee", size=48)
    runs = [nb.invert(model, "conv1", x0, lam=lam, steps=10, generator=torch.Generator().manual_seed(3))
            for lam in (0.0, 0.0, 100.0)]
    assert torch.equal(runs[0][0].image, runs[1][0].image)
    assert nb.tv_loss(runs[2][0].image) < 0.5 * nb.tv_loss(runs[0][0].image)
