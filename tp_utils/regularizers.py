"""Image regularizers for feature visualization, as small composable torch functions.

Transforms map an image batch ``(N, C, H, W)`` to another and are built by
factories (``jitter(8)``, ``blur(1.0)``) so they chain with :func:`compose`; they
are differentiable, so applying them inside the forward pass also transforms the
gradient::

    transform = compose([jitter(8), blur(0.5), clip_small_grads(10)])
    y = model(transform(img))

The penalties the lessons add to their objectives (the L2 norm of class visualization,
total variation) are exercises of the notebooks, not functions of this package.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor], torch.Tensor]


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order."""
    def inner(x: torch.Tensor) -> torch.Tensor:
        for t in transforms:
            x = t(x)
        return x
    return inner


def roll(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Shift ``x`` cyclically by ``dx`` pixels right and ``dy`` pixels down."""
    return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))


def jitter(d: int, generator: torch.Generator | None = None) -> Transform:
    """Random cyclic shift by up to ``d`` pixels in each direction (new shift per call)."""
    def inner(x: torch.Tensor) -> torch.Tensor:
        dx, dy = torch.randint(-d, d + 1, (2,), generator=generator).tolist()
        return roll(x, dx, dy)
    return inner


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalized 1-D Gaussian of standard deviation ``sigma``, radius ``ceil(3 sigma)``."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def blur(sigma: float, padding: str = "reflect") -> Transform:
    """Separable Gaussian blur of each channel (``padding``: "reflect" or "circular").

    The kernel sums to 1, so a constant image is unchanged; with "circular"
    padding the mean of every channel is kept exactly.
    """
    def inner(x: torch.Tensor) -> torch.Tensor:
        if sigma <= 0:
            return x
        k = gaussian_kernel(sigma).to(x)
        c, r = x.shape[1], k.numel() // 2
        if padding == "reflect" and r >= min(x.shape[-2:]):
            raise ValueError(f"blur(sigma={sigma}) needs images larger than {r} pixels")
        x = F.pad(x, (r, r, r, r), mode=padding)
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return inner


def _small_pixels(t: torch.Tensor, percentile: float) -> torch.Tensor:
    """``(N, 1, H, W)`` mask of the pixels whose norm over channels is below ``percentile``."""
    norm = t.detach().norm(dim=1, keepdim=True)
    threshold = torch.quantile(norm.flatten(1).float(), percentile / 100.0, dim=1)
    return norm < threshold.view(-1, 1, 1, 1).to(norm)


def clip_small_values(percentile: float) -> Transform:
    """Zero the pixels whose norm over channels is in the lowest ``percentile`` percent."""
    def inner(x: torch.Tensor) -> torch.Tensor:
        return x.masked_fill(_small_pixels(x, percentile), 0.0)
    return inner


def clip_small_grads(percentile: float) -> Transform:
    """Identity forward; backward, zero the gradient of the pixels whose gradient norm
    is in the lowest ``percentile`` percent (only the pixels that matter move)."""
    def inner(x: torch.Tensor) -> torch.Tensor:
        if not x.requires_grad:
            return x
        y = x.view_as(x)
        y.register_hook(lambda g: g.masked_fill(_small_pixels(g, percentile), 0.0))
        return y
    return inner


# ---- transformation robustness (Olah et al., Distill 2017; Lucid's standard transforms) ----

def _pick(choices: Sequence[float], generator: torch.Generator | None) -> float:
    """One of ``choices``, drawn uniformly with ``generator``."""
    return float(choices[int(torch.randint(len(choices), (1,), generator=generator))])


def random_affine(scales: Sequence[float] = (1.0,), degrees: Sequence[float] = (0.0,), shift: int = 0,
                  generator: torch.Generator | None = None) -> Transform:
    """Scale by a factor drawn from ``scales`` and rotate by an angle (degrees, counterclockwise)
    drawn from ``degrees``, about the centre, then shift by up to ``shift`` pixels in each
    direction: one bilinear resampling, the same size out, 0 (the mean colour) where nothing maps.

    The cheap equivalent of Lucid's chain pad, jitter, random scale, random rotation, crop back
    to size: one ``grid_sample`` instead of a chain of resamplings (tests/test_optimize.py holds
    that chain and checks the two agree).
    """
    scales, degrees = list(scales), list(degrees)
    if not scales or min(scales) <= 0 or not degrees:
        raise ValueError(f"random_affine needs positive scales and at least one angle, got {scales}, {degrees}")

    def inner(x: torch.Tensor) -> torch.Tensor:
        s, a = _pick(scales, generator), math.radians(_pick(degrees, generator))
        dx, dy = (torch.randint(-shift, shift + 1, (2,), generator=generator).tolist() if shift else (0, 0))
        if s == 1.0 and a == 0.0 and dx == 0 and dy == 0:
            return x
        h, w = x.shape[-2:]
        cos, sin = math.cos(a) / s, math.sin(a) / s
        # output -> input, in grid_sample's [-1, 1] coordinates (corrected for the aspect ratio)
        # (what F.affine_grid computes, with two broadcast sums instead of a batched matmul)
        u = (torch.arange(w, dtype=x.dtype, device=x.device) * 2 + 1) / w - 1   # pixel centres
        v = ((torch.arange(h, dtype=x.dtype, device=x.device) * 2 + 1) / h - 1)[:, None]
        grid = torch.stack([cos * u - sin * h / w * v - 2.0 * dx / w,
                            sin * w / h * u + cos * v - 2.0 * dy / h], dim=-1)
        grid = grid.expand(x.shape[0], h, w, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return inner
