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
import numbers
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
        # With norm="ortho" this is Lucid's scaling (its irfft2d divides by h w, its scale has a
        # factor sqrt(h w)): at sd=0.01 the start is a grey image with faint low-frequency colour.
        scale = 1.0 / freq.clamp(min=1.0 / max(h, w)) ** decay_power
        # (Lucid then divides the image by 4: folded into the scale)
        self.register_buffer("scale", (scale / 4.0)[..., None].expand(-1, -1, 2).contiguous())
        self.spectrum = nn.Parameter(torch.randn((n, c, h, w // 2 + 1, 2), generator=generator) * sd)
        self.size, self.decorrelate = (h, w), decorrelate
        color = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()
        self.register_buffer("color", color)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("shift", -mean / std)
        self.register_buffer("inv_std", 1.0 / std)

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum * self.scale)
        img = torch.fft.irfft2(spectrum, s=self.size, norm="ortho")
        if self.decorrelate:
            img = (self.color @ img.flatten(2)).view_as(img)
        return torch.addcmul(self.shift, torch.sigmoid(img), self.inv_std)  # (sigmoid - mean) / std


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
        opt = kind(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"the optimizer factory returned {type(opt).__name__}, not a "
                            "torch.optim.Optimizer (write it as `lambda params: torch.optim.SGD(params, lr=...)`)")
        return opt
    factories = {"adam": lambda: torch.optim.Adam(params, lr=lr),
                 "sgd": lambda: torch.optim.SGD(params, lr=lr),
                 "lbfgs": lambda: torch.optim.LBFGS(params, lr=lr, max_iter=1,
                                                    history_size=20, line_search_fn="strong_wolfe")}
    if kind not in factories:
        raise ValueError(f"unknown optimizer {kind!r}: use 'adam', 'sgd', 'lbfgs' or a function "
                         "params -> torch.optim.Optimizer")
    return factories[kind]()


def _check_arguments(image, objective, steps, lr, optimizer, snapshot_every):
    if not isinstance(image, nn.Module):
        hint = (" (for a tensor, use pixel_image(init=tensor))" if isinstance(image, torch.Tensor)
                else "")
        raise TypeError(f"image must be an image parameterization such as pixel_image(...) or "
                        f"fourier_image(...), got {type(image).__name__}{hint}")
    if not callable(objective):
        raise TypeError(f"objective must be a function of the image batch returning the scalar "
                        f"to minimize, got {type(objective).__name__}")
    if not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"steps must be a whole number >= 0, got {steps!r}")
    if isinstance(optimizer, str) and (not isinstance(lr, numbers.Real) or not lr > 0):
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    if snapshot_every is not None and (not isinstance(snapshot_every, numbers.Integral)
                                       or snapshot_every < 1):
        raise ValueError(f"snapshot_every must be None or a whole number >= 1, got {snapshot_every!r}")


def optimize(image: nn.Module, objective: Objective, steps: int = 100, lr: float = 0.05,
             optimizer="adam", transforms: Sequence[Callable] = (),
             callbacks: Sequence[Callback] = (), snapshot_every: int | None = None,
             desc: str = "optimize") -> Result:
    """Minimize ``objective(transform(image()))`` over the parameters of ``image``.

    ``transforms`` (e.g. ``regularizers.jitter(8)``) are applied to the image before the
    objective, differentiably; ``callbacks`` run after every step as ``fn(step, image)`` with
    gradients off (clamping, periodic blur, ...). ``optimizer``: "adam", "sgd", "lbfgs" or a
    function ``params -> torch.optim.Optimizer`` (``lr`` is then unused). ``snapshot_every=n``
    keeps a copy of the image every ``n`` steps and after the last one. Returns a
    :class:`Result`; ``result.image`` is a copy, the parameterization keeps its own state.

    The objective must return a scalar tensor that depends on the image; a NaN or infinite
    value stops the loop with an error that gives the step.
    """
    _check_arguments(image, objective, steps, lr, optimizer, snapshot_every)
    transform = compose(list(transforms))
    params = [p for p in image.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the image has no parameter to optimize (requires_grad is off)")
    opt = _optimizer(optimizer, params, lr)
    result = Result(image=image().detach().clone())
    step = 0

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = objective(transform(image()))
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise TypeError(f"the objective must return a scalar tensor (the value to minimize), "
                            f"got {shape}")
        if not loss.requires_grad:
            raise RuntimeError("the objective's value does not depend on the image (no gradient): "
                               "compute it from the tensor it receives, without torch.no_grad(), "
                               ".item(), .detach() or .numpy()")
        loss.reshape(()).backward()
        result.evaluations += 1
        return loss.detach().reshape(())

    # The losses are read back from the device every `read_every` steps: on a GPU, reading one
    # waits for the step to finish, and waiting at every step costs 20-30 % of a style-transfer
    # step (benchmarks/style_transfer.py). A NaN is still reported with the step it appeared at.
    read_every = 1 if params[0].device.type == "cpu" else 50
    pending: list[torch.Tensor] = []

    def read_losses():
        values = torch.stack(pending).tolist() if pending else []
        pending.clear()
        for i, value in enumerate(values):
            if not math.isfinite(value):
                bad = len(result.losses) + i + 1
                raise FloatingPointError(f"the objective is {value} at step {bad}: lower the learning "
                                         f"rate (lr={lr}) or check the objective")
        result.losses.extend(values)

    start = time.perf_counter()
    for step in progress(range(1, steps + 1), desc=desc):
        pending.append(opt.step(closure).detach().reshape(()).float())
        if len(pending) >= read_every or step == steps:
            read_losses()
        if callbacks:
            with torch.no_grad():
                for callback in callbacks:
                    callback(step, image)
        if snapshot_every and (step % snapshot_every == 0 or step == steps):
            with torch.no_grad():
                result.snapshots.append((step, image().detach().clone()))
    result.seconds = time.perf_counter() - start
    with torch.no_grad():
        result.image = image().detach().clone()
    return result


# ---- callbacks: fn(step, image) after each step, under torch.no_grad() ----

def every(n: int, callback: Callback) -> Callback:
    """Run ``callback`` every ``n`` steps only."""
    if not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"every(n, ...) needs a whole number n >= 1, got {n!r}")

    def inner(step, image):
        if step % n == 0:
            callback(step, image)
    return inner


def _pixels(image: nn.Module) -> torch.Tensor:
    if not isinstance(image, PixelImage):
        raise TypeError(f"this callback edits pixels; {type(image).__name__} has none "
                        "(a Fourier image is always in range: it needs no clamping)")
    return image.pixels


def apply_to_pixels(transform: Callable[[torch.Tensor], torch.Tensor]) -> Callback:
    """Replace the pixels of a pixel image by ``transform(pixels)``: any regularizer of
    :mod:`tp_utils.regularizers` applied to the image itself rather than to what the model sees,
    e.g. ``every(4, apply_to_pixels(regularizers.clip_small_values(20)))``."""
    def inner(step, image):
        p = _pixels(image)
        p.copy_(transform(p))
    return inner


def clamp_pixels() -> Callback:
    """Keep a pixel image in the range of real images (every pixel in [0, 1] once deprocessed)."""
    return apply_to_pixels(clamp_normalized)


def blur_image(sigma: float) -> Callback:
    """Blur a pixel image in place (combine with :func:`every`: ``every(10, blur_image(0.5))``)."""
    return apply_to_pixels(blur(sigma))
