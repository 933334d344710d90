"""Notebook 04: plausible wrong answers, and hidden tests for what the self-checks cannot see.

``MUTANTS``: ``(function, what is wrong, code replacing the function's solution region)``; see
``benchmarks/mutations.py``. The ``test_*`` functions are hidden tests of ``tp grade``: cheap ones,
on toy models whose answers are known in closed form (the captum comparisons of
tests/test_notebooks_04_05.py run too, at a cost of minutes).
"""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tp_tools.mutants import edit
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[2]

CLASS_GRADIENT = """
    scores = model(x)
    target = torch.as_tensor(target, device=x.device).expand(x.shape[0])
    scores.gather(1, target[:, None]).sum().backward()
"""
SEEDS = """
    markers = np.zeros(saliency.shape, dtype=np.int64)
    markers[saliency >= np.quantile(saliency, fg)] = 1
    markers[saliency <= np.quantile(saliency, bg)] = 2
    return markers
"""
SMOOTHGRAD = """
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        eps = torch.randn((b,) + tuple(x.shape[1:]), generator=generator).to(x.device) * sigma
        total += saliency_map(class_gradient(model, x + eps, target)).sum(dim=0, keepdim=True)
"""
IG = """
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps
    for chunk in alphas.split(batch_size):
        path = baseline + chunk[:, None, None, None] * (x - baseline)
        total += class_gradient(model, path, target).sum(dim=0, keepdim=True)
"""
GRAD_CAM = """
    a = acts[layer]
    target = torch.as_tensor(target, device=x.device).expand(x.shape[0])
    (g,) = torch.autograd.grad(scores.gather(1, target[:, None]).sum(), a)
    weights = g.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * a).sum(dim=1)).detach()
"""
DELETION = """
    scores = F.avg_pool2d(importance[None, None], block)[0, 0]
    order = scores.flatten().argsort(descending=True)
    counts = torch.linspace(0, order.numel(), steps + 1).round().long()
    keep = torch.ones(steps + 1, order.numel(), device=x.device)
    for s, k in enumerate(counts):
        keep[s, order[:k]] = 0
    keep = F.interpolate(keep.view(steps + 1, 1, *scores.shape), scale_factor=block, mode="nearest")
    with torch.no_grad():
        return model(x * keep + baseline * (1 - keep)).softmax(dim=1)[:, target].cpu()
"""


MUTANTS = [
    # ---------------------------------------------------------------- class_gradient, saliency_map
    ("class_gradient", "gradient of the softmax probability instead of the score", edit(
        CLASS_GRADIENT, ("scores = model(x)", "scores = model(x).softmax(dim=1)"))),
    ("class_gradient", "gradient of the log-probability (cross-entropy) instead of the score", edit(
        CLASS_GRADIENT, ("scores = model(x)", "scores = model(x).log_softmax(dim=1)"))),
    ("class_gradient", "the first image's target for every image", """
        first = int(torch.as_tensor(target).flatten()[0])
        model(x)[:, first].sum().backward()
    """),
    ("class_gradient", "the sum of all the class scores", """
        model(x).sum().backward()
    """),
    ("class_gradient", "the top-1 class instead of the target", """
        scores = model(x)
        scores.gather(1, scores.argmax(dim=1, keepdim=True)).sum().backward()
    """),
    ("class_gradient", "scores[:, target] with a tensor of targets: every target for every image", """
        model(x)[:, target].sum().backward()
    """),
    ("class_gradient", "minus the score (a loss to minimize)", edit(
        CLASS_GRADIENT, ("scores.gather(1, target[:, None]).sum()", "(-scores.gather(1, target[:, None])).sum()"))),
    ("class_gradient", "mean over the batch instead of the sum", edit(
        CLASS_GRADIENT, ("scores.gather(1, target[:, None]).sum()", "scores.gather(1, target[:, None]).mean()"))),
    ("saliency_map", "forgotten abs: the largest signed gradient", """
        return grad.amax(dim=1)
    """),
    ("saliency_map", "sum over the colour channels instead of the maximum", """
        return grad.abs().sum(dim=1)
    """),
    ("saliency_map", "maximum over the wrong axis (the batch)", """
        return grad.abs().amax(dim=0)
    """),
    ("saliency_map", "abs of the signed maximum", """
        return grad.amax(dim=1).abs()
    """),
    ("saliency_map", "mean of |gradient| over the colour channels", """
        return grad.abs().mean(dim=1)
    """),
    ("saliency_map", "largest squared gradient over the colour channels", """
        return (grad ** 2).amax(dim=1)
    """),
    ("saliency_map", "L2 norm over the colour channels", """
        return grad.norm(dim=1)
    """),
    # ---------------------------------------------------------------- saliency_seeds
    ("saliency_seeds", "thresholds as fractions of the maximum, not quantiles", edit(
        SEEDS, ("np.quantile(saliency, fg)", "fg * saliency.max()"), ("np.quantile(saliency, bg)", "bg * saliency.max()"))),
    ("saliency_seeds", "foreground and background labels swapped", edit(
        SEEDS, ("fg)] = 1", "fg)] = 2"), ("bg)] = 2", "bg)] = 1"))),
    ("saliency_seeds", "background below the 1 - bg quantile", edit(
        SEEDS, ("np.quantile(saliency, bg)", "np.quantile(saliency, 1 - bg)"))),
    ("saliency_seeds", "np.percentile given fractions (0.95 read as 0.95 %)", edit(
        SEEDS, ("np.quantile(saliency, fg)", "np.percentile(saliency, fg)"), ("np.quantile(saliency, bg)", "np.percentile(saliency, bg)"))),
    ("saliency_seeds", "no background seeds", edit(
        SEEDS, ("    markers[saliency <= np.quantile(saliency, bg)] = 2\n", ""))),
    ("saliency_seeds", "quantiles per column (axis=0) instead of over the whole map", edit(
        SEEDS, ("np.quantile(saliency, fg)", "np.quantile(saliency, fg, axis=0)"), ("np.quantile(saliency, bg)", "np.quantile(saliency, bg, axis=0)"))),
    # ---------------------------------------------------------------- smoothgrad, integrated_gradients, grad_cam
    ("smoothgrad", "noise not scaled by sigma (standard normal)", edit(
        SMOOTHGRAD, (".to(x.device) * sigma", ".to(x.device)"))),
    ("smoothgrad", "noise scaled by `noise`, not by noise x the image's range", edit(
        SMOOTHGRAD, (".to(x.device) * sigma", ".to(x.device) * noise"))),
    ("smoothgrad", "saliency of the mean gradient instead of the mean of the saliency maps", """
        grads = torch.zeros_like(x)
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            eps = torch.randn((b,) + tuple(x.shape[1:]), generator=generator).to(x.device) * sigma
            grads += class_gradient(model, x + eps, target).sum(dim=0, keepdim=True)
        total += saliency_map(grads)
    """),
    ("smoothgrad", "the last batch always full (n not a multiple of batch_size)", edit(
        SMOOTHGRAD, ("b = min(batch_size, n - start)", "b = batch_size"))),
    ("smoothgrad", "one noise draw shared by the copies of a batch", edit(
        SMOOTHGRAD, ("eps = torch.randn((b,) + tuple(x.shape[1:])", "eps = torch.randn((1,) + tuple(x.shape[1:])"),
        ("class_gradient(model, x + eps, target)", "class_gradient(model, (x + eps).expand(b, -1, -1, -1), target)"))),
    ("smoothgrad", "noise added to the gradient instead of the image", edit(
        SMOOTHGRAD, ("saliency_map(class_gradient(model, x + eps, target))",
                     "saliency_map(class_gradient(model, x.expand(b, -1, -1, -1), target) + eps)"))),
    ("smoothgrad", "mean of each batch's maps added up, instead of their sum", edit(
        SMOOTHGRAD, (".sum(dim=0, keepdim=True)", ".mean(dim=0, keepdim=True)"))),
    ("smoothgrad", "signed gradient maps averaged (no abs)", edit(
        SMOOTHGRAD, ("saliency_map(class_gradient(model, x + eps, target))", "class_gradient(model, x + eps, target).amax(dim=1)"))),
    ("integrated_gradients", "gradient x input instead of Integrated Gradients", """
        total += class_gradient(model, x, target) * steps
    """),
    ("integrated_gradients", "left Riemann sum (alphas 0, 1/steps, ...)", edit(
        IG, ("(torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps",
             "torch.arange(steps, dtype=x.dtype, device=x.device) / steps"))),
    ("integrated_gradients", "alphas from linspace(0, 1, steps): both ends", edit(
        IG, ("(torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps",
             "torch.linspace(0, 1, steps, dtype=x.dtype, device=x.device)"))),
    ("integrated_gradients", "(x - baseline) applied inside the sum too", edit(
        IG, ("total += class_gradient(model, path, target)", "total += (x - baseline) * class_gradient(model, path, target)"))),
    ("integrated_gradients", "alphas not divided by steps", edit(
        IG, ("(torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps",
             "torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5"))),
    ("integrated_gradients", "path from 0, not from the baseline", edit(
        IG, ("path = baseline + chunk[:, None, None, None] * (x - baseline)",
             "path = chunk[:, None, None, None] * x"))),
    ("integrated_gradients", "gradients at the baseline only (no path)", edit(
        IG, ("path = baseline + chunk[:, None, None, None] * (x - baseline)",
             "path = baseline.expand(len(chunk), -1, -1, -1)"))),
    ("grad_cam", "no ReLU on the map", edit(
        GRAD_CAM, ("return F.relu((weights * a).sum(dim=1)).detach()", "return (weights * a).sum(dim=1).detach()"))),
    ("grad_cam", "channel weights: sum of the gradients, not their mean", edit(
        GRAD_CAM, ("weights = g.mean(dim=(2, 3), keepdim=True)", "weights = g.sum(dim=(2, 3), keepdim=True)"))),
    ("grad_cam", "channel weights: maximum of the gradients", edit(
        GRAD_CAM, ("weights = g.mean(dim=(2, 3), keepdim=True)", "weights = g.amax(dim=(2, 3), keepdim=True)"))),
    ("grad_cam", "gradient x activation summed over channels, no spatial averaging", edit(
        GRAD_CAM, ("weights = g.mean(dim=(2, 3), keepdim=True)", "weights = g"))),
    ("grad_cam", "gradient of the probability instead of the score", edit(
        GRAD_CAM, ("scores.gather(1, target[:, None])", "scores.softmax(dim=1).gather(1, target[:, None])"))),
    ("grad_cam", "mean over the channels instead of the sum", edit(
        GRAD_CAM, ("(weights * a).sum(dim=1)", "(weights * a).mean(dim=1)"))),
    ("grad_cam", "ReLU on the channel weights instead of on the map", edit(
        GRAD_CAM, ("return F.relu((weights * a).sum(dim=1)).detach()", "return (F.relu(weights) * a).sum(dim=1).detach()"))),
    ("grad_cam", "channel weights: spatial mean of the activations, not of the gradients", edit(
        GRAD_CAM, ("weights = g.mean(dim=(2, 3), keepdim=True)", "weights = a.mean(dim=(2, 3), keepdim=True)"))),
    ("grad_cam", "absolute value instead of ReLU", edit(
        GRAD_CAM, ("return F.relu((weights * a).sum(dim=1)).detach()", "return (weights * a).sum(dim=1).abs().detach()"))),
    # ---------------------------------------------------------------- deletion_curve
    ("deletion_curve", "least important regions first", edit(
        DELETION, ("argsort(descending=True)", "argsort()"))),
    ("deletion_curve", "deleted regions set to 0, not to the baseline", edit(
        DELETION, ("model(x * keep + baseline * (1 - keep))", "model(x * keep)"))),
    ("deletion_curve", "regions ranked by their maximum importance, not their mean", edit(
        DELETION, ("F.avg_pool2d(importance[None, None], block)", "F.max_pool2d(importance[None, None], block)"))),
    ("deletion_curve", "scores instead of probabilities", edit(
        DELETION, (".softmax(dim=1)[:, target]", "[:, target]"))),
    ("deletion_curve", "kept and deleted swapped", edit(
        DELETION, ("x * keep + baseline * (1 - keep)", "x * (1 - keep) + baseline * keep"))),
    ("deletion_curve", "steps points: the 0 % point missing", edit(
        DELETION, ("counts = torch.linspace(0, order.numel(), steps + 1).round().long()",
                   "counts = torch.linspace(0, order.numel(), steps + 1).round().long()[1:]"),
        ("keep = torch.ones(steps + 1, order.numel()", "keep = torch.ones(steps, order.numel()"),
        ("keep.view(steps + 1, 1, *scores.shape)", "keep.view(steps, 1, *scores.shape)"))),
    ("deletion_curve", "softmax over the batch of deletion steps (dim=0)", edit(
        DELETION, (".softmax(dim=1)[:, target]", ".softmax(dim=0)[:, target]"))),
    ("deletion_curve", "probability of the top-1 class, not of the target", edit(
        DELETION, (".softmax(dim=1)[:, target].cpu()", ".softmax(dim=1).amax(dim=1).cpu()"))),
    ("deletion_curve", "pixels ranked one by one (no block averaging)", """
        order = importance.flatten().argsort(descending=True)
        counts = torch.linspace(0, order.numel(), steps + 1).round().long()
        keep = torch.ones(steps + 1, order.numel(), device=x.device)
        for s, k in enumerate(counts):
            keep[s, order[:k]] = 0
        keep = keep.view(steps + 1, 1, H, W)
        with torch.no_grad():
            return model(x * keep + baseline * (1 - keep)).softmax(dim=1)[:, target].cpu()
    """),
]


@pytest.fixture(scope="module")
def nb04():
    return load_exports(ROOT / "solutions" / "04_saliency.ipynb")


def test_saliency_seeds_are_quantiles(nb04):
    saliency = (np.arange(100.0) ** 2).reshape(10, 10)  # not uniform: quantiles are not fractions of the max
    markers = nb04.saliency_seeds(saliency, fg=0.95, bg=0.30)
    assert np.flatnonzero(markers == 1).tolist() == [95, 96, 97, 98, 99]
    assert np.flatnonzero(markers == 2).tolist() == list(range(30))
    assert markers.shape == (10, 10) and set(np.unique(markers)) == {0, 1, 2}


class _Energy(nn.Module):
    """Class 0 scores 0.5 ||x||^2 (its gradient is x), class 1 scores 0."""

    def forward(self, x):
        s = 0.5 * (x ** 2).flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_smoothgrad_noise_level_and_batching(nb04):
    x = torch.zeros(1, 3, 8, 8)
    x[0, :, 0, 0], x[0, :, 0, 1] = 1.0, -1.0  # range 2: with noise 0.25, sigma = 0.5
    sg = nb04.smoothgrad(_Energy(), x, 0, n=64, noise=0.25, batch_size=16,
                         generator=torch.Generator().manual_seed(0))
    assert sg.shape == (1, 8, 8)
    # where x = 0 the gradient is the noise: E max_c |N(0, sigma^2)| over 3 channels = 1.326 sigma
    level = float(sg[0, 1:].mean()) / 0.5
    assert 1.25 < level < 1.40, f"mean map {level:.3f} sigma: the noise or the averaging is off"
    a = nb04.smoothgrad(_Energy(), x, 0, n=6, noise=0.25, batch_size=4, generator=torch.Generator().manual_seed(1))
    b = nb04.smoothgrad(_Energy(), x, 0, n=6, noise=0.25, batch_size=6, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a, b, atol=1e-6), "the batch size changes the result"


class _Cubic(nn.Module):
    """Class 0 scores sum(x^3) / 3 (its gradient is x^2), class 1 scores 0."""

    def forward(self, x):
        s = (x ** 3).flatten(1).sum(1) / 3
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_integrated_gradients_midpoint_rule_on_a_cubic(nb04):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 4, 4, generator=gen, dtype=torch.float64)
    baseline = 0.5 * torch.randn(1, 3, 4, 4, generator=gen, dtype=torch.float64)
    steps = 4
    alphas = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
    ref = (x - baseline) * sum((baseline + a * (x - baseline)) ** 2 for a in alphas) / steps
    ours = nb04.integrated_gradients(_Cubic().double(), x, 0, baseline=baseline, steps=steps, batch_size=3)
    assert ours.shape == x.shape
    assert torch.allclose(ours, ref, atol=1e-10)


def test_grad_cam_on_a_network_without_global_pooling(nb04):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).requires_grad_(False)
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    cam = nb04.grad_cam(net, x, torch.tensor([2, 0]), "1")
    a = net[:2](x)
    g = net[3].weight.view(3, 4, 4, 4)[[2, 0]]  # d score / d activation: the linear layer's weights
    ref = F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1))
    assert cam.shape == (2, 4, 4)
    assert (ref == 0).any() and (ref > 0).any()  # the ReLU matters here
    assert torch.allclose(cam, ref, atol=1e-6)


class _Corner(nn.Module):
    """Class 0 scores 10 x the mean of the top-left 2x2 block of channel 0; class 1 scores 7."""

    def forward(self, x):
        s = 10 * x[:, 0, :2, :2].mean(dim=(1, 2))
        return torch.stack([s, torch.full_like(s, 7.0)], dim=1)


def test_deletion_curve_blocks_baseline_and_target(nb04):
    x = torch.ones(1, 3, 4, 4)
    importance = torch.zeros(4, 4)
    importance[0, 0] = 1.0          # top-left block: mean 0.25 (max 1)
    importance[:2, 2:] = 0.5        # top-right block: mean 0.5
    importance[2:, :2] = 0.3        # bottom-left block: mean 0.3
    curve = nb04.deletion_curve(_Corner(), x, 0, importance, steps=4, block=2, baseline=torch.full_like(x, 0.5))
    # blocks deleted by mean importance: top-right, bottom-left, top-left (the one the model reads), ...
    # class 0's score: 10, then 10 x 0.5 (the baseline) once its block is gone; class 1 then wins
    want = torch.sigmoid(torch.tensor([3.0, 3.0, 3.0, -2.0, -2.0]))
    assert curve.shape == (5,)
    assert torch.allclose(curve, want, atol=1e-6)
