"""Decoder for the Deep Compression release of SqueezeNet 1.0 (Han et al., ICLR 2016).

File layout (all little-endian), in the parameter order of
``torchvision.models.squeezenet1_0()``, i.e. conv1, then squeeze 1x1 / expand 1x1 /
expand 3x3 of fire2..fire9, then conv10 (26 conv layers):

* 26 ``uint32``: the number of stored entries of each layer;
* for each layer: a 256-entry ``float32`` codebook, the ``float32`` biases (one per
  output channel), one ``uint8`` code per entry, then ``ceil(n / 2)`` bytes of
  4-bit gaps, low nibble first.

The flat position of entry k in the C-order weight is ``cumsum(gap + 1) - 1`` and
its value ``codebook[code]``; ``codebook[0] == 0`` marks filler entries that only
carry long gaps. The network was trained in Caffe on BGR images in [0, 255] minus
the mean (104, 117, 123); :func:`fold_caffe_preprocessing` moves that transform
into conv1 so the model takes the usual RGB ImageNet-normalized input.
"""
from __future__ import annotations

import numpy as np
import torch
import torchvision

from .images import IMAGENET_MEAN, IMAGENET_STD

N_LAYERS = 26
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)


def decode(raw: bytes, shapes: list[tuple[int, ...]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode ``raw`` into one ``(weight, bias)`` pair per conv layer of the given shapes."""
    if len(shapes) != N_LAYERS:
        raise ValueError(f"expected {N_LAYERS} layer shapes, got {len(shapes)}")
    counts = np.frombuffer(raw, dtype="<u4", count=N_LAYERS).astype(np.int64)
    offset = 4 * N_LAYERS
    layers = []
    for nnz, shape in zip(counts, shapes):
        def take(dtype, count):
            nonlocal offset
            arr = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
            offset += arr.nbytes
            return arr

        codebook = take("<f4", 256)
        bias = take("<f4", shape[0]).copy()
        codes = take("u1", nnz)
        packed = take("u1", (nnz + 1) // 2)
        gaps = np.stack([packed & 0x0F, packed >> 4], axis=1).reshape(-1)[:nnz]
        positions = np.cumsum(gaps.astype(np.int64) + 1) - 1
        weight = np.zeros(int(np.prod(shape)), dtype=np.float32)
        if positions.size and positions[-1] >= weight.size:
            raise ValueError(f"corrupted file: a weight position falls outside a {shape} layer")
        weight[positions] = codebook[codes]
        layers.append((weight.reshape(shape), bias))
    if offset != len(raw):
        raise ValueError(f"corrupted file: {len(raw) - offset} bytes left after the last layer")
    return layers


def fold_caffe_preprocessing(weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn conv1 of a Caffe BGR/[0, 255]/mean-subtracted model into one for normalized RGB.

    With ``x = (rgb - mean) / std`` the Caffe input is ``255 * (x * std + mean) - caffe_mean``
    with channels reversed. conv1 has no padding, so the folding is exact:
    ``W'[:, c] = 255 * std[c] * W[:, bgr(c)]`` and ``b' = b + sum W[:, bgr(c)] * (255 mean[c] - caffe_mean[c])``.
    """
    w_rgb = weight[:, ::-1].astype(np.float64)  # BGR input channels -> RGB
    std = np.asarray(IMAGENET_STD, dtype=np.float64)[None, :, None, None]
    shift = 255.0 * np.asarray(IMAGENET_MEAN) - np.asarray(CAFFE_MEAN_BGR[::-1])
    new_w = 255.0 * std * w_rgb
    new_b = bias + (w_rgb * shift[None, :, None, None]).sum(axis=(1, 2, 3))
    return new_w.astype(np.float32), new_b.astype(np.float32)


def state_dict_from_file(raw: bytes) -> dict[str, torch.Tensor]:
    """A ``torchvision.models.squeezenet1_0`` state dict decoded from the file's bytes."""
    reference = torchvision.models.squeezenet1_0(weights=None).state_dict()
    weight_names = [k for k, v in reference.items() if k.endswith("weight") and v.dim() == 4]
    layers = decode(raw, [tuple(reference[k].shape) for k in weight_names])
    layers[0] = fold_caffe_preprocessing(*layers[0])
    state = {}
    for name, (weight, bias) in zip(weight_names, layers):
        state[name] = torch.from_numpy(weight)
        state[name[: -len("weight")] + "bias"] = torch.from_numpy(bias)
    return state
