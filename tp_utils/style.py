"""The loss network of the texture and style-transfer notebooks (10, 11): the course's model with
its max-pooling layers replaced by average pooling.

Gatys, Ecker & Bethge (2015, 2016) did the same to their VGG-19: "replacing the max-pooling
operation by average pooling improves the gradient flow and one obtains slightly more appealing
results". A max pool passes the gradient to one pixel of each window, an average pool to all of
them, so the image changes smoothly under the optimizer. On the compressed SqueezeNet the effect is
large (notebook 10 measures it): the same Adam steps reach a Gram loss two to three times lower.

The weights are unchanged (they were trained with max pooling): a Gram matrix or a content target
only needs features that describe the image, not a correct classification. Use the same network for
the targets and for the image being optimized::

    net = style.loss_network(device=device)
    with tp.models.feature_extractor(net, ["relu1", "fire5"]) as features:
        ...
"""
from __future__ import annotations

import copy

from torch import nn

from .models import DEFAULT_MODEL, load_model


def average_pooling(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in which every ``nn.MaxPool2d`` is an ``nn.AvgPool2d`` with the same
    window, stride, padding and rounding (``ceil_mode``); every other module is a copy of the
    original's, with the same weights (frozen if they were). ``model`` itself is left unchanged."""
    new = copy.deepcopy(model)
    for parent in list(new.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                if child.dilation not in (1, (1, 1)):
                    raise ValueError(f"{name}: a dilated max pool has no average-pool equivalent")
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   ceil_mode=child.ceil_mode,
                                                   count_include_pad=False))
    return new


def loss_network(name: str = DEFAULT_MODEL, device=None) -> nn.Module:
    """``tp.load_model(name)`` (eval mode, frozen) with average pooling instead of max pooling."""
    return average_pooling(load_model(name, device=device))
