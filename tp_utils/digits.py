"""scikit-learn's handwritten digits and a small CNN that learns them in seconds (notebooks 02 and 06).

The 1,797 digits are 8x8 grey images with 17 levels (0..16); here they are ``(N, 1, 8, 8)``
float32 tensors in [0, 1] (the pixel range, no further normalization)::

    from tp_utils import digits
    images, labels, idx_train, idx_test = digits.load_split()
    net = digits.train(digits.DigitNet(seed=0), images[idx_train], labels[idx_train])
    digits.accuracy(net, images[idx_test], labels[idx_test])

:func:`train` takes an optional ``perturb(net, x, y) -> x`` hook, called on every batch
before the loss: adversarial training passes an attack there. It runs on one CPU thread
(:func:`one_thread`): on tensors this small, splitting every operation between threads costs
more than it saves.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .progress import progress


def load_split(test_size: float = 0.25, seed: int = 0):
    """``(images, labels, idx_train, idx_test)``: all the digits as a ``(1797, 1, 8, 8)`` tensor in
    [0, 1], their labels ``(1797,)`` and a stratified train/test split of the indices (numpy)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32)[:, None] / 16.0
    labels = torch.tensor(data.target)
    idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=test_size,
                                           stratify=labels, random_state=seed)
    return images, labels, idx_train, idx_test


class DigitNet(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool, a 64-unit hidden layer and a 10-way classifier.

    ``features(x)`` gives the 64-d penultimate features. With ``seed``, the weights are
    initialized from that seed without touching the global random state; without it, from
    the global generator (``torch.manual_seed`` before the call).
    """

    def __init__(self, seed: Optional[int] = None):
        super().__init__()
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                nn.MaxPool2d(2),                       # 32 x 4 x 4
                nn.Flatten(), nn.Linear(512, 64), nn.ReLU())
            self.classifier = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@contextmanager
def one_thread():
    """Run the block with one CPU thread for PyTorch, then restore the previous setting.

    For 8x8 digits every operation is tiny: two threads spend more time synchronizing than
    computing (several times more on a machine busy with other work)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


Perturb = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 25, batch_size: int = 64,
          lr: float = 3e-3, seed: int = 0, perturb: Optional[Perturb] = None) -> nn.Module:
    """Adam on the cross-entropy, ``epochs`` passes over ``(x, y)`` in batches shuffled with ``seed``.

    ``perturb(net, xb, yb)``, if given, returns the batch to train on instead of ``xb`` (e.g. its
    adversarial version); gradients it leaves on the parameters are cleared before the update.
    Returns ``net`` in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    with one_thread():
        for _ in progress(range(epochs), desc="epochs"):
            for b in torch.randperm(len(x), generator=gen).split(batch_size):
                xb, yb = x[b], y[b]
                if perturb is not None:
                    xb = perturb(net, xb, yb).detach()
                opt.zero_grad()
                F.cross_entropy(net(xb), yb).backward()
                opt.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` that ``net`` classifies as ``y``."""
    return (net(x).argmax(dim=1) == y.to(x.device)).float().mean().item()
