"""The one door through which a notebook uses a function that the student wrote in an earlier one.

No notebook runs another notebook. When a later lesson needs an earlier answer (notebook 05
needs 03's receptive fields and top activations), it asks for it here, by name::

    top_activations = tp.answers.earlier("top_activations")

The door finds the earlier notebook **in the same folder** as the calling one (the student's
``notebooks/`` or the instructor's ``solutions/``), runs only its cells tagged ``export``
(imports and function definitions, see :mod:`tp_utils.notebook`) and returns the function.
If the student has not written it yet, it stops with one sentence that names the exercise to
finish. Tests and grading point the door at the solutions (so that grading notebook 05 grades
05 alone) with the ``folder`` argument or the ``TP_ANSWERS_DIR`` environment variable.

:data:`DOOR` is the complete list of what crosses between notebooks: add a line there, and
nowhere else, when a new notebook needs an earlier answer.
"""
from __future__ import annotations

import ast
import functools
import os
import types
from pathlib import Path

from .notebook import export_cells, load_exports

# function name -> (notebook that defines it, exercise number there)
DOOR: dict[str, tuple[str, int]] = {
    "receptive_fields": ("03_patches_and_occlusion", 1),
    "top_activations": ("03_patches_and_occlusion", 2),
    "tv_loss": ("09_feature_inversion", 1),
    "gram_matrix": ("10_textures", 1),
}
ENV_VAR = "TP_ANSWERS_DIR"


class UnfinishedExercise(RuntimeError):
    """An earlier notebook's exercise that a later notebook needs is not done yet."""


def _folder(folder) -> Path:
    if folder is not None:
        return Path(folder)
    return Path(os.environ.get(ENV_VAR) or Path.cwd())  # a kernel runs in its notebook's folder


def _is_stub(function: ast.FunctionDef) -> bool:
    for node in ast.walk(function):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                return True
    return False


_CACHE: dict[tuple[str, int], types.ModuleType] = {}


def _load(path: Path) -> types.ModuleType:
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in _CACHE:
        _CACHE[key] = load_exports(path)
    return _CACHE[key]


def earlier(name: str, folder: str | os.PathLike | None = None):
    """The function ``name`` as written in the earlier notebook that defines it (see :data:`DOOR`).

    ``folder``: where the notebooks are (default: ``$TP_ANSWERS_DIR``, else the current folder,
    which is the calling notebook's). Raises :class:`UnfinishedExercise` when the function
    still raises ``NotImplementedError``, ``FileNotFoundError`` when the notebook is missing.
    """
    if name not in DOOR:
        raise KeyError(f"{name!r} is not an answer that later notebooks use; "
                       f"the door has: {', '.join(DOOR)}")
    notebook, exercise = DOOR[name]
    path = _folder(folder) / f"{notebook}.ipynb"
    todo = f"finish exercise {exercise} of notebook {notebook[:2]}, `{name}`, first"
    if not path.exists():
        raise FileNotFoundError(f"this notebook uses `{name}` from notebook {notebook}.ipynb, which "
                                f"is not in {path.parent}: keep the course's notebooks together "
                                f"(or set {ENV_VAR} to their folder)")
    import nbformat

    nb = nbformat.read(path, as_version=4)
    definitions = []
    for index, source in export_cells(nb):
        try:
            tree = ast.parse(source)
        except SyntaxError as err:
            raise UnfinishedExercise(f"{todo}: cell {index} of {path.name} has a syntax error "
                                     f"(line {err.lineno}: {err.msg})") from err
        definitions += [node for node in ast.walk(tree)
                        if isinstance(node, ast.FunctionDef) and node.name == name]
    if not definitions:
        raise UnfinishedExercise(f"{todo}: no cell tagged 'export' in {path.name} defines it")
    if _is_stub(definitions[-1]):
        raise UnfinishedExercise(f"{todo} (it still raises NotImplementedError)")
    try:
        module = _load(path)
    except Exception as err:
        raise UnfinishedExercise(f"{todo}: running the definitions of {path.name} fails "
                                 f"({type(err).__name__}: {err})") from err
    function = getattr(module, name)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except NotImplementedError as err:  # a helper it calls is still a stub
            raise UnfinishedExercise(f"{todo} (it raised NotImplementedError)") from err

    wrapper.__module__ = f"{notebook}.ipynb"
    return wrapper
