"""Notebook 00: plausible wrong answers, and hidden tests for what the self-check cannot see.

``MUTANTS``: ``(function, what is wrong, code replacing the function's solution region)``, run by
``benchmarks/mutations.py`` and ``tests/test_mutations.py``. The ``test_*`` functions are hidden
tests of ``tp grade`` (it runs them against each submission's function through the ``nb00``
fixture); pytest does not collect this file by itself.
"""
from pathlib import Path

import pytest
import torch

import tp_utils as tp
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[2]

MUTANTS = [
    ("topk_predictions", "top-k of the raw scores, no softmax", """
        with torch.no_grad():
            return model(x).topk(k, dim=1)
    """),
    ("topk_predictions", "softmax over the batch axis (dim=0)", """
        with torch.no_grad():
            probs = model(x).softmax(dim=0)
        return probs.topk(k, dim=1)
    """),
    ("topk_predictions", "the k least probable classes", """
        with torch.no_grad():
            probs = model(x).softmax(dim=1)
        return probs.topk(k, dim=1, largest=False)
    """),
    ("topk_predictions", "missing torch.no_grad(): the result carries a graph", """
        probs = model(x).softmax(dim=1)
        return probs.topk(k, dim=1)
    """),
    ("topk_predictions", "log-probabilities instead of probabilities", """
        with torch.no_grad():
            probs = model(x).log_softmax(dim=1)
        return probs.topk(k, dim=1)
    """),
    ("topk_predictions", "(indices, probabilities) instead of (probabilities, indices)", """
        with torch.no_grad():
            probs = model(x).softmax(dim=1)
        values, indices = probs.topk(k, dim=1)
        return indices, values
    """),
    ("topk_predictions", "k ignored: always the top 5", """
        with torch.no_grad():
            probs = model(x).softmax(dim=1)
        return probs.topk(5, dim=1)
    """),
    ("topk_predictions", "sigmoid instead of softmax", """
        with torch.no_grad():
            probs = model(x).sigmoid()
        return probs.topk(k, dim=1)
    """),
    ("topk_predictions", "softmax of the k best scores only (renormalized over k classes)", """
        with torch.no_grad():
            scores, indices = model(x).topk(k, dim=1)
        return scores.softmax(dim=1), indices
    """),
    ("topk_predictions", "probabilities of classes 0..k-1, next to the top-k indices", """
        with torch.no_grad():
            probs = model(x).softmax(dim=1)
        indices = probs.argsort(dim=1, descending=True)[:, :k]
        return probs[:, :k], indices
    """),
    ("topk_predictions", "the first image's top-k repeated for the whole batch", """
        with torch.no_grad():
            probs = model(x).softmax(dim=1)
        values, indices = probs[0].topk(k)
        return values.expand(x.shape[0], k), indices.expand(x.shape[0], k)
    """),
    ("topk_predictions", "the model left in training mode (dropout on)", """
        model.train()
        with torch.no_grad():
            probs = model(x).softmax(dim=1)
        return probs.topk(k, dim=1)
    """),
    ("topk_predictions", "softmax over the whole batch flattened (N x 1000 values)", """
        with torch.no_grad():
            scores = model(x)
            probs = scores.flatten().softmax(dim=0).view_as(scores)
        return probs.topk(k, dim=1)
    """),
    ("topk_predictions", "exp of the scores, not normalized", """
        with torch.no_grad():
            probs = model(x).exp()
        return probs.topk(k, dim=1)
    """),
    ("topk_predictions", "one image only: the batch axis squeezed away", """
        with torch.no_grad():
            probs = model(x).softmax(dim=1)[0]
        return probs.topk(k)
    """),
]


@pytest.fixture(scope="module")
def nb00():
    return load_exports(ROOT / "solutions" / "00_setup_and_tour.ipynb")


def test_topk_of_a_batch_of_two_with_k_3(nb00, model):
    x = torch.cat([tp.preprocess("coffee"), tp.preprocess("rocket")])
    probs, indices = nb00.topk_predictions(model, x, k=3)
    with torch.no_grad():
        ref = model(x).double().softmax(dim=1)
    assert probs.shape == indices.shape == (2, 3)
    assert torch.equal(indices, ref.argsort(dim=1, descending=True)[:, :3])
    assert torch.allclose(probs.double(), ref.gather(1, indices), atol=1e-6)


def test_topk_carries_no_graph(nb00, model):
    import copy

    trainable = copy.deepcopy(model).requires_grad_(True)
    probs, _ = nb00.topk_predictions(trainable, tp.preprocess("chelsea"), k=2)
    assert not probs.requires_grad, "the probabilities carry a graph: compute them under torch.no_grad()"
