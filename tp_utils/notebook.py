"""Import the functions a notebook defines without running its heavy cells.

Cells tagged ``export`` (cell metadata ``"tags": ["export"]``) hold the
imports and the functions the student writes; :func:`load_exports` runs only
those cells, in a fresh module, so tests and grading can call the functions::

    nb = load_exports("solutions/00_setup_and_tour.ipynb")
    nb.topk_predictions(model, x, k=5)
"""
from __future__ import annotations

import os
import re
import types
from pathlib import Path

import nbformat

from .conventions import EXPORT_TAG, is_export, strip_magics


def export_cells(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """``(index, source)`` of the code cells tagged ``export``, IPython magics dropped."""
    cells = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and is_export(cell):
            cells.append((i, strip_magics(cell.source)))
    return cells


def load_exports(path: str | os.PathLike, name: str | None = None) -> types.ModuleType:
    """Run the ``export`` cells of notebook ``path`` in a new module and return it."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    module = types.ModuleType(name or re.sub(r"\W", "_", path.stem))
    module.__file__ = str(path)
    cells = export_cells(nb)
    if not cells:
        raise ValueError(f"{path} has no cell tagged {EXPORT_TAG!r}")
    for index, source in cells:
        exec(compile(source, f"{path}[cell {index}]", "exec"), module.__dict__)
    return module
