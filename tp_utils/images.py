"""Image I/O and the ``preprocess`` / ``deprocess`` pair around the ImageNet mean and std.

Tensors are ``(N, 3, H, W)`` float32, RGB, normalized per channel with
``IMAGENET_MEAN`` / ``IMAGENET_STD``; displayable images are ``(H, W, 3)`` arrays
in [0, 1].
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load():
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _motorcycle() -> np.ndarray:
    import skimage.data

    return skimage.data.stereo_motorcycle()[0]


def _grace_hopper() -> Image.Image:
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return Image.open(f).copy()


def _sklearn(index: int) -> Callable[[], np.ndarray]:
    def load():
        from sklearn.datasets import load_sample_images

        return load_sample_images().images[index]

    return load


# Photos shipped inside installed packages: always available offline.
SAMPLE_IMAGES: dict[str, Callable[[], ImageLike]] = {
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "astronaut": _skimage("astronaut"),
    "rocket": _skimage("rocket"),
    "motorcycle": _motorcycle,
    "hubble": _skimage("hubble_deep_field"),
    "grace_hopper": _grace_hopper,
    "china": _sklearn(0),
    "flower": _sklearn(1),
    "brick": _skimage("brick"),
    "grass": _skimage("grass"),
    "gravel": _skimage("gravel"),
}
# The painting assets and the content photographs for style transfer (fetched with pooch,
# see ``tp_utils.assets``): load them by name, e.g. ``load_image("starry_night")``.
PAINTINGS = ("starry_night", "the_scream", "shipwreck")
CONTENT_PHOTOS = ("tubingen", "golden_gate", "hoovertowernight")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, LA, P, RGBA, I;16, I, F, CMYK, ...) to 8-bit RGB.

    Transparent pixels are composited on white; 16-bit and float images are
    rescaled from their own range, not clipped.
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _array_to_pil(arr: np.ndarray) -> Image.Image:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"cannot read an image from an array of shape {arr.shape}; "
                         "expected (H, W), (H, W, 3) or (H, W, 4)")
    if arr.dtype == np.uint16:
        arr = (arr / 257.0 + 0.5).astype(np.uint8)
    elif arr.dtype.kind == "f":
        if np.nanmin(arr) < 0 or np.nanmax(arr) > 1:
            raise ValueError("float images must be in [0, 1]; got values in "
                             f"[{np.nanmin(arr):.3g}, {np.nanmax(arr):.3g}]")
        arr = (arr * 255 + 0.5).astype(np.uint8)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        raise ValueError(f"unsupported image dtype {arr.dtype}; use uint8, uint16, bool or float in [0, 1]")
    return Image.fromarray(arr)


def load_image(src: ImageLike) -> Image.Image:
    """An RGB PIL image from a sample name, a painting or content-photo name, a path, a PIL
    image or an array."""
    if isinstance(src, Image.Image):
        return to_rgb(src)
    if isinstance(src, np.ndarray):
        return to_rgb(_array_to_pil(src))
    if isinstance(src, str) and src in SAMPLE_IMAGES:
        return load_image(SAMPLE_IMAGES[src]())
    if isinstance(src, str) and src in PAINTINGS + CONTENT_PHOTOS:
        from .assets import fetch

        src = fetch(src + ".jpg")
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            choices = ", ".join(list(SAMPLE_IMAGES) + list(PAINTINGS) + list(CONTENT_PHOTOS))
            raise FileNotFoundError(f"{src!r} is neither an existing file nor a sample image "
                                    f"name (samples: {choices})")
        try:
            with Image.open(path) as img:
                img.load()
                return to_rgb(img)
        except UnidentifiedImageError as err:
            raise ValueError(f"{path} is not an image file that Pillow can read") from err
    raise TypeError(f"cannot load an image from a {type(src).__name__}")


def sample_images(names=None) -> dict[str, Image.Image]:
    """``{name: RGB PIL image}`` for the given sample names (default: all)."""
    return {name: load_image(name) for name in (names or SAMPLE_IMAGES)}


def _mean_std(device=None) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return mean, std


def resize_crop(img: ImageLike, size: int | None = 224, crop: bool = True) -> Image.Image:
    """The geometric part of :func:`preprocess`: an RGB PIL image, resized (and cropped)."""
    img = load_image(img)
    if size is None:
        return img
    if size < 16:
        raise ValueError(f"size={size} is too small; use at least 16 pixels (224 for classification)")
    short = int(size * 256 / 224) if crop else size
    img = TF.resize(img, short, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(img, size) if crop else img


def preprocess(img: ImageLike, size: int | None = 224, crop: bool = True) -> torch.Tensor:
    """Image -> normalized ``(1, 3, H, W)`` float32 tensor ``(rgb / 255 - mean) / std``.

    ``crop=True`` (classification): resize the shorter side to ``size * 256 / 224``
    then center-crop ``size x size`` (torchvision's ImageNet evaluation transform:
    ``Resize(256)``, ``CenterCrop(224)``, bilinear with antialiasing).
    ``crop=False``: resize the shorter side to ``size`` and keep the aspect ratio.
    ``size=None`` keeps the image as it is.
    """
    img = resize_crop(img, size, crop)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    mean, std = _mean_std()
    return ((x - mean) / std).contiguous()  # standard NCHW layout (the permute left it channels-last)


def deprocess(x: torch.Tensor) -> np.ndarray:
    """Normalized ``(N, 3, H, W)`` or ``(3, H, W)`` tensor -> ``(N, H, W, 3)`` / ``(H, W, 3)`` array in [0, 1]."""
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"expected a (N, 3, H, W) or (3, H, W) tensor, got shape {tuple(x.shape)}")
    single = x.dim() == 3
    x = x.detach().float()[None] if single else x.detach().float()
    mean, std = _mean_std(x.device)
    img = (x * std + mean).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    return img[0] if single else img


def clamp_normalized(x: torch.Tensor) -> torch.Tensor:
    """Clamp a normalized ``(N, 3, H, W)`` tensor to the range of real images (pixels in [0, 1])."""
    mean, std = _mean_std(x.device)
    return torch.max(torch.min(x, (1 - mean) / std), -mean / std)


def crop_bank(names=None, size: int = 128, scales=(1.0, 0.7, 0.5), flips: bool = True
              ) -> tuple[torch.Tensor, list[str]]:
    """A bank of normalized crops of the sample photos, each labelled with its source.

    For each photo (default: every sample), the largest centred square and, at each
    scale ``s < 1``, a grid of squares of side ``s`` times that (a ``n x n`` grid with
    ``n = round(1 / s) + 1``, corners included), each resized to ``size``; with
    ``flips``, their mirror images too. Returns ``(crops (N, 3, size, size), sources)``.
    """
    crops, sources = [], []
    for name in names or SAMPLE_IMAGES:
        img = load_image(name)
        side = min(img.size)
        boxes = []
        for s in scales:
            c = round(side * s)
            n = 1 if s >= 1 else round(1 / s) + 1
            xs = np.linspace(0, img.width - c, n).round().astype(int) if n > 1 else [(img.width - c) // 2]
            ys = np.linspace(0, img.height - c, n).round().astype(int) if n > 1 else [(img.height - c) // 2]
            boxes += [(int(x), int(y), int(x) + c, int(y) + c) for y in ys for x in xs]
        for box in boxes:
            x = preprocess(img.crop(box), size=size, crop=False)
            crops += [x, x.flip(-1)] if flips else [x]
            sources += [name] * (2 if flips else 1)
    return torch.cat(crops), sources
