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

def pad(width: int, value: float = 0.0) -> Transform:
    """Pad every side with ``width`` pixels of the constant ``value`` (0 = the mean colour
    of a normalized image), so that later jitter, scaling and rotation do not wrap the image."""
    def inner(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (width, width, width, width), mode="constant", value=value)
    return inner


def _pick(choices: Sequence[float], generator: torch.Generator | None) -> float:
    return float(choices[int(torch.randint(len(choices), (1,), generator=generator))])


def random_scale(scales: Sequence[float], generator: torch.Generator | None = None) -> Transform:
    """Resize by a factor drawn from ``scales`` (bilinear; a new factor at every call)."""
    scales = list(scales)
    if not scales or min(scales) <= 0:
        raise ValueError(f"random_scale needs positive factors, got {scales}")

    def inner(x: torch.Tensor) -> torch.Tensor:
        s = _pick(scales, generator)
        if s == 1.0:
            return x
        size = [max(1, round(n * s)) for n in x.shape[-2:]]
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return inner


def random_rotate(degrees: Sequence[float], generator: torch.Generator | None = None) -> Transform:
    """Rotate about the centre by an angle (in degrees) drawn from ``degrees``; the corners
    that come from outside the image are 0 (the mean colour of a normalized image)."""
    degrees = list(degrees)
    if not degrees:
        raise ValueError("random_rotate needs at least one angle")

    def inner(x: torch.Tensor) -> torch.Tensor:
        a = math.radians(_pick(degrees, generator))
        if a == 0.0:
            return x
        h, w = x.shape[-2:]
        cos, sin = math.cos(a), math.sin(a)
        # affine_grid works in [-1, 1] coordinates: correct the aspect ratio of non-square images
        theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]],
                             dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return inner


def standard_transforms(generator: torch.Generator | None = None) -> list[Transform]:
    """Lucid's ``transforms.standard_transforms``: pad 12, jitter 8, scale by 0.9 to 1.1,
    rotate by -10 to 10 degrees, jitter 4 (sizes for a 224-pixel image). The output is larger
    than the input (about 248 pixels for 224); wrap the list in :func:`keep_size` to keep 224."""
    return [pad(12), jitter(8, generator),
            random_scale([1 + (i - 5) / 50 for i in range(11)], generator),
            random_rotate(list(range(-10, 11)) + 5 * [0], generator), jitter(4, generator)]


def center_crop_or_pad(x: torch.Tensor, size: Sequence[int], value: float = 0.0) -> torch.Tensor:
    """Cut ``x`` to ``size = (H, W)`` about its centre, padding with ``value`` where it is smaller."""
    out = x
    for dim, want in ((-2, size[0]), (-1, size[1])):
        have = out.shape[dim]
        if have > want:
            out = out.narrow(dim, (have - want) // 2, want)
        elif have < want:
            before = (want - have) // 2
            widths = [0, 0, 0, 0]
            widths[0 if dim == -1 else 2], widths[1 if dim == -1 else 3] = before, want - have - before
            out = F.pad(out, widths, mode="constant", value=value)
    return out


def keep_size(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order, then cut or pad the result back to the input's size, so
    that the model always sees images of one size (and costs the same at every step)."""
    inner_transform = compose(list(transforms))

    def inner(x: torch.Tensor) -> torch.Tensor:
        return center_crop_or_pad(inner_transform(x), x.shape[-2:])
    return inner


def random_affine(scales: Sequence[float] = (1.0,), degrees: Sequence[float] = (0.0,), shift: int = 0,
                  generator: torch.Generator | None = None) -> Transform:
    """Scale by a factor drawn from ``scales`` and rotate by an angle (degrees, counterclockwise)
    drawn from ``degrees``, about the centre, then shift by up to ``shift`` pixels in each
    direction: one bilinear resampling, the same size out, 0 (the mean colour) where nothing maps.

    The cheap equivalent of ``keep_size([pad(shift), jitter(shift), random_scale(scales),
    random_rotate(degrees)])``: one ``grid_sample`` instead of a chain of resamplings.
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
