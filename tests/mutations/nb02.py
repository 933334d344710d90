"""Notebook 02: plausible wrong answers, and hidden tests for what the self-check cannot see.

``MUTANTS``: ``(function, what is wrong, code replacing the function's solution region)``; see
``benchmarks/mutations.py``. The ``test_*`` functions are hidden tests of ``tp grade``.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[2]

MUTANTS = [
    # ---------------------------------------------------------------- nearest_neighbors
    ("nearest_neighbors", "each point is its own nearest neighbour (diagonal kept)", """
        d = torch.cdist(X, X)
        return d.topk(k, dim=1, largest=False).indices
    """),
    ("nearest_neighbors", "the farthest points instead of the nearest", """
        d = torch.cdist(X, X)
        d.fill_diagonal_(float("-inf"))
        return d.topk(k, dim=1).indices
    """),
    ("nearest_neighbors", "L1 (Manhattan) distance instead of Euclidean", """
        d = torch.cdist(X, X, p=1)
        d.fill_diagonal_(float("inf"))
        return d.topk(k, dim=1, largest=False).indices
    """),
    ("nearest_neighbors", "largest dot product as 'nearest'", """
        s = X @ X.T
        s.fill_diagonal_(float("-inf"))
        return s.topk(k, dim=1).indices
    """),
    ("nearest_neighbors", "top-k over the wrong axis (dim=0)", """
        d = torch.cdist(X, X)
        d.fill_diagonal_(float("inf"))
        return d.topk(k, dim=0, largest=False).indices
    """),
    ("nearest_neighbors", "the k nearest, farthest first", """
        d = torch.cdist(X, X)
        d.fill_diagonal_(float("inf"))
        return d.topk(k, dim=1, largest=False).indices.flip(1)
    """),
    ("nearest_neighbors", "itself removed by dropping the first of k: k - 1 neighbours", """
        d = torch.cdist(X, X)
        return d.topk(k, dim=1, largest=False).indices[:, 1:]
    """),
    # ---------------------------------------------------------------- same_source_rate
    ("same_source_rate", "a query counts once if any neighbour matches", """
        labels = torch.as_tensor(np.asarray(labels))
        return (labels[neighbors] == labels[:, None]).any(dim=1).float().mean().item()
    """),
    ("same_source_rate", "compares neighbour indices with labels", """
        labels = torch.as_tensor(np.asarray(labels))
        return (neighbors == labels[:, None]).float().mean().item()
    """),
    ("same_source_rate", "rate of neighbours from other photos", """
        labels = torch.as_tensor(np.asarray(labels))
        return 1 - (labels[neighbors] == labels[:, None]).float().mean().item()
    """),
    ("same_source_rate", "query labels broadcast along the wrong axis", """
        labels = torch.as_tensor(np.asarray(labels))
        return (labels[neighbors] == labels[None, :]).float().mean().item()
    """),
    ("same_source_rate", "matches divided by the number of queries, not of entries", """
        labels = torch.as_tensor(np.asarray(labels))
        return (labels[neighbors] == labels[:, None]).float().sum().item() / len(labels)
    """),
    ("nearest_neighbors", "diagonal set to 0 instead of excluded: each row finds itself", """
        d = torch.cdist(X, X)
        d.fill_diagonal_(0.0)
        return d.topk(k, dim=1, largest=False).indices
    """),
    ("same_source_rate", "the first neighbour of each query only", """
        labels = torch.as_tensor(np.asarray(labels))
        return (labels[neighbors[:, 0]] == labels).float().mean().item()
    """),
]


@pytest.fixture(scope="module")
def nb02():
    return load_exports(ROOT / "solutions" / "02_feature_space.ipynb")


def test_nearest_neighbors_in_the_plane(nb02):
    # 2-D points where L1 and L2 disagree: from the origin, (3, 3) is nearer than (0, 4.5) in L2 only
    X = torch.tensor([[0.0, 0.0], [3.0, 3.0], [0.0, 4.5], [10.0, 10.0]])
    assert nb02.nearest_neighbors(X, 2)[0].tolist() == [1, 2]
    ref = torch.cdist(X.double(), X.double()).fill_diagonal_(float("inf")).argsort(dim=1)[:, :3]
    assert torch.equal(nb02.nearest_neighbors(X, 3), ref)


def test_same_source_rate_with_two_neighbours(nb02):
    neighbors = torch.tensor([[1, 2], [0, 3], [3, 0], [2, 1]])
    labels = np.array([5, 5, 6, 6])
    # matches: (1 yes, 2 no), (0 yes, 3 no), (3 yes, 0 no), (2 yes, 1 no) -> 4 of 8
    assert nb02.same_source_rate(neighbors, labels) == pytest.approx(0.5)
    assert nb02.same_source_rate(torch.tensor([[1, 2], [0, 2], [0, 1]]), [7, 7, 8]) == pytest.approx(2 / 6)
