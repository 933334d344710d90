"""Self-check helpers for the notebooks: compare a student's result with the expected one.

Expected values live in ``tp_utils/data/expected/NN.json``, package data found through
``importlib.resources`` (written from the solutions,
checked by the tests); each check prints one line on success and raises an
``AssertionError`` that says what differs on failure.
"""
from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

DATA_DIR = Path(str(files("tp_utils") / "data"))
"""The package's data folder (``tp_utils/data``), inside any install: editable, wheel, Colab."""


def expected(notebook: str) -> dict:
    """The expected values of notebook ``notebook`` (e.g. ``"00"``)."""
    path = DATA_DIR / "expected" / f"{notebook}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: notebook {notebook} has no expected values "
                                "in this install of tp_utils (reinstall the course's version)")
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
        # one short line: nbgrader's feedback keeps about 80 characters of a message
        raise AssertionError(f"✘ {name}: off by up to {diff:.3g} (rtol {rtol:g}, atol {atol:g})")
    print(f"✔ {name}")


def check_equal(name: str, actual, want) -> None:
    """Check that ``actual`` equals ``want`` exactly (indices, labels, shapes)."""
    a, e = _array(actual), _array(want)
    if a.shape != e.shape or not np.array_equal(a, e):
        raise AssertionError(f"✘ {name}: got {a.tolist()}, expected {e.tolist()}")
    print(f"✔ {name}")


# ---- readable errors for unfinished exercises (in Jupyter) ---------------------------------

def _hint(etype, value, tb) -> str | None:
    """One sentence for the errors an unfinished notebook raises, or None."""
    from .conventions import CODE_STUB, STUB_MESSAGE

    if issubclass(etype, NotImplementedError) and str(value) in ("", STUB_MESSAGE):
        frames = []
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        stubs = [f.f_code.co_name for f in frames if f.f_code.co_filename.startswith("<ipython-input")
                 or "ipykernel" in f.f_code.co_filename or f.f_code.co_filename.startswith("/tmp/ipykernel")]
        name = stubs[-1] if stubs else (frames[-1].f_code.co_name if frames else "?")
        return (f"`{name}` is not written yet: write its `{CODE_STUB[0]}` part (the exercise that "
                "asks for it), run its cell, then this one.")
    if issubclass(etype, NameError):
        missing = getattr(value, "name", None) or "this name"
        return (f"if `{missing}` should come from a cell above, that cell failed or was not run "
                "(an unfinished exercise?): finish it, then run the notebook from the top.")
    return None


def _show_hint(shell, etype, value, tb, tb_offset=None):
    import sys

    shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    hint = _hint(etype, value, tb)
    if hint:  # on stderr: nbgrader's Validate shows a failing cell's traceback and stderr, not stdout
        print(f"\n➜ {hint}", file=sys.stderr)


def install_hints() -> bool:
    """In a Jupyter kernel, add a one-sentence hint under the tracebacks of unfinished exercises
    (the stub's ``NotImplementedError``) and of the cells that need them (``NameError``).
    ``import tp_utils`` calls it; elsewhere it does nothing. Returns True if installed."""
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    shell.set_custom_exc((NotImplementedError, NameError), _show_hint)
    return True
