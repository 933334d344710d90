"""Notebook 07: plausible wrong answers, and hidden tests for what the self-check cannot see.

``MUTANTS``: ``(function, what is wrong, code replacing the function's solution region)``; see
``benchmarks/mutations.py``. The ``test_*`` functions are hidden tests of ``tp grade``.
"""
from pathlib import Path

import pytest
import torch

from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[2]

MUTANTS = [
    ("class_visualization_objective", "+S_c: the loop would lower the class score", """
        target = torch.as_tensor(target, device=scores.device).expand(scores.shape[0])
        return scores.gather(1, target[:, None]).sum() + l2_weight * image.pow(2).sum()
    """),
    ("class_visualization_objective", "the softmax probability instead of the score", """
        target = torch.as_tensor(target, device=scores.device).expand(scores.shape[0])
        return -scores.softmax(dim=1).gather(1, target[:, None]).sum() + l2_weight * image.pow(2).sum()
    """),
    ("class_visualization_objective", "the log-probability instead of the score", """
        target = torch.as_tensor(target, device=scores.device).expand(scores.shape[0])
        return -scores.log_softmax(dim=1).gather(1, target[:, None]).sum() + l2_weight * image.pow(2).sum()
    """),
    ("class_visualization_objective", "L2 penalty forgotten", """
        target = torch.as_tensor(target, device=scores.device).expand(scores.shape[0])
        return -scores.gather(1, target[:, None]).sum()
    """),
    ("class_visualization_objective", "the penalty subtracted", """
        target = torch.as_tensor(target, device=scores.device).expand(scores.shape[0])
        return -scores.gather(1, target[:, None]).sum() - l2_weight * image.pow(2).sum()
    """),
    ("class_visualization_objective", "the norm, not its square", """
        target = torch.as_tensor(target, device=scores.device).expand(scores.shape[0])
        return -scores.gather(1, target[:, None]).sum() + l2_weight * image.norm()
    """),
    ("class_visualization_objective", "mean over the batch instead of the sum", """
        target = torch.as_tensor(target, device=scores.device).expand(scores.shape[0])
        return -scores.gather(1, target[:, None]).mean() + l2_weight * image.pow(2).sum()
    """),
    ("class_visualization_objective", "the first image's target for the whole batch", """
        first = int(torch.as_tensor(target).flatten()[0])
        return -scores[:, first].sum() + l2_weight * image.pow(2).sum()
    """),
    ("class_visualization_objective", "scores[:, target]: every target for every image", """
        return -scores[:, torch.as_tensor(target)].sum() + l2_weight * image.pow(2).sum()
    """),
    ("class_visualization_objective", "mean of the squares instead of their sum", """
        target = torch.as_tensor(target, device=scores.device).expand(scores.shape[0])
        return -scores.gather(1, target[:, None]).sum() + l2_weight * image.pow(2).mean()
    """),
]


@pytest.fixture(scope="module")
def nb07():
    return load_exports(ROOT / "solutions" / "07_class_visualization.ipynb")


def test_one_target_per_image(nb07):
    scores = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    image = torch.zeros(3, 3, 2, 2)
    # targets 0, 2, 1: S = 1 + 6 + 8 (not the sum of columns 0, 2 and 1 over every image)
    value = nb07.class_visualization_objective(scores, image, torch.tensor([0, 2, 1]), 0.5)
    assert value.shape == () and float(value) == pytest.approx(-15.0)
    assert float(nb07.class_visualization_objective(scores, image, 2, 0.5)) == pytest.approx(-18.0)
