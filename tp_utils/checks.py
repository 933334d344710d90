"""Self-check helpers for the notebooks: compare a student's result with the expected one.

Expected values live in ``data/expected/NN.json`` (written from the solutions,
checked by the tests); each check prints one line on success and raises an
``AssertionError`` that says what differs on failure.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def expected(notebook: str) -> dict:
    """The expected values of notebook ``notebook`` (e.g. ``"00"``)."""
    path = DATA_DIR / "expected" / f"{notebook}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the course must be installed from its "
                                "repository with `pip install -e .`")
    return json.loads(path.read_text())


def _array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_close(name: str, actual, want, rtol: float = 1e-3, atol: float = 1e-5) -> None:
    """Check that ``actual`` has ``want``'s shape and values within the tolerances."""
    a, e = _array(actual), _array(want)
    if a.shape != e.shape:
        raise AssertionError(f"✘ {name}: shape {a.shape}, expected {e.shape}")
    if not np.allclose(a, e, rtol=rtol, atol=atol):
        diff = float(np.max(np.abs(a.astype(np.float64) - e)))
        raise AssertionError(f"✘ {name}: values differ from the expected ones by up to {diff:.3g} "
                             f"(tolerance rtol={rtol}, atol={atol})")
    print(f"✔ {name}")


def check_equal(name: str, actual, want) -> None:
    """Check that ``actual`` equals ``want`` exactly (indices, labels, shapes)."""
    a, e = _array(actual), _array(want)
    if a.shape != e.shape or not np.array_equal(a, e):
        raise AssertionError(f"✘ {name}: got {a.tolist()}, expected {e.tolist()}")
    print(f"✔ {name}")
