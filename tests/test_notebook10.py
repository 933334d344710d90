"""Notebook 10 (textures): the Gram matrix and the texture (style) loss against float64 NumPy
references, their properties, and the loss network with average pooling (tp_utils.style)."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tp_utils as tp
from tp_utils import style
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def nb():
    return load_exports(ROOT / "solutions" / "10_textures.ipynb")


def gram_reference(f, normalize=True):
    """float64 Gram matrices of a (N, C, H, W) array, with einsum."""
    f = np.asarray(f, dtype=np.float64)
    n, c, h, w = f.shape
    g = np.einsum("nchw,ndhw->ncd", f, f)
    return g / (c * h * w) if normalize else g


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 3, 4, 5), (2, 4, 5, 6), (3, 7, 1, 9), (4, 16, 8, 3)])
@pytest.mark.parametrize("normalize", [True, False])
def test_gram_matrix_equals_float64_einsum(nb, shape, normalize):
    f = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))
    got = nb.gram_matrix(f, normalize=normalize)
    assert got.shape == (shape[0], shape[1], shape[1])
    np.testing.assert_allclose(got.numpy(), gram_reference(f.numpy(), normalize), rtol=1e-5, atol=1e-6)


def test_gram_matrix_default_is_normalized_by_c_h_w(nb):
    f = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(nb.gram_matrix(f).numpy(), nb.gram_matrix(f, normalize=False).numpy() / 60, rtol=1e-6)


def test_gram_matrix_properties(nb):
    g = torch.Generator().manual_seed(1)
    f = torch.randn(3, 6, 7, 8, generator=g, dtype=torch.float64)
    gram = nb.gram_matrix(f)
    assert gram.dtype == torch.float64
    torch.testing.assert_close(gram, gram.transpose(1, 2))                       # symmetric
    assert float(torch.linalg.eigvalsh(gram).min()) > -1e-12                      # positive semi-definite
    perm = torch.randperm(56, generator=g)
    shuffled = f.flatten(2)[:, :, perm].view_as(f)
    torch.testing.assert_close(nb.gram_matrix(shuffled), gram)                    # positions are forgotten
    torch.testing.assert_close(nb.gram_matrix(2 * f), 4 * gram)                   # quadratic
    torch.testing.assert_close(nb.gram_matrix(f)[1], nb.gram_matrix(f[1:2])[0])   # images independent


def test_gram_matrix_is_differentiable(nb):
    f = torch.randn(2, 3, 2, 3, dtype=torch.float64, requires_grad=True, generator=torch.Generator().manual_seed(2))
    assert torch.autograd.gradcheck(lambda t: nb.gram_matrix(t), (f,))


def style_reference(features, targets, weights):
    """float64 sum_l w_l ||G_l - A_l||^2 per image, with NumPy."""
    total = 0.0
    for layer, a in targets.items():
        diff = gram_reference(features[layer].numpy()) - np.asarray(a, dtype=np.float64)
        w = weights[layer]
        w = w.numpy().astype(np.float64) if isinstance(w, torch.Tensor) else float(w)
        total = total + w * (diff ** 2).sum(axis=(1, 2))
    return total


@pytest.mark.parametrize("shared_target", [True, False])
@pytest.mark.parametrize("per_image_weights", [True, False])
def test_style_loss_equals_float64_reference(nb, shared_target, per_image_weights):
    g = torch.Generator().manual_seed(3)
    n = 3
    features = {"a": torch.randn(n, 4, 6, 5, generator=g), "b": torch.rand(n, 8, 3, 3, generator=g)}
    targets = {k: torch.rand(1 if shared_target else n, f.shape[1], f.shape[1], generator=g) for k, f in features.items()}
    weights = {"a": torch.rand(n, generator=g) if per_image_weights else 0.7, "b": 2.5}
    got = nb.style_loss(features, targets, weights)
    assert got.shape == (n,)
    np.testing.assert_allclose(got.numpy(), style_reference(features, targets, weights), rtol=1e-5)


def test_style_loss_is_zero_at_the_target_and_pulls_towards_it(nb):
    g = torch.Generator().manual_seed(4)
    f = torch.randn(2, 5, 4, 4, generator=g)
    target = gram_reference(f.numpy())
    assert np.allclose(nb.style_loss({"x": f}, {"x": torch.tensor(target, dtype=torch.float32)}, {"x": 1.0}).numpy(), 0, atol=1e-10)
    moved = (f + 0.1 * torch.randn(f.shape, generator=g)).requires_grad_(True)
    loss = nb.style_loss({"x": moved}, {"x": torch.tensor(target, dtype=torch.float32)}, {"x": 1.0})
    loss.sum().backward()
    step = moved.detach() - 1e-2 * moved.grad
    after = nb.style_loss({"x": step}, {"x": torch.tensor(target, dtype=torch.float32)}, {"x": 1.0})
    assert bool((after < loss.detach()).all())


def test_average_pooling_replaces_every_max_pool_and_keeps_the_weights(model):
    avg = style.average_pooling(model)
    pools = [m for m in avg.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    originals = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == len(originals) == 3 and all(isinstance(m, nn.AvgPool2d) for m in pools)
    assert all(isinstance(m, nn.MaxPool2d) for m in originals)  # the model given is unchanged
    for a, o in zip(pools, originals):
        assert (a.kernel_size, a.stride, a.padding, a.ceil_mode) == (o.kernel_size, o.stride, o.padding, o.ceil_mode)
    for (name, p), (name_o, p_o) in zip(avg.named_parameters(), model.named_parameters()):
        assert name == name_o and torch.equal(p, p_o) and not p.requires_grad
    x = tp.preprocess("chelsea", size=96)
    with torch.no_grad(), tp.capture_activations(avg, ["relu1", "pool1"]) as acts:
        avg(x)
    torch.testing.assert_close(acts["pool1"], F.avg_pool2d(acts["relu1"], 3, 2, ceil_mode=True))


def test_loss_network_is_frozen_eval_squeezenet_with_average_pooling(model):
    net = style.loss_network()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    x = tp.preprocess("coffee", size=64)
    shapes = []
    for network in (net, model):
        with torch.no_grad(), tp.capture_activations(network, "fire9") as acts:
            network(x)
        shapes.append(acts["fire9"].shape)
    assert shapes[0] == shapes[1]  # same geometry as the max-pooling model
