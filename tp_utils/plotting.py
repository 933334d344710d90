"""Plotting helpers: image grids, heat map overlays, top-k bar charts."""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .images import deprocess, load_image
from .labels import class_name


def to_display(img) -> np.ndarray:
    """An array for ``imshow``: normalized ``(1, 3, H, W)`` / ``(3, H, W)`` tensors are
    deprocessed, other tensors and arrays pass through, PIL images become arrays."""
    if isinstance(img, torch.Tensor):
        if img.dim() == 4 and img.shape[0] == 1:
            img = img[0]
        if img.dim() == 3 and img.shape[0] == 3:
            return deprocess(img)
        return img.detach().float().cpu().numpy()
    if isinstance(img, np.ndarray):
        return img
    return np.asarray(load_image(img))


def show_images(images: Sequence, titles: Sequence[str] | None = None, ncols: int = 4,
                size: float = 2.5, cmap: str | None = None, suptitle: str | None = None):
    """Show images in a grid (2-D arrays with ``cmap``, default grey); returns the figure."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            arr = to_display(images[i])
            ax.imshow(arr, cmap=cmap or ("gray" if arr.ndim == 2 else None))
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def overlay_heatmap(image, heat, alpha: float = 0.5, cmap: str = "jet", ax=None):
    """Draw ``heat`` (2-D, any size; rescaled to [0, 1] and resized to the image) over ``image``."""
    base = to_display(image)
    heat = torch.as_tensor(np.asarray(to_display(heat), dtype=np.float32))
    heat = torch.nn.functional.interpolate(heat[None, None], size=base.shape[:2], mode="bilinear",
                                           align_corners=False)[0, 0].numpy()
    heat = (heat - heat.min()) / (heat.max() - heat.min() + 1e-12)
    ax = ax or plt.gca()
    ax.imshow(base)
    ax.imshow(heat, cmap=cmap, alpha=alpha)
    ax.axis("off")
    return ax


def plot_topk(probs, indices, ax=None, title: str | None = None):
    """Horizontal bar chart of classes ``indices`` (k,) with their probabilities ``probs`` (k,),
    the first on top (pass the result of a top-k selection)."""
    probs = torch.as_tensor(probs).detach().flatten().cpu()
    indices = torch.as_tensor(indices).detach().flatten().cpu()
    if probs.shape != indices.shape:
        raise ValueError(f"probs {tuple(probs.shape)} and indices {tuple(indices.shape)} differ in shape")
    k = len(probs)
    ax = ax or plt.gca()
    ax.barh(range(k)[::-1], probs.numpy(), color="tab:blue")
    ax.set_yticks(range(k)[::-1], [class_name(int(i)) for i in indices], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    if title:
        ax.set_title(title, fontsize=9)
    return ax
