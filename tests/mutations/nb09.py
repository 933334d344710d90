"""Notebook 09: plausible wrong answers, and hidden tests for what the self-checks cannot see.

``MUTANTS``: ``(function, what is wrong, code replacing the function's solution region)``; see
``benchmarks/mutations.py``. Hidden tests for ``tp grade`` go here as ``test_*`` functions taking
the fixture below (the self-checks catch every mistake listed so far).
"""
from pathlib import Path

import pytest

from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[2]

MUTANTS = [
    ("tv_loss", "vertical differences only (TV on one axis)", """
        dy = x[..., 1:, :] - x[..., :-1, :]
        return dy.pow(2).sum()
    """),
    ("tv_loss", "absolute differences (L1 total variation)", """
        dy = x[..., 1:, :] - x[..., :-1, :]
        dx = x[..., :, 1:] - x[..., :, :-1]
        return dy.abs().sum() + dx.abs().sum()
    """),
    ("tv_loss", "mean instead of sum", """
        dy = x[..., 1:, :] - x[..., :-1, :]
        dx = x[..., :, 1:] - x[..., :, :-1]
        return dy.pow(2).mean() + dx.pow(2).mean()
    """),
    ("tv_loss", "differences wrap around the border (torch.roll)", """
        dy = x - torch.roll(x, 1, dims=-2)
        dx = x - torch.roll(x, 1, dims=-1)
        return dy.pow(2).sum() + dx.pow(2).sum()
    """),
    ("tv_loss", "horizontal differences along the channels (dim 1) instead of the width", """
        dy = x[..., 1:, :] - x[..., :-1, :]
        dx = x[:, 1:] - x[:, :-1]
        return dy.pow(2).sum() + dx.pow(2).sum()
    """),
    ("tv_loss", "the square root of the sum", """
        dy = x[..., 1:, :] - x[..., :-1, :]
        dx = x[..., :, 1:] - x[..., :, :-1]
        return (dy.pow(2).sum() + dx.pow(2).sum()).sqrt()
    """),
    ("tv_loss", "averaged over the images of the batch", """
        dy = x[..., 1:, :] - x[..., :-1, :]
        dx = x[..., :, 1:] - x[..., :, :-1]
        return (dy.pow(2).sum() + dx.pow(2).sum()) / len(x)
    """),
    ("feature_loss", "not relative: ||f - f0||^2", """
        return (f - f0).pow(2).sum()
    """),
    ("feature_loss", "relative to ||f||^2 instead of ||f0||^2", """
        return (f - f0).pow(2).sum() / f.pow(2).sum()
    """),
    ("feature_loss", "norms, not squared norms", """
        return (f - f0).norm() / f0.norm()
    """),
    ("feature_loss", "mean squared error, not relative", """
        return (f - f0).pow(2).mean()
    """),
    ("feature_loss", "the difference of the norms", """
        return (f.pow(2).sum() - f0.pow(2).sum()).abs() / f0.pow(2).sum()
    """),
    ("invert", "TV not divided by C H W", """
        def objective(x):
            return feature_loss(features(x)[layer], f0) + lam * tv_loss(x)
    """),
    ("invert", "the objective's sign: maximizes the feature error", """
        def objective(x):
            return -feature_loss(features(x)[layer], f0) + lam * tv_loss(x) / x[0].numel()
    """),
    ("invert", "lam ignored", """
        def objective(x):
            return feature_loss(features(x)[layer], f0) + tv_loss(x) / x[0].numel()
    """),
    ("invert", "TV of the features instead of the image", """
        def objective(x):
            f = features(x)[layer]
            return feature_loss(f, f0) + lam * tv_loss(f) / f[0].numel()
    """),
    ("invert", "squared feature error not normalized by ||f0||^2", """
        def objective(x):
            return (features(x)[layer] - f0).pow(2).sum() + lam * tv_loss(x) / x[0].numel()
    """),
]


@pytest.fixture(scope="module")
def nb09():
    return load_exports(ROOT / "solutions" / "09_feature_inversion.ipynb")
