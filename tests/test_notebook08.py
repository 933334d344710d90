"""Notebook 08 (DeepDream): the students' functions against independent references."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tp_utils as tp
from tp_utils.notebook import load_exports
from tp_utils.optimize import optimize, pixel_image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def nb():
    return load_exports(ROOT / "solutions" / "08_deepdream.ipynb")


def no_hooks(model):
    return all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


# ------------------------------------------------------------------ the objective

@pytest.mark.parametrize("shape", [(1, 4, 3, 3), (2, 16, 7, 5), (3, 1, 1, 1)])
def test_dream_objective_value(nb, shape):
    a = np.random.default_rng(0).standard_normal(shape)
    value = nb.dream_objective(torch.from_numpy(a))
    assert value.dim() == 0
    assert float(value) == pytest.approx(-0.5 * np.sum(a ** 2), rel=1e-12)


def test_dream_objective_gradient_is_minus_activation(nb):
    a = torch.randn(2, 6, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a.requires_grad_(True)
    (grad,) = torch.autograd.grad(nb.dream_objective(a), a)
    assert torch.allclose(grad, -a.detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("layer", ["relu1", "fire3", "fire8", "conv10"])
def test_pixel_gradient_is_backprop_of_the_activation(nb, model, layer):
    """The original DeepDream: set the layer's gradient to its activation and backpropagate.
    Autograd on -dream_objective must give exactly that vector-Jacobian product."""
    x = tp.preprocess("chelsea", size=96).requires_grad_(True)
    with tp.models.feature_extractor(model, layer) as features:
        a = features(x)[layer]
        (ours,) = torch.autograd.grad(-nb.dream_objective(a), x, retain_graph=True)
        (caffe,) = torch.autograd.grad(a, x, grad_outputs=a.detach())
    assert no_hooks(model)
    assert caffe.abs().max() > 0
    assert torch.allclose(ours, caffe, rtol=1e-5, atol=1e-6 * float(caffe.abs().max()))


# ------------------------------------------------------------------ the normalized step

def test_normalize_gradient_per_image(nb):
    rng = np.random.default_rng(1)
    g = rng.standard_normal((3, 3, 5, 6)) * np.array([1e-2, 1.0, 1e3])[:, None, None, None]
    ours = nb.normalize_gradient(torch.from_numpy(g)).numpy()
    ref = g / np.abs(g).mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(ours, ref, rtol=1e-5)  # eps = 1e-8 is allowed


def test_normalize_gradient_of_zero_is_finite(nb):
    out = nb.normalize_gradient(torch.zeros(1, 3, 4, 4))
    assert torch.isfinite(out).all() and (out == 0).all()


def test_normalized_sgd_step_moves_each_image_by_lr(nb):
    """Through the shared loop: SGD on any objective moves each image by lr on average."""
    w = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    w = w * torch.tensor([1e-2, 1e3]).view(2, 1, 1, 1)
    image = pixel_image(init=torch.zeros(2, 3, 8, 8))
    optimize(image, lambda x: -(w * x).sum(), steps=1, lr=0.25, optimizer="sgd",
             transforms=[nb.normalized_gradient()])
    moved = image().detach()
    assert torch.allclose(moved.abs().mean(dim=(1, 2, 3)), torch.tensor([0.25, 0.25]), rtol=1e-4)
    assert (torch.sign(moved) == torch.sign(w)).all()  # ascent on w . x: along w


def test_normalized_gradient_is_identity_forward(nb):
    x = torch.randn(1, 3, 5, 5)
    assert torch.equal(nb.normalized_gradient()(x), x)
    y = x.clone().requires_grad_(True)
    assert torch.equal(nb.normalized_gradient()(y).detach(), x)


# ------------------------------------------------------------------ octaves

@pytest.mark.parametrize("h, w, n, scale", [(224, 300, 4, 1.4), (262, 224, 5, 1.4), (100, 100, 3, 2.0),
                                            (57, 80, 1, 1.4), (448, 512, 6, 1.3)])
def test_octave_sizes(nb, h, w, n, scale):
    sizes = nb.octave_sizes(h, w, n, scale)
    ref = np.round(np.array([h, w], dtype=np.float64)[None, :] / scale ** np.arange(n)[::-1, None])
    assert [tuple(int(v) for v in s) for s in sizes] == [tuple(int(v) for v in r) for r in ref]
    assert tuple(sizes[-1]) == (h, w)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(sizes, sizes[1:]))  # smallest first


def _reference_deepdream(x, dream, n_octaves, scale):
    """The original DeepDream's octave loop (Mordvintsev et al.'s notebook), in torch."""
    h, w = x.shape[-2:]
    octaves = [x]
    for k in range(1, n_octaves):
        size = (round(h / scale ** k), round(w / scale ** k))
        octaves.append(F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True))
    detail = torch.zeros_like(octaves[-1])
    for base in octaves[::-1]:
        if detail.shape[-2:] != base.shape[-2:]:
            detail = F.interpolate(detail, size=tuple(base.shape[-2:]), mode="bilinear", align_corners=False,
                                   antialias=True)
        out = dream(base + detail)
        detail = out - base
    return out


@pytest.mark.parametrize("n_octaves", [1, 2, 4])
def test_deepdream_octave_loop(nb, n_octaves):
    x = torch.randn(1, 3, 60, 84, generator=torch.Generator().manual_seed(3))

    def fake_dream(image):  # a non-linear, size-independent "dream"
        return image + 0.3 * torch.tanh(image.roll(1, dims=-1)) + 0.1

    ours = nb.deepdream(x, fake_dream, n_octaves, 1.4)
    ref = _reference_deepdream(x, fake_dream, n_octaves, 1.4)
    assert ours.shape == x.shape
    assert torch.allclose(ours, ref, atol=1e-5)


def test_deepdream_identity_dream_returns_the_photo(nb):
    x = torch.randn(1, 3, 50, 70, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(nb.deepdream(x, lambda img: img, 3, 1.4), x, atol=1e-6)


def test_deepdream_on_the_model_raises_the_activations(nb, model):
    photo = tp.preprocess("coffee", size=96, crop=False)
    layer, generator = "fire3", torch.Generator().manual_seed(0)

    def rms(x):
        with torch.no_grad(), tp.models.feature_extractor(model, layer) as features:
            return float(features(x)[layer].pow(2).mean().sqrt())

    def dream(image):
        with tp.models.feature_extractor(model, layer) as features:
            return optimize(pixel_image(init=image), lambda img: nb.dream_objective(features(img)[layer]),
                            steps=3, lr=0.04, optimizer="sgd",
                            transforms=[tp.regularizers.jitter(4, generator), nb.normalized_gradient()]).image

    out = nb.deepdream(photo, dream, 2, 1.4)
    assert out.shape == photo.shape
    assert rms(out) > 1.2 * rms(photo)
    assert no_hooks(model)
