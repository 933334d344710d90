"""The feed-forward style transformer of notebook 12 and of ``scripts/train_fast_style.py``.

Johnson et al. (2016)'s image transformation network, with Dumoulin et al. (2017)'s conditional
normalization so that one network paints several styles::

    net = TransformerNet(norm, n_styles=3, channels=12, n_residual=3)
    y = net(x, style=1)                       # x, y: normalized (N, 3, H, W) images
    y = net(x, style=[0.5, 0.5, 0.0])         # halfway between styles 0 and 1

Architecture: reflection padding before every convolution (no zero borders), two stride-2
convolutions down, ``n_residual`` residual blocks at a quarter of the resolution, and two
nearest-neighbour upsamplings each followed by a convolution (``upsample="transposed"`` gives
stride-2 transposed convolutions instead, for the checkerboard comparison), then a 9x9
convolution to RGB and a sigmoid. Every convolution but the last is followed by a conditional
normalization layer, a :class:`ConditionalNorm`: it holds one scale and one shift per style and
channel, ``weight`` and ``bias`` of shape ``(n_styles, channels)``, and computes
``norm(x, style, weight, bias)`` with the function ``norm`` that the network was given (the
normalization itself is notebook 12's exercise, it is not in this module).

``style`` is one style's index, a vector of ``n_styles`` weights (a mixture, shared by the
batch), or an ``(N, n_styles)`` matrix (one mixture per image): see :func:`style_weights`.

The training loop :func:`train` never knows the loss: it receives ``loss_fn(outputs,
contents, style) -> {"total": ..., other parts}`` and a ``sample(step) -> (contents, style)``
function (:class:`CropSampler` draws random crops of a set of photos).
"""
from __future__ import annotations

import json
import math
import time
from importlib.resources import files
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .images import IMAGENET_MEAN, IMAGENET_STD
from .progress import progress

NormFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def style_weights(style, n: int, n_styles: int, device=None) -> torch.Tensor:
    """``(n, n_styles)`` float weights from an index, a vector of weights or a matrix of them.

    An index ``s`` gives the one-hot vector of style ``s``, an ``(n,)`` integer tensor one index per
    image; a vector of ``n_styles`` weights is repeated for the ``n`` images; an ``(n, n_styles)``
    matrix is returned as it is. Weights are used as given (not renormalized): a mixture's weights
    should sum to 1.
    """
    if isinstance(style, bool):
        raise TypeError("style must be an index, a vector of weights or a matrix, not a bool")
    if isinstance(style, int) or (isinstance(style, torch.Tensor) and style.dim() == 0
                                  and not style.is_floating_point()):
        s = int(style)
        if not 0 <= s < n_styles:
            raise ValueError(f"style index {s} out of range: this network has {n_styles} styles")
        w = torch.zeros(n, n_styles, device=device)
        w[:, s] = 1.0
        return w
    if isinstance(style, torch.Tensor) and style.dim() == 1 and not style.is_floating_point():
        if style.shape[0] != n or style.min() < 0 or style.max() >= n_styles:
            raise ValueError(f"style indices {style.tolist()} do not fit a batch of {n} images "
                             f"and {n_styles} styles")
        return F.one_hot(style.to(device), n_styles).float()
    w = torch.as_tensor(style, dtype=torch.float32, device=device)
    if w.dim() == 1:
        w = w.expand(n, -1)
    if w.dim() != 2 or w.shape != (n, n_styles):
        raise ValueError(f"style weights of shape {tuple(w.shape)} do not fit a batch of {n} images "
                         f"and {n_styles} styles: give an index, ({n_styles},) or ({n}, {n_styles})")
    return w


class ConditionalNorm(nn.Module):
    """Per-style scale and shift: ``weight``, ``bias`` of shape ``(n_styles, channels)``
    (initialised to 1 and 0); ``forward(x, style)`` returns ``norm(x, style, weight, bias)``."""

    def __init__(self, channels: int, n_styles: int, norm: NormFunction):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_styles, channels))
        self.bias = nn.Parameter(torch.zeros(n_styles, channels))
        self.norm = norm

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.norm(x, style, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"styles={self.weight.shape[0]}, channels={self.weight.shape[1]}"


class Conv(nn.Module):
    """Reflection padding, then a convolution without padding (no dark zero borders)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x):
        return self.conv(self.pad(x))


class UpConv(nn.Module):
    """Double the resolution: nearest-neighbour upsampling then a 3x3 convolution, or (``mode=
    "transposed"``) a stride-2 transposed convolution with a 3x3 kernel."""

    def __init__(self, cin: int, cout: int, mode: str = "nearest"):
        super().__init__()
        if mode not in ("nearest", "transposed"):
            raise ValueError(f"upsample must be 'nearest' or 'transposed', got {mode!r}")
        self.mode = mode
        if mode == "nearest":
            self.conv = Conv(cin, cout, 3)
        else:
            self.conv = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        if self.mode == "nearest":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x)


class Residual(nn.Module):
    """x + norm(conv(relu(norm(conv(x))))): the block can start as the identity."""

    def __init__(self, channels: int, n_styles: int, norm: NormFunction):
        super().__init__()
        self.conv1, self.norm1 = Conv(channels, channels, 3), ConditionalNorm(channels, n_styles, norm)
        self.conv2, self.norm2 = Conv(channels, channels, 3), ConditionalNorm(channels, n_styles, norm)

    def forward(self, x, style):
        h = F.relu(self.norm1(self.conv1(x), style))
        return x + self.norm2(self.conv2(h), style)


class TransformerNet(nn.Module):
    """Johnson et al.'s transformer with conditional normalization (see the module's help).

    ``norm(x, style, weight, bias)``: the normalization function (notebook 12's exercise);
    ``channels``: width of the first layer (the layers have 1x, 2x, 4x, 4x (residual), 2x, 1x);
    ``upsample``: "nearest" (upsampling + convolution) or "transposed".
    Input and output are normalized images (see :func:`tp_utils.preprocess`); the sides of the
    input should be multiples of 4 (other sizes are cropped to the nearest multiple of 4).
    """

    def __init__(self, norm: NormFunction, n_styles: int = 3, channels: int = 16,
                 n_residual: int = 3, upsample: str = "nearest"):
        super().__init__()
        if not callable(norm):
            raise TypeError("TransformerNet needs the normalization function norm(x, style, weight, "
                            "bias) (notebook 12's exercise), got " + type(norm).__name__)
        c = channels
        self.config = dict(n_styles=n_styles, channels=channels, n_residual=n_residual,
                           upsample=upsample)
        self.n_styles = n_styles
        self.down = nn.ModuleList([Conv(3, c, 9), Conv(c, 2 * c, 3, 2), Conv(2 * c, 4 * c, 3, 2)])
        self.down_norms = nn.ModuleList([ConditionalNorm(k * c, n_styles, norm) for k in (1, 2, 4)])
        self.residuals = nn.ModuleList([Residual(4 * c, n_styles, norm) for _ in range(n_residual)])
        self.up = nn.ModuleList([UpConv(4 * c, 2 * c, upsample), UpConv(2 * c, c, upsample)])
        self.up_norms = nn.ModuleList([ConditionalNorm(k * c, n_styles, norm) for k in (2, 1)])
        self.to_rgb = Conv(c, 3, 9)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor, style=0) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"the network expects a normalized (N, 3, H, W) batch, got {tuple(x.shape)}")
        h, w = x.shape[-2] // 4 * 4, x.shape[-1] // 4 * 4
        if min(h, w) < 16:
            raise ValueError(f"an image of {x.shape[-2]}x{x.shape[-1]} pixels is too small: use at least 16x16")
        x = x[..., :h, :w]
        s = style_weights(style, x.shape[0], self.n_styles, device=x.device)
        for conv, norm in zip(self.down, self.down_norms):
            x = F.relu(norm(conv(x), s))
        for block in self.residuals:
            x = block(x, s)
        for conv, norm in zip(self.up, self.up_norms):
            x = F.relu(norm(conv(x), s))
        rgb = torch.sigmoid(self.to_rgb(x))
        return (rgb - self.mean) / self.std


def n_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def build(norm: NormFunction, config: dict) -> TransformerNet:
    """A network from a configuration dict (``n_styles``, ``channels``, ``n_residual``, ...)."""
    keys = ("n_styles", "channels", "n_residual", "upsample")
    return TransformerNet(norm, **{k: config[k] for k in keys if k in config})


def load(path: str | Path, norm: NormFunction, device=None) -> tuple[TransformerNet, dict]:
    """A trained network and its record: ``path`` is the ``.pt`` state dict, its ``.json``
    record beside it gives the configuration (and how it was trained). Eval mode, frozen."""
    path = Path(path)
    record_path = path.with_suffix(".json")
    if not path.exists() or not record_path.exists():
        raise FileNotFoundError(f"{path} or its record {record_path.name} is missing: run "
                                "`python scripts/train_fast_style.py` to train it")
    record = json.loads(record_path.read_text())
    net = build(norm, record["config"])
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.requires_grad_(False).eval()
    return (net.to(device) if device is not None else net), record


TRAINED = Path(str(files("tp_utils") / "data" / "fast_style" / "cin_3styles.pt"))
"""The network the course trained for the three paintings (``scripts/train_fast_style.py``),
package data in ``tp_utils/data/fast_style/`` (found in any install through importlib.resources)."""


# ---- training data and loop ----------------------------------------------------------------

class CropSampler:
    """Random training batches: crops of ``photos`` (a normalized ``(P, 3, H, W)`` tensor),
    each a random square of side between ``min_scale`` and 1 times the photo's, resized to
    ``size``, flipped half of the time, paired with a style index (the styles are dealt in turn
    so that every batch holds them in equal shares when ``batch`` is a multiple of them).
    ``sample(step)`` returns ``(crops (batch, 3, size, size), style (batch,) long)``; the
    ``generator`` makes the sequence reproducible."""

    def __init__(self, photos: torch.Tensor, size: int = 128, batch: int = 6, n_styles: int = 3,
                 min_scale: float = 0.6, generator: torch.Generator | None = None):
        if photos.dim() != 4 or photos.shape[1] != 3:
            raise ValueError(f"photos must be a normalized (P, 3, H, W) tensor, got {tuple(photos.shape)}")
        self.photos, self.size, self.batch = photos, size, batch
        self.n_styles, self.min_scale = n_styles, min_scale
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def __call__(self, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.generator
        P, _, H, W = self.photos.shape
        idx = torch.randint(P, (self.batch,), generator=g)
        scale = self.min_scale + (1 - self.min_scale) * torch.rand(self.batch, generator=g)
        crops = []
        for i in range(self.batch):
            side = max(self.size // 2, int(round(float(scale[i]) * min(H, W))))
            top = int(torch.randint(H - side + 1, (1,), generator=g))
            left = int(torch.randint(W - side + 1, (1,), generator=g))
            crop = self.photos[idx[i], :, top:top + side, left:left + side][None]
            if side != self.size:
                crop = F.interpolate(crop, size=(self.size, self.size), mode="bilinear",
                                     align_corners=False, antialias=side > self.size)
            if float(torch.rand(1, generator=g)) < 0.5:
                crop = crop.flip(-1)
            crops.append(crop)
        first = step * self.batch
        style = torch.arange(first, first + self.batch) % self.n_styles
        return torch.cat(crops), style


def train(net: nn.Module, loss_fn: Callable, sample: Callable, steps: int, lr: float = 1e-3,
          lr_end: float | None = None, device=None, desc: str = "train",
          callback: Callable | None = None) -> list[dict]:
    """Train ``net`` with Adam for ``steps`` steps; returns the losses of every step.

    ``sample(step) -> (contents, style)``; ``loss_fn(outputs, contents, style) -> dict`` with
    a ``"total"`` entry (the scalar to minimize) and any other parts to record. The learning rate
    decays along a cosine from ``lr`` to ``lr_end`` (default: ``lr``, constant). ``callback(step,
    net, losses)`` runs after each step. (The network has no dropout and no batch statistics:
    train and eval modes compute the same function.)
    """
    device = device or next(net.parameters()).device
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    lr_end = lr if lr_end is None else lr_end
    history = []
    for step in progress(range(steps), desc=desc):
        for group in opt.param_groups:
            group["lr"] = lr_end + (lr - lr_end) * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
        contents, style = sample(step)
        contents, style = contents.to(device), style.to(device)
        outputs = net(contents, style)
        losses = loss_fn(outputs, contents, style)
        total = losses["total"]
        if not torch.isfinite(total):
            raise FloatingPointError(f"the training loss is {float(total)} at step {step}: lower the "
                                     f"learning rate (lr={lr}) or check the loss")
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        history.append({k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                        for k, v in losses.items()})
        if callback is not None:
            callback(step, net, history[-1])
    return history


def timed(fn: Callable, repeat: int = 5) -> float:
    """The median wall time of ``fn()`` over ``repeat`` runs (after one warm-up run), in seconds.
    On a GPU it waits for the queued kernels before reading the clock (CUDA runs asynchronously)."""
    def sync():
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    fn()
    times = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
