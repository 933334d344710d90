"""The image-optimization loop shared by notebooks 07-12, and the image parameterizations.

The loop never knows what it optimizes: the notebook passes an ``objective``, a
function of the (transformed) image batch that returns the scalar to **minimize**
(to maximize a score, return its negative). Everything else is here::

    image = pixel_image((1, 3, 224, 224), sd=0.1, generator=g)     # or fourier_image(...)
    result = optimize(image, objective, steps=200, lr=0.05,
                      transforms=[regularizers.jitter(8)],           # applied before the model
                      callbacks=[clamp_pixels(), every(10, blur_image(0.5))])
    result.image        # normalized (N, 3, H, W) tensor, detached
    result.losses       # the objective at every step
    result.snapshots    # [(step, normalized image)] every ``snapshot_every`` steps

An image parameterization is a small module whose ``forward()`` returns the
normalized image batch (the model's input space, see :func:`tp_utils.preprocess`);
its parameters are what the optimizer changes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from .images import IMAGENET_MEAN, IMAGENET_STD, clamp_normalized
from .progress import progress
from .regularizers import blur, compose

Objective = Callable[[torch.Tensor], torch.Tensor]
Callback = Callable[[int, nn.Module], None]


def _normalize(rgb01: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=rgb01.device, dtype=rgb01.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=rgb01.device, dtype=rgb01.dtype).view(1, 3, 1, 1)
    return (rgb01 - mean) / std


class PixelImage(nn.Module):
    """The image is the parameter itself, in normalized space."""

    def __init__(self, init: torch.Tensor):
        super().__init__()
        self.pixels = nn.Parameter(init.detach().clone().float())

    def forward(self) -> torch.Tensor:
        return self.pixels


def pixel_image(shape=(1, 3, 224, 224), sd: float = 0.01, init: torch.Tensor | None = None,
                generator: torch.Generator | None = None, device=None) -> PixelImage:
    """A pixel parameterization: from ``init`` (a normalized image, e.g. a photo from
    :func:`tp_utils.preprocess`) if given, else Gaussian noise of standard deviation ``sd``
    (in normalized units) drawn with ``generator`` (seeded runs give the same image)."""
    if init is None:
        init = torch.randn(shape, generator=generator) * sd
    return PixelImage(init).to(device or init.device)


# Square root of the colour covariance of ImageNet photos (Olah et al. 2017): drawing each of its
# columns from independent coefficients gives colours with natural correlations.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


class FourierImage(nn.Module):
    """Image = sigmoid(decorrelated colours of the inverse FFT of a scaled spectrum).

    The spectrum's coefficients are divided by their frequency to the power ``decay_power``, so
    a gradient step changes low frequencies as much as high ones (Olah et al., Distill 2017).
    """

    def __init__(self, shape, sd: float = 0.01, decay_power: float = 1.0, decorrelate: bool = True,
                 generator: torch.Generator | None = None):
        super().__init__()
        n, c, h, w = shape
        fy = torch.fft.fftfreq(h)[:, None]
        fx = torch.fft.rfftfreq(w)[None, :]
        freq = torch.sqrt(fx ** 2 + fy ** 2)
        scale = 1.0 / freq.clamp(min=1.0 / max(h, w)) ** decay_power
        self.register_buffer("scale", scale * math.sqrt(h * w))
        self.spectrum = nn.Parameter(torch.randn((n, c, h, w // 2 + 1, 2), generator=generator) * sd)
        self.size, self.decorrelate = (h, w), decorrelate
        color = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()
        self.register_buffer("color", color)

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        img = torch.fft.irfft2(spectrum, s=self.size, norm="ortho") / 4.0
        if self.decorrelate:
            img = torch.einsum("ij,njhw->nihw", self.color, img)
        return _normalize(torch.sigmoid(img))


def fourier_image(shape=(1, 3, 224, 224), sd: float = 0.01, decay_power: float = 1.0,
                  decorrelate: bool = True, generator: torch.Generator | None = None,
                  device=None) -> FourierImage:
    """A Fourier parameterization with decorrelated colours (always a valid image)."""
    return FourierImage(shape, sd, decay_power, decorrelate, generator).to(device or "cpu")


@dataclass
class Result:
    image: torch.Tensor
    losses: list[float] = field(default_factory=list)
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    seconds: float = 0.0
    evaluations: int = 0  # objective evaluations (L-BFGS makes several per step)


def _optimizer(kind, params, lr):
    if callable(kind) and not isinstance(kind, str):
        return kind(params)
    factories = {"adam": lambda: torch.optim.Adam(params, lr=lr),
                 "sgd": lambda: torch.optim.SGD(params, lr=lr),
                 "lbfgs": lambda: torch.optim.LBFGS(params, lr=lr, max_iter=1,
                                                    history_size=20, line_search_fn="strong_wolfe")}
    if kind not in factories:
        raise ValueError(f"unknown optimizer {kind!r}: use 'adam', 'sgd', 'lbfgs' or a function "
                         "params -> torch.optim.Optimizer")
    return factories[kind]()


def optimize(image: nn.Module, objective: Objective, steps: int = 100, lr: float = 0.05,
             optimizer="adam", transforms: Sequence[Callable] = (),
             callbacks: Sequence[Callback] = (), snapshot_every: int | None = None,
             desc: str = "optimize") -> Result:
    """Minimize ``objective(transform(image()))`` over the parameters of ``image``.

    ``transforms`` (e.g. ``regularizers.jitter(8)``) are applied to the image before the
    objective, differentiably; ``callbacks`` run after every step as ``fn(step, image)`` with
    gradients off (clamping, periodic blur, ...). ``optimizer``: "adam", "sgd", "lbfgs" or a
    function ``params -> torch.optim.Optimizer``. Returns a :class:`Result`.
    """
    transform = compose(list(transforms))
    params = [p for p in image.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the image has no parameter to optimize (requires_grad is off)")
    opt = _optimizer(optimizer, params, lr)
    result = Result(image=image().detach())
    start = time.perf_counter()

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = objective(transform(image()))
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError("the objective must return a scalar tensor (the value to minimize)")
        loss.backward()
        result.evaluations += 1
        return loss

    for step in progress(range(1, steps + 1), desc=desc):
        loss = opt.step(closure)
        result.losses.append(float(loss.detach()))
        with torch.no_grad():
            for callback in callbacks:
                callback(step, image)
        if snapshot_every and (step % snapshot_every == 0 or step == steps):
            result.snapshots.append((step, image().detach().clone()))
    result.seconds = time.perf_counter() - start
    result.image = image().detach()
    return result


# ---- callbacks: fn(step, image) after each step, under torch.no_grad() ----

def every(n: int, callback: Callback) -> Callback:
    """Run ``callback`` every ``n`` steps only."""
    def inner(step, image):
        if step % n == 0:
            callback(step, image)
    return inner


def _pixels(image: nn.Module) -> torch.Tensor:
    if not isinstance(image, PixelImage):
        raise TypeError(f"this callback edits pixels; {type(image).__name__} has none "
                        "(a Fourier image is always in range: it needs no clamping)")
    return image.pixels


def clamp_pixels() -> Callback:
    """Keep a pixel image in the range of real images (every pixel in [0, 1] once deprocessed)."""
    def inner(step, image):
        p = _pixels(image)
        p.copy_(clamp_normalized(p))
    return inner


def blur_image(sigma: float) -> Callback:
    """Blur a pixel image in place (combine with :func:`every`: ``every(10, blur_image(0.5))``)."""
    smooth = blur(sigma)

    def inner(step, image):
        p = _pixels(image)
        p.copy_(smooth(p))
    return inner
