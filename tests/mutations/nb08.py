"""Notebook 08: plausible wrong answers, and hidden tests for what the self-checks cannot see.

``MUTANTS``: ``(function, what is wrong, code replacing the function's solution region)``; see
``benchmarks/mutations.py``. Hidden tests for ``tp grade`` go here as ``test_*`` functions taking
the fixture below (the self-checks catch every mistake listed so far).
"""
from pathlib import Path

import pytest

from tp_tools.mutants import edit
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[2]

DEEPDREAM = """
    detail = None
    for size in octave_sizes(*x.shape[-2:], n_octaves, scale):
        base = resize(x, size)
        start = base if detail is None else base + resize(detail, size)
        dreamed = dream(start)
        detail = dreamed - base
    return dreamed
"""


MUTANTS = [
    ("dream_objective", "+0.5 ||a||^2: minimizing it shrinks the activations", """
        return 0.5 * activations.pow(2).sum()
    """),
    ("dream_objective", "mean instead of sum", """
        return -0.5 * activations.pow(2).mean()
    """),
    ("dream_objective", "the factor 0.5 forgotten", """
        return -activations.pow(2).sum()
    """),
    ("dream_objective", "L1: the sum of |a|", """
        return -activations.abs().sum()
    """),
    ("dream_objective", "the norm, not its square", """
        return -0.5 * activations.norm()
    """),
    ("dream_objective", "one value per image, not a scalar", """
        return -0.5 * activations.pow(2).flatten(1).sum(dim=1)
    """),
    ("normalize_gradient", "one mean |g| for the whole batch", """
        return g / (g.abs().mean() + eps)
    """),
    ("normalize_gradient", "divided by the mean of g, not of |g|", """
        return g / (g.mean(dim=(1, 2, 3), keepdim=True) + eps)
    """),
    ("normalize_gradient", "divided by the standard deviation", """
        return g / (g.std(dim=(1, 2, 3), keepdim=True) + eps)
    """),
    ("normalize_gradient", "divided by the L2 norm", """
        return g / (g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + eps)
    """),
    ("normalize_gradient", "the sign of g", """
        return g.sign()
    """),
    ("normalize_gradient", "per channel instead of per image", """
        return g / (g.abs().mean(dim=(2, 3), keepdim=True) + eps)
    """),
    ("octave_sizes", "largest octave first", """
        return [(round(height / scale ** k), round(width / scale ** k)) for k in range(n_octaves)]
    """),
    ("octave_sizes", "sizes grow by scale instead of shrinking", """
        return [(round(height * scale ** k), round(width * scale ** k)) for k in range(n_octaves - 1, -1, -1)]
    """),
    ("octave_sizes", "int() truncates instead of rounding", """
        return [(int(height / scale ** k), int(width / scale ** k)) for k in range(n_octaves - 1, -1, -1)]
    """),
    ("octave_sizes", "one octave too few", """
        return [(round(height / scale ** k), round(width / scale ** k)) for k in range(n_octaves - 2, -1, -1)]
    """),
    ("octave_sizes", "scale * k instead of scale ** k", """
        return [(round(height / max(1.0, scale * k)), round(width / max(1.0, scale * k))) for k in range(n_octaves - 1, -1, -1)]
    """),
    ("deepdream", "each octave from the photo alone: the detail is not carried over", edit(
        DEEPDREAM, ("start = base if detail is None else base + resize(detail, size)", "start = base"))),
    ("deepdream", "detail measured against the octave's start, not the photo", edit(
        DEEPDREAM, ("detail = dreamed - base", "detail = dreamed - start"))),
    ("deepdream", "largest octave first", edit(
        DEEPDREAM, ("for size in octave_sizes(*x.shape[-2:], n_octaves, scale):",
                    "for size in octave_sizes(*x.shape[-2:], n_octaves, scale)[::-1]:"))),
    ("deepdream", "returns the detail instead of the dreamed image", edit(
        DEEPDREAM, ("    return dreamed", "    return detail"))),
    ("deepdream", "the previous dreamed image upscaled instead of its detail", edit(
        DEEPDREAM, ("start = base if detail is None else base + resize(detail, size)",
                    "start = base if detail is None else resize(detail + previous, size)"),
        ("        detail = dreamed - base", "        detail, previous = dreamed - base, base"))),
]


@pytest.fixture(scope="module")
def nb08():
    return load_exports(ROOT / "solutions" / "08_deepdream.ipynb")
