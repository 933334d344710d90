"""The grading plan of a solution notebook: its exercises, their self-checks and hidden tests, the
export and setup cells, the written answers (no torch: cheap)."""
from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path

from tp_utils.conventions import DEF, is_export
from tp_tools.cells import _code, setup_slice


HIDDEN_PREFIX = "hidden:"


@dataclass
class Check:
    index: int
    grade_id: str
    points: float
    source: str


@dataclass
class Hidden:
    path: str
    name: str

    @property
    def item(self) -> str:
        return HIDDEN_PREFIX + self.name

    @property
    def nodeid(self) -> str:
        return f"{self.path}::{self.name}"


@dataclass
class Exercise:
    notebook: str
    name: str
    functions: list
    cell: int
    source: str
    checks: list = field(default_factory=list)
    hidden: list = field(default_factory=list)

    def items(self, hidden: bool = True) -> list[tuple[str, float]]:
        """``(item id, points)`` of its self-checks, then of its hidden tests."""
        out = [(c.grade_id, c.points) for c in self.checks]
        return out + ([(h.item, 1.0) for h in self.hidden] if hidden else [])


@dataclass
class Plan:
    path: str
    stem: str
    number: str
    exercises: list
    exports: list   # (index, source)
    setup: list     # (index, source)
    manual: list    # (index, grade_id, points, source)
    problems: list

    def exercise(self, name: str) -> Exercise:
        for ex in self.exercises:
            if ex.name == name or name in ex.functions:
                return ex
        raise KeyError(f"notebook {self.stem} has no exercise {name!r}")


def _hidden_files(tests_dir: Path) -> list[Path]:
    files = sorted(tests_dir.glob("test_notebook*.py"))
    return sorted(tests_dir.glob("mutations/nb*.py")) + files  # the catalogue's first: the cheap ones


def _module_strings(tree: ast.Module) -> dict:
    """Module-level name -> the string constants its value is built from, names resolved
    (``ROOT = ...``, ``SOLUTIONS = ROOT / "solutions"``, ``NOTEBOOK = SOLUTIONS / "06_x.ipynb"``)."""
    direct = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            strings = {n.value for n in ast.walk(node.value) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
            names = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
            for t in targets:
                if isinstance(t, ast.Name):
                    direct[t.id] = (strings, names)
    resolved = {}

    def resolve(name, seen=()):
        if name in resolved:
            return resolved[name]
        strings, names = direct.get(name, (set(), set()))
        out = set(strings)
        for n in names - {name} - set(seen):
            out |= resolve(n, seen + (name,))
        resolved[name] = out
        return out

    return {name: resolve(name) for name in direct}


def _attributes_on(node, names: set, strings: set) -> set:
    """Attributes read on ``names`` inside ``node``: ``nb.f``, ``getattr(nb, "f")``, and
    ``getattr(nb, name)`` with ``name`` one of the ``strings`` (a parametrization)."""
    used = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in names:
            used.add(n.attr)
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "getattr" \
                and len(n.args) >= 2 and isinstance(n.args[0], ast.Name) and n.args[0].id in names:
            key = n.args[1]
            used |= {key.value} if isinstance(key, ast.Constant) else set(strings)
    return used


def hidden_tests(tests_dir: Path, stem: str, functions) -> list[Hidden]:
    """Pytest tests that call one of ``functions`` of the solution notebook ``stem``.

    Found by what they call: a *loader* is a fixture that calls ``load_exports`` on a path whose
    strings (module-level names such as ``NOTEBOOK = ROOT / "solutions" / "06_x.ipynb"`` resolved)
    are ``solutions`` and ``<stem>.ipynb``; a test counts when it, a fixture it requests
    (recursively), or a module-level helper it hands the loader to reads one of ``functions`` on
    the loader's value (``nb.f``, ``getattr(nb, "f")``)."""
    found, functions = [], set(functions)
    for path in _hidden_files(Path(tests_dir)):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            continue
        constants = _module_strings(tree)
        defs = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}

        def is_fixture(node):
            return any((n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", "")) == "fixture"
                       for d in node.decorator_list for n in ast.walk(d))

        def strings_of(node):
            out = {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
            for n in ast.walk(node):
                if isinstance(n, ast.Name) and n.id in constants:
                    out |= constants[n.id]
            return out

        loaders = set()
        for name, node in defs.items():
            if not is_fixture(node):
                continue
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", None)) == "load_exports":
                    strings = set().union(*(strings_of(a) for a in call.args)) if call.args else set()
                    if "solutions" in strings and f"{stem}.ipynb" in strings:
                        loaders.add(name)
        helper_params = {}  # helper -> [(position, attributes read on that parameter)]
        for name, node in defs.items():
            if not is_fixture(node) and not name.startswith("test"):
                helper_params[name] = [(k, _attributes_on(node, {a.arg}, set()))
                                       for k, a in enumerate(node.args.args)]
        memo = {}

        def calls(name, seen=()):
            """Attributes of the loaders that function ``name`` reads (directly or through fixtures)."""
            if name in memo:
                return memo[name]
            node = defs[name]
            args = {a.arg for a in node.args.args}
            own_loaders = args & loaders
            used = _attributes_on(node, own_loaders, strings_of(ast.Module(node.decorator_list, [])))
            for n in ast.walk(node):  # helper(nb, ...)
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in helper_params:
                    for k, attrs in helper_params[n.func.id]:
                        if k < len(n.args) and isinstance(n.args[k], ast.Name) and n.args[k].id in own_loaders:
                            used |= attrs
            for a in args - own_loaders:
                if a in defs and is_fixture(defs[a]) and a not in seen:
                    used |= calls(a, seen + (name,))
            memo[name] = used
            return used

        for name, node in defs.items():
            if name.startswith("test") and calls(name) & functions:
                found.append(Hidden(str(path), name))
    return found


def plan(solution: str | os.PathLike, tests_dir: str | os.PathLike | None = None, quick: bool = False) -> Plan:
    """Exercises, checks, hidden tests, export and setup cells, written answers of a solution
    notebook (no torch: cheap). ``quick``: only the hidden tests of ``tests/mutations/``."""
    import nbformat

    from tp_tools.grading import cell_roles

    path = Path(solution)
    nb = nbformat.read(path, as_version=4)
    roles = cell_roles(nb)
    exercises, by_name, manual, problems = [], {}, [], []
    code_cells = []
    for i, (cell, (role, grade_id, points)) in enumerate(zip(nb.cells, roles)):
        if cell.cell_type == "code":
            code_cells.append((i, cell.source, is_export(cell)))
        md_points = cell.get("metadata", {}).get("nbgrader", {}).get("points")
        if role == "solution":
            ex = Exercise(path.stem, grade_id[len("answer-"):], DEF.findall(cell.source),
                          i, cell.source)
            exercises.append(ex)
            by_name[ex.name] = ex
        elif role == "tests":
            name = grade_id[len("check-"):].rsplit("-", 1)[0]
            if name in by_name:
                by_name[name].checks.append(Check(i, grade_id, float(md_points or points), _code(cell.source)))
        elif role == "manual":
            manual.append((i, grade_id, float(md_points or points), cell.source))
    for ex in exercises:
        if not ex.checks:
            problems.append(f"{path.name}: exercise {ex.name} has no self-check cell")
    if tests_dir is not None:
        for ex in exercises:
            ex.hidden = [h for h in hidden_tests(Path(tests_dir), path.stem, ex.functions)
                         if not quick or Path(h.path).parent.name == "mutations"]
    targets = [c.index for ex in exercises for c in ex.checks]
    setup, missing = setup_slice(code_cells, targets)
    if missing:
        problems.append(f"{path.name}: the checks use names no earlier cell binds: {sorted(missing)}")
    sources = {i: s for i, s, _ in code_cells}
    return Plan(str(path), path.stem, path.name[:2], exercises,
                [(i, _code(s)) for i, s, e in code_cells if e],
                [(i, _code(sources[i])) for i in setup], manual, problems)
