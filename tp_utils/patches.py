"""Receptive-field geometry, the photo bank and its activations, for top-patch figures (notebooks 03, 05, 07).

Answer-free helpers only: computing the receptive fields and finding the top activations are
exercises of notebook 03 (later notebooks get them through :mod:`tp_utils.answers`).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.squeezenet import Fire

from .images import preprocess, sample_images
from .imagenet import labelled_set
from .models import capture_activations
from .progress import progress


def layer_geometry(module: nn.Module):
    """``(kernel, stride, padding)`` of a layer, or None when it does not change the geometry.

    A fire module counts as its widest branch, the 3x3 expand convolution.
    """
    if isinstance(module, Fire):
        return layer_geometry(module.expand3x3)
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        first = lambda v: v[0] if isinstance(v, tuple) else v
        return first(module.kernel_size), first(module.stride), first(module.padding)
    return None


def patch_box(y: int, x: int, field, size: int) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of unit ``(y, x)``'s receptive field ``(size r, stride j,
    offset o)``, clipped to a ``size x size`` image."""
    r, j, o = field
    cy, cx, half = o + y * j, o + x * j, (r - 1) / 2
    clip = lambda v: int(min(max(round(v), 0), size))
    return clip(cy - half), clip(cx - half), clip(cy + half + 1), clip(cx + half + 1)


def photo_bank(size: int = 224) -> tuple[torch.Tensor, list[str]]:
    """Notebook 03's bank for top patches: the labelled ImageNet photos then the sample photos, one
    normalized ``(3, size, size)`` image per photo (so "one patch per image" is one per photo), and a
    label per photo (its ImageNet class name, or the sample's name). Returns ``(images, labels)``."""
    labelled = labelled_set(size=size)
    samples = sample_images()
    images = torch.cat([labelled.images] + [preprocess(img, size=size) for img in samples.values()])
    return images, list(labelled.names) + list(samples)


def bank_activations(model: nn.Module, images: torch.Tensor, layers, batch_size: int = 48
                     ) -> dict[str, torch.Tensor]:
    """``{layer: (N, C, h, w) activations}`` of ``images`` (N, 3, H, W), kept on the CPU."""
    device = next(model.parameters()).device
    collected = {name: [] for name in layers}
    with torch.no_grad(), capture_activations(model, layers) as acts:
        for chunk in progress(images.split(batch_size), desc="bank"):
            model(chunk.to(device))
            for name in layers:
                collected[name].append(acts[name].cpu())
    return {name: torch.cat(v) for name, v in collected.items()}


def selective_channels(a: torch.Tensor, n: int) -> list[int]:
    """The ``n`` channels of ``a`` (N, C, h, w) whose peak is highest relative to their mean."""
    peak = a.amax(dim=(0, 2, 3))
    return (peak / (a.mean(dim=(0, 2, 3)) + 1e-6)).argsort(descending=True)[:n].tolist()


EYE_CHANNEL = 489  # fire9's channel that fires on the cat's eyes (notebooks 01, 03, 05)


def chosen_channels(bank_acts: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    """The channels the course shows: 4 selective ones of fire5; fire9's eye channel and 3
    selective ones of fire9."""
    return {"fire5": selective_channels(bank_acts["fire5"], 4),
            "fire9": [EYE_CHANNEL] + [c for c in selective_channels(bank_acts["fire9"], 4)
                                      if c != EYE_CHANNEL][:3]}
