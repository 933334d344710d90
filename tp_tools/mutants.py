"""Helpers of the mutation catalogues (``tests/mutations/nbNN.py``), which build their planted
mistakes from a copy of an exercise's solution region (``benchmarks/mutations.py`` runs them)."""
from __future__ import annotations


def edit(base: str, *pairs: tuple[str, str]) -> str:
    """``base`` with each (old, new) replacement made (each old must be there)."""
    for old, new in pairs:
        assert old in base, old
        base = base.replace(old, new)
    return base
