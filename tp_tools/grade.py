"""``tp grade``: grade a folder of submissions without nbgrader, each exercise in its own process.

What is graded
--------------
The solution notebook says it (:func:`tp_utils.grading.cell_roles`): an **exercise** is a
solution cell (``### BEGIN SOLUTION``) and the function(s) it defines; its **self-checks** are the
test cells whose grade id is ``check-<exercise>-<k>`` (one point each, or the points in their
nbgrader metadata), always taken from the *solution* notebook, so that a student who edited a
check gains nothing; its **hidden tests** are the pytest tests of ``tests/test_notebook*.py`` and
``tests/mutations/nb*.py`` that call one of the exercise's functions on a fixture loading
``solutions/<notebook>.ipynb`` with :func:`tp_utils.notebook.load_exports` (:func:`hidden_tests`:
module-level path constants resolved, through fixtures and helpers; one point per test function,
all its parametrizations must pass; a test skipped for a missing optional package stays in the
maximum and the report says so). Written answers (markdown cells with
``<!-- BEGIN SOLUTION -->`` regions) are collected for a person to read.

How an exercise runs
--------------------
For each notebook, a worker process (one Python that imports torch once) runs the solution's
``export`` cells and the few other cells the self-checks need (a dependency slice found with
``ast``: for each free name of a check cell, the last earlier cell that binds it, recursively),
with the reference functions. Then, for each student and exercise, it forks a child that takes
over that state copy-on-write and

1. runs the student's ``export`` cells that hold no exercise (imports) and their untagged cells
   made only of imports, function and class definitions (helpers), tolerating errors there;
2. runs the student's cell of this exercise (found by its grade id ``answer-<exercise>``, else by
   the ``def`` of its first function): the student's functions replace the reference ones for
   this exercise only, every other exercise keeps the reference version, so that one mistake
   costs points once;
3. runs the self-checks, then the hidden tests (pytest, in the same child, with
   ``load_exports`` of this notebook answering the student's module).

The child has a wall-clock limit (``--timeout``, killed with its process group when over), a
memory limit (``RLIMIT_AS`` = what the worker had already mapped + ``--memory`` MB), no core dumps,
a 256 MB file-size limit, stdin from /dev/null, and its stdout/stderr go to a pipe of which the
worker keeps the first and last 2,000 bytes. Whatever a submission does (crash the interpreter,
loop forever, print megabytes, exhaust memory, call ``sys.exit``), it ends that child only: the
items already passed keep their points, the others get the reason. Grading runs on the CPU
(a forked child cannot use its parent's GPU context) with one thread per process
(``--jobs`` processes in parallel), seeded with ``tp.seed_everything(0)`` before the checks, and
with ``TP_ANSWERS_DIR`` set to the solutions, so that a later notebook is graded alone.

Requires a POSIX system (``os.fork``, ``resource``): Linux or macOS (where the memory limit is not
enforced by the kernel); on Windows use WSL or nbgrader.
"""
from __future__ import annotations

import ast
import builtins
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from tp_utils.conventions import MAGIC as _MAGIC
from tp_utils.conventions import MD_BEGIN_TEXT, is_export
KEEP_OUTPUT = 2000      # bytes of a child's output kept from its start and from its end
FILE_LIMIT = 256 << 20  # largest file a child may write
HIDDEN_PREFIX = "hidden:"


def _code(source: str) -> str:
    """A cell's source without IPython magics and shell escapes."""
    return "\n".join(ln for ln in source.splitlines() if not _MAGIC.match(ln))


def _compile(source, filename: str, text: str | None = None):
    """compile(), with the source registered so that tracebacks show its lines."""
    import linecache

    text = source if isinstance(source, str) else text
    if text is not None:
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    return compile(source, filename, "exec")


# ================================================================ names a cell uses and binds

_BUILTINS = set(dir(builtins)) | {"display", "get_ipython", "__name__", "__file__"}


@dataclass
class CellNames:
    free: set = field(default_factory=set)      # names read before the cell binds them
    bound: set = field(default_factory=set)     # names the cell binds at top level
    mutated: set = field(default_factory=set)   # names the cell changes (x.a = ..., x[i] = ..., x.f())
    imported: set = field(default_factory=set)  # names bound by import statements


def _target_names(node, names: CellNames):
    if isinstance(node, ast.Name):
        names.bound.add(node.id)
    elif isinstance(node, (ast.Tuple, ast.List)):
        for elt in node.elts:
            _target_names(elt, names)
    elif isinstance(node, ast.Starred):
        _target_names(node.value, names)
    elif isinstance(node, (ast.Attribute, ast.Subscript)):
        base = node
        while isinstance(base, (ast.Attribute, ast.Subscript)):
            base = base.value
        if isinstance(base, ast.Name):
            names.mutated.add(base.id)


def _scope_free(node) -> set:
    """Free names of a function, lambda, class or comprehension (its own bindings removed)."""
    local = set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        a = node.args
        for arg in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg]:
            if arg is not None:
                local.add(arg.arg)
        body = node.body if isinstance(node.body, list) else [node.body]
    elif isinstance(node, ast.ClassDef):
        body = node.body
    else:  # comprehension
        for gen in node.generators:
            inner = CellNames()
            _target_names(gen.target, inner)
            local |= inner.bound
        body = [getattr(node, "elt", None), getattr(node, "key", None), getattr(node, "value", None)]
        body += [x for gen in node.generators for x in [gen.iter] + gen.ifs]
        body = [b for b in body if b is not None]
    loads = set()
    for stmt in body:
        for sub in _walk_scope(stmt):
            if isinstance(sub, ast.Name):
                (loads if isinstance(sub.ctx, ast.Load) else local).add(sub.id)
            elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                local.add(sub.name)
                loads |= _scope_free(sub)
            elif isinstance(sub, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                loads |= _scope_free(sub)
            elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                local |= {(a.asname or a.name).split(".")[0] for a in sub.names}
            elif isinstance(sub, (ast.Global, ast.Nonlocal)):
                loads |= set(sub.names)
    return loads - local


def _walk_scope(node: ast.AST):
    """ast.walk that does not enter nested scopes (it yields them, not their insides)."""
    yield node
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda,
                         ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk_scope(child)


def cell_names(source: str) -> CellNames:
    """What a cell reads and binds at top level (``ast``; a cell that does not parse: nothing)."""
    names = CellNames()
    try:
        tree = ast.parse(_code(source))
    except SyntaxError:
        return names
    for stmt in tree.body:
        before = set(names.bound)
        loads, stmt_names = set(), CellNames()
        for node in _walk_scope(stmt):
            if node is not stmt and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.ClassDef)):
                stmt_names.bound.add(node.name)
                loads |= _scope_free(node)
                loads |= {n.id for d in node.decorator_list for n in ast.walk(d) if isinstance(n, ast.Name)}
            elif isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                loads |= _scope_free(node)
            elif isinstance(node, ast.Name):
                if isinstance(node.ctx, ast.Load):
                    loads.add(node.id)
                else:
                    stmt_names.bound.add(node.id)
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                    _target_names(t, stmt_names)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        _target_names(item.optional_vars, stmt_names)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bound = {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
                stmt_names.bound |= bound
                stmt_names.imported |= bound
            elif isinstance(node, ast.ExceptHandler) and node.name:
                stmt_names.bound.add(node.name)
            elif isinstance(node, ast.Delete):
                for t in node.targets:
                    _target_names(t, stmt_names)
            elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                func = node.value.func  # x.method(...) as a statement may change x
                if isinstance(func, ast.Attribute):
                    base = func.value
                    while isinstance(base, (ast.Attribute, ast.Subscript, ast.Call)):
                        base = base.func if isinstance(base, ast.Call) else base.value
                    if isinstance(base, ast.Name):
                        stmt_names.mutated.add(base.id)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stmt_names.bound.add(stmt.name)
            loads |= _scope_free(stmt)
            loads |= {n.id for d in stmt.decorator_list for n in ast.walk(d) if isinstance(n, ast.Name)}
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                loads |= {n.id for d in stmt.args.defaults + stmt.args.kw_defaults if d is not None
                          for n in ast.walk(d) if isinstance(n, ast.Name)}
        simple = isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return,
                                   ast.Delete, ast.Assert, ast.Raise))
        own = set() if simple else stmt_names.bound  # `for n in xs: f(n)` reads the n it binds
        names.free |= loads - before - own - _BUILTINS
        names.bound |= stmt_names.bound
        names.mutated |= stmt_names.mutated
        names.imported |= stmt_names.imported
    names.mutated -= names.imported
    return names


def setup_slice(cells: list[tuple[int, str, bool]], targets: list[int]) -> tuple[list[int], set]:
    """The cells to run before the cells ``targets``: ``(indices, names nobody binds)``.

    ``cells``: ``(index, source, is_export)`` of the notebook's code cells, in order. Export cells
    always run first, so they are never returned. For each free name of a needed cell: the last
    earlier cell that binds it, then the cells between that change it (``x.f()``,
    ``x[i] = ...``), recursively.
    """
    info = {i: cell_names(src) for i, src, _ in cells}
    export = {i for i, _, e in cells if e}
    order = [i for i, _, _ in cells]
    imported = set().union(*(n.imported for n in info.values())) if info else set()
    needed, missing = set(), set()

    def require(name, before):
        binders = [i for i in order if i < before and name in info[i].bound]
        if not binders:
            missing.add(name)
            return
        j = binders[-1]
        add(i=j)
        if name not in imported:
            for k in order:
                if j < k < before and name in info[k].mutated:
                    add(i=k)

    def add(i: int) -> None:
        if i in needed or i in export:
            return
        needed.add(i)
        for n in sorted(info[i].free):
            require(n, i)

    for t in targets:
        for n in sorted(info[t].free):
            require(n, t)
    # what the exercises' functions use from cells that are not export cells (notebook 11's
    # `gram_matrix = tp.answers.earlier("gram_matrix")`): the export cells run first, but their
    # functions run only in the checks, after the setup cells
    for e in sorted(export):
        for n in sorted(info[e].free):
            if any(i < e and i not in export and n in info[i].bound for i in order):
                require(n, e)
    return sorted(needed), missing


# ================================================================ the plan of a notebook

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

    from tp_utils.grading import cell_roles
    from tp_utils.notebook import EXPORT_TAG

    path = Path(solution)
    nb = nbformat.read(path, as_version=4)
    roles = cell_roles(nb)
    exercises, by_name, manual, problems = [], {}, [], []
    code_cells = []
    for i, (cell, (role, grade_id, points)) in enumerate(zip(nb.cells, roles)):
        if cell.cell_type == "code":
            is_export = EXPORT_TAG in cell.get("metadata", {}).get("tags", [])
            code_cells.append((i, cell.source, is_export))
        md_points = cell.get("metadata", {}).get("nbgrader", {}).get("points")
        if role == "solution":
            ex = Exercise(path.stem, grade_id[len("answer-"):], re.findall(r"^def (\w+)\(", cell.source, re.M),
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


# ================================================================ running code in a child process

@dataclass
class ChildResult:
    events: list
    end: str            # "exit", "signal" or "timeout"
    code: int           # exit status or signal number
    seconds: float
    output: str         # the first and last KEEP_OUTPUT bytes of stdout + stderr
    output_bytes: int

    def stop_reason(self, timeout: float, memory_mb: int | None) -> str:
        """Why the child stopped before finishing, in words."""
        if self.end == "timeout":
            return f"time-out: still running after {timeout:g} s (an endless loop?)"
        if self.end == "signal":
            name = signal.Signals(self.code).name if self.code in signal.Signals._value2member_map_ else str(self.code)
            why = {"SIGSEGV": "segmentation fault", "SIGABRT": "aborted", "SIGBUS": "bus error",
                   "SIGKILL": "killed, perhaps out of memory", "SIGFPE": "arithmetic error",
                   "SIGILL": "illegal instruction"}.get(name, "killed by a signal")
            return f"the process crashed ({name}: {why})"
        if self.code == 0:
            return "the process ended before its tests did"
        return f"the process exited with status {self.code} (os._exit, or an error outside the tests)"


def _vm_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit_child(memory_mb: int | None):
    import resource

    def cap(kind, value):
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value))

    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_FSIZE, FILE_LIMIT)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, the process goes on
    if memory_mb and hasattr(resource, "RLIMIT_AS"):
        vm = _vm_bytes()
        if vm:
            try:
                cap(resource.RLIMIT_AS, vm + int(memory_mb) * 2 ** 20)
            except (ValueError, OSError):
                pass


def _join_output(head: bytes, tail: bytes, total: int) -> str:
    if total <= len(head):
        text = head
    elif total <= len(head) + len(tail):
        text = head + tail[len(head) + len(tail) - total:]
    else:
        left_out = total - len(head) - len(tail)
        text = head + f"\n[... {left_out:,} bytes left out ...]\n".encode() + tail
    return text.decode("utf-8", "replace")


class Child:
    """``target(emit)`` running in a forked child with the limits; :meth:`poll` until done.

    The child's stdout and stderr go to a pipe of which the first and last ``keep`` bytes are
    kept; it runs in its own process group, killed whole at ``timeout`` seconds and at the end;
    ``emit(dict)`` records an event (a JSON line in a file, so that it survives a crash).
    """

    def __init__(self, target, *, timeout: float, memory_mb: int | None = None, keep: int = KEEP_OUTPUT,
                 threads: int | None = None):
        self.timeout, self.keep = timeout, keep
        self.workdir = Path(tempfile.mkdtemp(prefix="tp-grade-"))
        self.events_path = self.workdir / "events.jsonl"
        read_end, write_end = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self.start = time.monotonic()
        pid = os.fork()
        if pid == 0:  # ------------------------------------------------------------- the child
            code = 0
            try:
                os.setsid()
                os.close(read_end)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(write_end, 1)
                os.dup2(write_end, 2)
                os.close(write_end)
                sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, encoding="utf-8", errors="replace",
                                                   closefd=False)
                sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, encoding="utf-8", errors="replace",
                                                   closefd=False)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _limit_child(memory_mb)
                if threads and "torch" in sys.modules:  # the parent has no thread pool: safe here
                    sys.modules["torch"].set_num_threads(int(threads))
                import faulthandler

                faulthandler.enable(file=sys.stderr)
                os.makedirs(self.workdir / "cwd")
                os.chdir(self.workdir / "cwd")  # files a submission writes land apart from the events
                with open(self.events_path, "w", buffering=1, encoding="utf-8") as events:
                    def emit(event: dict) -> None:
                        events.write(json.dumps(event, default=str) + "\n")
                        events.flush()

                    _ = target(emit)
            except BaseException:  # noqa: B036 - nothing may escape a forked child
                code = 70
                try:
                    traceback.print_exc()
                except BaseException:  # noqa: B036
                    pass
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                except BaseException:  # noqa: B036
                    pass
                os._exit(code)
        # ------------------------------------------------------------------------------ the parent
        self.pid, self.fd = pid, read_end
        os.close(write_end)
        os.set_blocking(read_end, False)
        self.head, self.tail, self.total = bytearray(), bytearray(), 0
        self.eof, self.status, self.end, self._result = False, 0, "exit", None

    def _absorb(self, chunk: bytes):
        self.total += len(chunk)
        if len(self.head) < self.keep:
            self.head.extend(chunk[:self.keep - len(self.head)])
        self.tail = (self.tail + chunk[-self.keep:])[-self.keep:]

    def _read(self, wait: float):
        import select

        if self.eof:
            time.sleep(wait)
            return
        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            return
        for _ in range(64):
            try:
                chunk = os.read(self.fd, 1 << 16)
            except (BlockingIOError, InterruptedError):
                return
            if not chunk:
                self.eof = True
                return
            self._absorb(chunk)

    def poll(self, wait: float = 0.1) -> bool:
        """Read output for up to ``wait`` seconds; True once the child has ended (or was killed)."""
        if self._result is not None:
            return True
        self._read(wait)
        done, status = os.waitpid(self.pid, os.WNOHANG)
        if done:
            self.status = status
        elif time.monotonic() > self.start + self.timeout:
            self.end = "timeout"
            _kill_group(self.pid)
            _, self.status = os.waitpid(self.pid, 0)
        else:
            return False
        self._finish()
        return True

    def _finish(self) -> None:
        seconds = time.monotonic() - self.start
        _kill_group(self.pid)  # what the child left running
        self.eof = False
        while not self.eof:
            before = self.total
            self._read(0)
            if self.total == before:
                break
        os.close(self.fd)
        if self.end == "timeout":
            code = -1
        elif os.WIFSIGNALED(self.status):
            self.end, code = "signal", os.WTERMSIG(self.status)
        else:
            code = os.WEXITSTATUS(self.status)
        events = []
        try:
            with open(self.events_path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        events.append(json.loads(line))
                    except ValueError:
                        pass
        except OSError:
            pass
        shutil.rmtree(self.workdir, ignore_errors=True)
        self._result = ChildResult(events, self.end, code, seconds,
                                   _join_output(bytes(self.head), bytes(self.tail), self.total), self.total)

    def result(self) -> ChildResult:
        while not self.poll():
            pass
        return self._result


def run_in_child(target, **limits) -> ChildResult:
    """Run ``target(emit)`` in a forked child with the limits (see :class:`Child`); wait for it."""
    return Child(target, **limits).result()


def run_many(targets, *, jobs: int = 1, **limits) -> list[ChildResult]:
    """Run the targets in forked children, ``jobs`` at a time; their results in order."""
    results, running, todo = [None] * len(targets), {}, list(enumerate(targets))
    while todo or running:
        while todo and len(running) < max(1, jobs):
            k, target = todo.pop(0)
            running[k] = Child(target, **limits)
        for k, child in list(running.items()):
            if child.poll(0.05 if len(running) > 1 else 0.1):
                results[k] = child.result()
                del running[k]
    return results


def _kill_group(pid: int):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ================================================================ inside a worker: the reference state

def prepare_process():
    """One thread, the CPU, no display, quiet warnings: a worker that forks children."""
    import warnings

    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import matplotlib

    matplotlib.use("Agg")
    import torch

    torch.set_num_threads(1)  # an OpenMP pool in the parent hangs its forked children
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    import tp_utils
    from tp_utils import device

    original = device.get_device
    if not getattr(original, "_tp_grade_cpu", False):
        def cpu_device(prefer=None):
            return original(prefer) if prefer is not None else torch.device("cpu")

        cpu_device._tp_grade_cpu = True
        device.get_device = cpu_device
        tp_utils.get_device = cpu_device
    warnings.filterwarnings("ignore")


def build_base(p: Plan) -> types.ModuleType:
    """A module holding the solution's export cells and the setup slice, run with the reference."""
    import matplotlib.pyplot as plt

    import tp_utils

    module = types.ModuleType(p.stem)
    module.__file__ = p.path
    ns = module.__dict__
    try:
        from IPython.display import display

        ns["display"] = display
    except ImportError:
        pass
    import contextlib
    import io

    tp_utils.seed_everything(0)
    printed = io.StringIO()  # the setup cells' prints are noise here
    with contextlib.redirect_stdout(printed):
        for index, source in p.exports + p.setup:
            exec(_compile(source, f"<solution {p.stem} cell {index}>"), ns)
            plt.close("all")
    return module


def preimport_for_hidden(p: Plan):
    """Import what the hidden tests import, once, before forking (pytest, captum, ...)."""
    import importlib

    files = {h.path for ex in p.exercises for h in ex.hidden}
    conftest = Path(next(iter(files))).parent / "conftest.py" if files else None
    if conftest is not None and conftest.exists():
        files.add(str(conftest))
    modules = {"pytest"}
    for path in files:
        try:
            tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module)
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "importorskip" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                modules.add(node.args[0].value)
    for name in sorted(modules):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing optional module skips its tests later
            pass


# ================================================================ inside a child: one exercise

def describe(err: BaseException, limit: int = 240) -> str:
    """One line that says what went wrong, for the report."""
    name = type(err).__name__
    text = " ".join(str(err).split())
    if isinstance(err, NotImplementedError) or name == "UnfinishedExercise":
        out = "not done: it raises NotImplementedError" if isinstance(err, NotImplementedError) else text
    elif isinstance(err, AssertionError):
        out = f"wrong value: {text}" if text else "wrong value: " + _failing_line(err)
    elif isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and "alloc" in text.lower()):
        out = f"memory limit exceeded ({name}: {text})"
    elif isinstance(err, SystemExit):
        out = f"the code called sys.exit({err.code!r})"
    elif isinstance(err, OSError) and err.errno == 27:
        out = "output or file limit exceeded (a file over 256 MB)"
    elif isinstance(err, SyntaxError):
        out = f"SyntaxError: {err.msg} (line {err.lineno})"
    else:
        out = f"{name}: {text}"
        if isinstance(err, NameError):
            out += " (a helper must be defined in the exercise's cell or in a cell of definitions only)"
    where = _student_frame(err)
    if where and not isinstance(err, SyntaxError):
        out += f" [{where}]"
    return out if len(out) <= limit else out[:limit - 3] + "..."


def _failing_line(err) -> str:
    tb = traceback.extract_tb(err.__traceback__)
    return f"assertion failed: {tb[-1].line}" if tb and tb[-1].line else "assertion failed"


def _student_frame(err) -> str | None:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith("<submission")]
    if not frames:
        return None
    f = frames[-1]
    return f"{f.filename.strip('<>').replace('submission ', '')}, line {f.lineno}"


_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass)


def _definitions_only(tree: ast.Module) -> bool:
    for stmt in tree.body:
        if isinstance(stmt, _DEFINITIONS):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring
        if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
            try:
                ast.literal_eval(stmt.value)
                continue  # a constant: EPS = 1e-8
            except ValueError:
                pass
        return False
    return bool(tree.body)


def _top_defs(source: str) -> set:
    try:
        return {n.name for n in ast.parse(_code(source)).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    except SyntaxError:
        return set(re.findall(r"^def (\w+)\(", source, re.M))


def find_exercise_cell(cells, exercise: Exercise) -> int | None:
    """Index of the student's cell for ``exercise``: by grade id, else the last code cell
    defining its first function (tagged ``export`` preferred)."""
    want = f"answer-{exercise.name}"
    by_id = [i for i, c in enumerate(cells) if c.cell_type == "code"
             and c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == want]
    if by_id:
        return by_id[-1]
    by_def = [i for i, c in enumerate(cells) if c.cell_type == "code" and exercise.functions[0] in _top_defs(c.source)]
    tagged = [i for i in by_def if is_export(cells[i])]
    return (tagged or by_def or [None])[-1]


def overlay_submission(ns: dict, p: Plan, exercise: Exercise, notebook: str) -> str | None:
    """Run the student's context cells, then their cell of ``exercise``, in ``ns``.
    Returns the reason when the exercise cannot be graded (else None)."""
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as err:  # noqa: BLE001
        return f"the notebook cannot be read ({type(err).__name__}: {' '.join(str(err).split())[:150]})"
    cells = nb.cells
    target = find_exercise_cell(cells, exercise)
    if target is None:
        return f"no cell defines {exercise.functions[0]}() (the cell of exercise `{exercise.name}` is missing)"
    exercise_functions = {f for ex in p.exercises for f in ex.functions}
    for i, cell in enumerate(cells):
        if i == target or cell.cell_type != "code":
            continue
        meta = cell.get("metadata", {})
        if str(meta.get("nbgrader", {}).get("grade_id", "")).startswith(("answer-", "check-")):
            continue
        try:
            tree = ast.parse(_code(cell.source))
        except SyntaxError:
            continue
        if not is_export(cell) and not _definitions_only(tree):
            continue
        tree.body = [s for s in tree.body if not (isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
                                                   and s.name in exercise_functions)]
        try:
            exec(_compile(tree, f"<submission cell {i}>", _code(cell.source)), ns)
        except BaseException as err:  # noqa: B036 - helpers are optional: the checks will say
            print(f"[grader] cell {i} of the submission failed: {describe(err)}")
    try:
        exec(_compile(_code(cells[target].source), f"<submission cell {target}>"), ns)
    except BaseException as err:  # noqa: B036
        return f"its cell fails to run: {describe(err)}"
    missing = [f for f in exercise.functions if not callable(ns.get(f))]
    if missing:
        return f"its cell does not define {', '.join(missing)}"
    return None


def overlay_source(source: str, label: str = "mutant"):
    """An overlay that runs ``source`` as the exercise's cell (the mutation catalogue's)."""
    def overlay(ns: dict, p: Plan, exercise: Exercise) -> str | None:
        try:
            exec(_compile(_code(source), f"<submission {label}>"), ns)
        except BaseException as err:  # noqa: B036
            return f"its cell fails to run: {describe(err)}"
        return None
    return overlay


def run_checks(ns: dict, exercise: Exercise, emit, stop_first: bool = False, first=()) -> bool:
    """Run the exercise's self-check cells in ``ns``; with ``first`` (function names), the cells
    that call them run first (with ``stop_first``, that finds a failure sooner)."""
    import matplotlib.pyplot as plt

    import tp_utils

    tp_utils.seed_everything(0)
    all_ok = True
    checks = sorted(exercise.checks, key=lambda c: not (set(first) & cell_names(c.source).free))
    for check in checks:
        emit({"start": check.grade_id})
        t = time.perf_counter()
        try:
            exec(_compile(check.source, f"<check {check.grade_id}>"), ns)
            ok, reason = True, ""
        except BaseException as err:  # noqa: B036
            if type(err).__name__ in ("SandboxDied", "Closed"):  # the student's process is gone
                emit({"stopped": str(err), "during": check.grade_id})
                raise
            ok, reason = False, describe(err)
        finally:
            plt.close("all")
        emit({"item": check.grade_id, "ok": ok, "reason": reason, "seconds": round(time.perf_counter() - t, 3)})
        all_ok &= ok
        if stop_first and not ok:
            break
    return all_ok


class _Collector:
    """pytest plugin: reports each test's outcome as an event."""

    def __init__(self, emit, names) -> None:
        self.emit, self.names = emit, names

    def _item(self, nodeid):
        name = nodeid.split("::")[-1].split("[")[0]
        return HIDDEN_PREFIX + name

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        self.emit({"start": self._item(nodeid), "node": nodeid})

    def pytest_runtest_logreport(self, report):
        if report.when != "call" and report.outcome == "passed":
            return
        reason = ""
        if report.outcome != "passed":
            crash = getattr(report.longrepr, "reprcrash", None)
            if crash is not None:
                reason = crash.message
            elif isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
                reason = str(report.longrepr[-1])
            else:
                reason = str(report.longrepr).strip().splitlines()[-1] if report.longrepr else ""
            reason = re.sub(r" at 0x[0-9a-f]+", "", " ".join(reason.split()))
            if "SandboxDied: " in reason or "proxy.Closed: " in reason:  # the student's process is gone
                self.emit({"stopped": reason.split("SandboxDied: ")[-1].split("Closed: ")[-1],
                           "during": self._item(report.nodeid)})
            if reason.startswith(("NotImplementedError", "tp_utils.answers.UnfinishedExercise")):
                reason = "not done: it raises NotImplementedError"
            if len(reason) > 160:
                reason = reason[:157] + "..."
            if report.when != "call" and report.outcome == "failed":
                reason = f"error in the test's {report.when}: {reason}"
        self.emit({"node": report.nodeid, "item": self._item(report.nodeid), "outcome": report.outcome,
                   "reason": reason[:240], "seconds": round(report.duration, 3)})

    def pytest_collectreport(self, report):
        if report.failed:
            self.emit({"grader_error": f"collecting {report.nodeid} failed: "
                                       f"{' '.join(str(report.longrepr).split())[-300:]}"})


def run_hidden(module: types.ModuleType, p: Plan, exercise: Exercise, emit, stop_first: bool = False):
    import pytest

    from tp_utils import notebook as tpn

    original = tpn.load_exports
    target = Path(p.path).resolve()

    def load_exports(path, name=None):
        if Path(path).resolve() == target:
            return module
        return original(path, name)

    tpn.load_exports = load_exports
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    root = Path(exercise.hidden[0].path).resolve().parent
    while root.parent != root and not (root / "pyproject.toml").exists() and not (root / "setup.cfg").exists():
        root = root.parent
    args = [h.nodeid for h in exercise.hidden] + [
        "-q", "-s", "--tb=no", "--no-header", "-p", "no:cacheprovider", "-o", "addopts=",
        f"--rootdir={root}", f"--basetemp={Path.cwd() / 'pytest'}", "-W", "ignore"]
    if stop_first:
        args.append("-x")
    code = pytest.main(args, plugins=[_Collector(emit, [h.name for h in exercise.hidden])])
    if int(code) not in (0, 1):
        emit({"grader_error": f"pytest ended with exit code {int(code)}"})


def exercise_target(module: types.ModuleType, p: Plan, exercise: Exercise, overlay, *,
                    hidden: bool = True, checks: bool = True, stop_first: bool = False,
                    hidden_if_checks_pass: bool = False, first=()):
    """What a child runs for one exercise: ``overlay(ns, plan, exercise)`` (the submission's
    code), then the self-checks, then the hidden tests."""
    def target(emit) -> None:
        ns = module.__dict__
        fatal = overlay(ns, p, exercise)
        if fatal:
            emit({"fatal": fatal})
            return
        ok = run_checks(ns, exercise, emit, stop_first=stop_first, first=first) if checks else True
        if hidden and exercise.hidden and (ok or not (stop_first or hidden_if_checks_pass)):
            run_hidden(module, p, exercise, emit, stop_first=stop_first)
    return target


def summarize(exercise: Exercise, child: ChildResult, *, hidden: bool, timeout: float,
              memory_mb: int | None) -> dict:
    """Points and reasons of one exercise from its child's events."""
    results, nodes, running, fatal, grader_errors = {}, {}, None, None, []
    stopped = next((ev for ev in child.events if "stopped" in ev), None)
    events = child.events[:child.events.index(stopped)] if stopped else child.events
    if stopped:
        running = stopped.get("during")
    for ev in events:
        if "fatal" in ev:
            fatal = ev["fatal"]
        elif "grader_error" in ev:
            grader_errors.append(ev["grader_error"])
        elif "start" in ev:
            running = ev["start"]
        elif "node" in ev:
            nodes.setdefault(ev["item"], []).append(ev)
            running = None
        elif "item" in ev:
            results[ev["item"]] = ev
            running = None
    for item, evs in nodes.items():
        failed = [e for e in evs if e["outcome"] == "failed"]
        if failed:
            case = failed[0]["node"].split("::")[-1]
            results[item] = {"ok": False, "reason": failed[0]["reason"] + (f" (case {case})" if "[" in case else ""),
                             "seconds": round(sum(e["seconds"] for e in evs), 3)}
        elif all(e["outcome"] == "skipped" for e in evs):
            results[item] = {"ok": None, "reason": "skipped: " + evs[0]["reason"]}
        else:
            results[item] = {"ok": True, "reason": "", "seconds": round(sum(e["seconds"] for e in evs), 3)}
    stop = None if child.end == "exit" and child.code == 0 else child.stop_reason(timeout, memory_mb)
    if stopped and not stop:
        stop = stopped["stopped"]
        running = stopped.get("during", running)
    crash_line = _crash_line(child.output) if child.end == "signal" else ""
    stopped_status = "timeout" if child.end == "timeout" or str(stop).startswith("time-out") else "crash"
    nothing = not results and not nodes
    items, points, maximum = [], 0.0, 0.0
    for item, worth in exercise.items(hidden):
        r = results.get(item)
        if fatal:
            status, reason = "fail", fatal
        elif stop and (item == running or (nothing and running is None)):
            status, reason = stopped_status, stop + crash_line
        elif r is not None and r.get("ok") is None:
            status, reason = "skipped", r["reason"]  # stays in the maximum: the report says why
        elif r is not None:
            status, reason = ("pass", "") if r["ok"] else ("fail", r["reason"])
        elif stop:
            status, reason = "not run", f"{stop}" + (f" during {running}" if running else "")
        elif grader_errors:
            status, reason = "grader error", grader_errors[0]
        else:
            status, reason = "not run", "the tests stopped at the first failure"
        got = worth if status == "pass" else 0.0
        points += got
        maximum += worth
        items.append({"item": item, "points": got, "max": worth, "status": status, "reason": reason,
                      "seconds": (r or {}).get("seconds")})
    return {"exercise": exercise.name, "functions": exercise.functions, "points": points, "max": maximum,
            "items": items, "seconds": round(child.seconds, 2), "output": child.output,
            "output_bytes": child.output_bytes, "grader_errors": grader_errors}


def _crash_line(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("Fatal Python error"):
            return f"; {line.strip()}"
    return ""


def answers_target(p: Plan, notebook: str):
    """A child's work: the student's written answers (markdown cells with a manual grade id)."""
    def target(emit) -> None:
        import nbformat

        try:
            nb = nbformat.read(notebook, as_version=4)
        except Exception as err:  # noqa: BLE001
            emit({"answers_error": f"the notebook cannot be read ({type(err).__name__})"})
            return
        markdown = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]
        for k, (index, grade_id, points, source) in enumerate(p.manual):
            hits = [c for _, c in markdown if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id]
            if not hits and len(nb.cells) > index and nb.cells[index].cell_type == "markdown":
                hits = [nb.cells[index]]
            text = hits[-1].source if hits else ""
            questions = source.count(MD_BEGIN_TEXT)
            emit({"answer": grade_id, "points": points, "text": text[:20000],
                  "unanswered": text.count("YOUR ANSWER HERE") if hits else questions,
                  "found": bool(hits)})
    return target


# ================================================================ the worker: one notebook, some students

def worker(spec: dict) -> int:
    """Grade ``spec["students"]`` on one notebook; one JSON line per result in ``spec["results"]``."""
    out = open(spec["results"], "a", encoding="utf-8", buffering=1)

    def write(record: dict) -> None:
        out.write(json.dumps(record, default=str) + "\n")
        out.flush()

    p = plan(spec["solution"], spec.get("tests") if spec.get("hidden", True) else None, quick=spec.get("quick", False))
    prepare_process()
    try:
        module = build_base(p)
        if spec.get("hidden", True):
            preimport_for_hidden(p)
    except BaseException as err:  # noqa: B036
        write({"setup_error": f"running the solution's cells for {p.stem} failed: {describe(err)}",
               "traceback": traceback.format_exc()[-3000:]})
        return 1
    timeout, memory, threads = float(spec["timeout"]), spec.get("memory"), spec.get("threads", 1)
    zygote = None
    if spec.get("sandbox", True):
        from tp_tools.harness import Zygote, sandboxed_target
        from tp_utils import answers

        def door(name):
            return answers.earlier(name)  # TP_ANSWERS_DIR: the solutions (the trusted side only)

        try:
            zygote = Zygote(p, module, int(spec.get("id", 0)), door=door)
        except BaseException as err:  # noqa: B036
            write({"setup_error": f"starting the sandbox for {p.stem} failed: {describe(err)}",
                   "traceback": traceback.format_exc()[-3000:]})
            return 1
    for student, path in spec["students"]:
        child = run_in_child(answers_target(p, path), timeout=60, memory_mb=memory)
        write({"student": student, "notebook": p.stem, "answers": [e for e in child.events if "answer" in e],
               "answers_error": next((e["answers_error"] for e in child.events if "answers_error" in e), None)})
        for ex in p.exercises:
            if zygote is not None:
                target = sandboxed_target(module, p, ex, path, zygote, hidden=spec.get("hidden", True),
                                          timeout=timeout, memory_mb=memory, door=door)
            else:
                target = exercise_target(module, p, ex,
                                         lambda ns, pl, e, path=path: overlay_submission(ns, pl, e, path),
                                         hidden=spec.get("hidden", True))
            child = run_in_child(target, timeout=timeout, memory_mb=None if zygote else memory, threads=threads)
            if zygote is not None:
                for ev in child.events:
                    if ev.get("sandbox_pid"):
                        _kill_group(int(ev["sandbox_pid"]))
                zygote.sweep()
            record = summarize(ex, child, hidden=spec.get("hidden", True), timeout=timeout, memory_mb=memory)
            write({"student": student, "notebook": p.stem, **record})
    if zygote is not None:
        zygote.close()
    return 0


# ================================================================ finding the submissions

def notebook_number(name: str, known) -> str | None:
    """The course notebook a file name is a submission of ('alice_03_patches.ipynb' -> '03')."""
    for m in reversed(list(re.finditer(r"(?<!\d)(\d\d)_", name))):
        if m.group(1) in known:
            return m.group(1)
    m = re.search(r"(?<!\d)(\d\d)\.ipynb$", name)
    return m.group(1) if m and m.group(1) in known else None


def find_submissions(folder: str | os.PathLike, known) -> tuple[dict, list]:
    """``({student: {NN: path}}, warnings)`` for a submissions folder.

    Layouts: ``folder/<student>/NN_name.ipynb`` (any depth below the student's folder, e.g.
    nbgrader's ``submitted/<student>/<assignment>/``), and ``folder/<student>_NN_name.ipynb``
    (the student's name, then ``_``, ``-``, ``.`` or a space, then the notebook's file name)."""
    folder = Path(folder)
    found: dict = {}
    warnings: list = []

    def add(student, path):
        nn = notebook_number(path.name, known)
        if nn is None:
            warnings.append(f"{path.relative_to(folder)}: not a course notebook name (NN_name.ipynb), ignored")
            return
        current = found.setdefault(student, {}).get(nn)
        if current is not None:
            keep = max(current, path, key=lambda q: (q.name[:2] == nn, q.stat().st_mtime))
            warnings.append(f"{student}: two submissions of notebook {nn} ({current.relative_to(folder)}, "
                            f"{path.relative_to(folder)}); grading {keep.relative_to(folder)}")
            path = keep
        found[student][nn] = path

    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            for path in sorted(entry.rglob("*.ipynb")):
                if ".ipynb_checkpoints" not in path.parts:
                    add(entry.name, path)
        elif entry.suffix == ".ipynb":
            nn = notebook_number(entry.name, known)
            m = None
            if nn is not None:
                m = [m for m in re.finditer(rf"(?<!\d){nn}[_.]", entry.name)][-1]
            student = entry.name[:m.start()].rstrip("_-. ") if m else ""
            if not student:
                warnings.append(f"{entry.name}: no student name before the notebook's number, ignored")
                continue
            add(student, entry)
    return found, warnings


# ================================================================ the command

def _spawn(spec: dict, workdir: Path, solutions: Path):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               TQDM_DISABLE="1", MPLBACKEND="Agg", CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0",
               TP_ANSWERS_DIR=str(solutions), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    path = workdir / f"spec-{spec['id']}.json"
    path.write_text(json.dumps(spec))
    log = open(workdir / f"worker-{spec['id']}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "tp_tools.grade", "--worker", str(path)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            cwd=workdir, start_new_session=True)
    return proc, log


def grade(submissions, out, *, solutions=None, tests=None, notebooks=None, timeout: float = 600,
          memory: int | None = 4096, jobs: int = 1, hidden: bool = True, quick: bool = False,
          sandbox: bool = True, echo=print) -> dict:
    """Grade every submission in ``submissions``; write the reports to ``out``; return the data."""
    solutions = Path(solutions or ROOT / "solutions").resolve()
    tests = Path(tests or solutions.parent / "tests").resolve()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    references = {p.name[:2]: p for p in sorted(solutions.glob("[0-9][0-9]_*.ipynb"))}
    found, warnings = find_submissions(submissions, set(references))
    wanted = sorted(notebooks or {nn for per in found.values() for nn in per})
    unknown = [nn for nn in wanted if nn not in references]
    if unknown:
        raise ValueError(f"no solution notebook for {', '.join(unknown)} in {solutions}")
    plans = {nn: plan(references[nn], tests if hidden else None, quick=quick) for nn in wanted}
    for w in warnings:
        echo(f"warning: {w}")
    if sandbox:
        from tp_tools.sandbox import isolation

        echo(f"submissions run in a sandbox: {isolation()}")
    else:
        echo("warning: --unsandboxed: submissions run in the grader's processes (trusted code only)")
    for nn, p in plans.items():
        for ex in p.exercises:
            echo(f"{p.stem[:2]} {ex.name}: {len(ex.checks)} self-check(s), {len(ex.hidden)} hidden test(s)"
                 + ("" if ex.hidden or not hidden else "  (warning: no hidden test calls it)"))
    students = sorted(found)
    echo(f"grading {len(students)} students on notebook(s) {', '.join(wanted)} "
         f"(limits: {timeout:g} s and {memory} MB per exercise, {jobs} process(es) at a time)")
    records, missing_records = [], []
    specs = []
    workdir = Path(tempfile.mkdtemp(prefix="tp-grade-run-"))
    for nn in wanted:
        todo = [(s, str(found[s][nn].resolve())) for s in students if nn in found[s]]
        for s in students:
            if nn not in found[s]:
                missing_records.append((s, nn))
        # one worker per notebook when there are enough notebooks to keep `jobs` busy (each worker
        # pays for torch and the setup cells once), else the students split between `jobs` workers
        n_chunks = 1 if len(wanted) >= jobs else max(1, jobs)
        chunks = [todo[k::n_chunks] for k in range(n_chunks)]
        for chunk in (c for c in chunks if c):
            specs.append({"id": len(specs), "solution": str(references[nn]), "tests": str(tests),
                          "students": chunk, "timeout": timeout, "memory": memory, "hidden": hidden,
                          "quick": quick, "sandbox": sandbox,
                          "threads": max(1, (os.cpu_count() or 1) // max(1, jobs)),
                          "results": str(workdir / f"results-{len(specs)}.jsonl"), "notebook": nn})
    start = time.monotonic()
    running, queue, offsets = [], list(specs), {}
    while queue or running:
        while queue and len(running) < max(1, jobs):
            spec = queue.pop(0)
            n_ex = len(plans[spec["notebook"]].exercises)
            budget = 900 + len(spec["students"]) * (n_ex * (timeout + 30) + 90)
            proc, log = _spawn(spec, workdir, solutions)
            running.append((spec, proc, log, time.monotonic() + budget))
        time.sleep(0.2)
        for entry in list(running):
            spec, proc, log, deadline = entry
            done = proc.poll() is not None
            if not done and time.monotonic() > deadline:
                _kill_group(proc.pid)
                proc.wait()
                done = True
                records.append({"worker_error": f"the worker for notebook {spec['notebook']} ran past its "
                                                f"budget and was stopped", "spec": spec["id"]})
            new = _read_new(Path(spec["results"]), offsets)
            for rec in new:
                rec["spec"] = spec["id"]
                records.append(rec)
                if "exercise" in rec:
                    echo(f"  {rec['student']:20s} {rec['notebook'][:2]} {rec['exercise']:24s} "
                         f"{_fmt(rec['points'])}/{_fmt(rec['max'])}  {rec['seconds']:6.1f} s")
            if done:
                log.close()
                if proc.returncode != 0 and not any("setup_error" in r for r in records if r.get("spec") == spec["id"]):
                    tail = (workdir / f"worker-{spec['id']}.log").read_text(errors="replace")[-1500:]
                    records.append({"worker_error": f"the worker for notebook {spec['notebook']} ended with "
                                                    f"status {proc.returncode}: {tail}", "spec": spec["id"]})
                running.remove(entry)
    seconds = time.monotonic() - start
    data = _collect(records, plans, students, missing_records, specs, hidden)
    data.update(seconds=round(seconds, 1), warnings=warnings, timeout=timeout, memory=memory)
    write_reports(data, out)
    shutil.rmtree(workdir, ignore_errors=True)
    echo(f"graded in {seconds:.0f} s; reports in {out}: grades.csv, grades.md, details.csv, answers.md, details.json")
    return data


def _read_new(path: Path, offsets: dict) -> list:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        f.seek(offsets.get(path, 0))
        text = f.read()
        complete = text[:text.rfind("\n") + 1]
        offsets[path] = offsets.get(path, 0) + len(complete.encode("utf-8"))
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def _fmt(x: float) -> str:
    return f"{x:g}"


def _collect(records, plans, students, missing_records, specs, hidden) -> dict:
    """Everything the reports show: one entry per student, notebook and exercise."""
    grades = {}  # (student, NN) -> {exercise: record}
    answers = {}
    errors = [r for r in records if "setup_error" in r or "worker_error" in r]
    by_spec = {s["id"]: s for s in specs}
    for r in records:
        if "exercise" in r:
            grades.setdefault((r["student"], r["notebook"][:2]), {})[r["exercise"]] = r
        elif "answers" in r:
            answers[(r["student"], r["notebook"][:2])] = r
    for r in errors:  # every student of a failed worker gets the reason, not a silent zero
        spec = by_spec.get(r.get("spec"))
        if spec is None:
            continue
        reason = "GRADER ERROR: " + (r.get("setup_error") or r.get("worker_error"))[:300]
        for student, _ in spec["students"]:
            for ex in plans[spec["notebook"]].exercises:
                grades.setdefault((student, spec["notebook"]), {}).setdefault(ex.name, _absent(ex, hidden, reason, "grader error"))
    for student, nn in missing_records:
        for ex in plans[nn].exercises:
            grades.setdefault((student, nn), {})[ex.name] = _absent(ex, hidden, "notebook not submitted", "missing")
    return {"students": students, "notebooks": {nn: {"stem": p.stem, "exercises": [
        {"name": ex.name, "functions": ex.functions, "max": sum(w for _, w in ex.items(hidden)),
         "items": ex.items(hidden)} for ex in p.exercises], "manual": [(g, pts) for _, g, pts, _ in p.manual],
        "questions": [src.count(MD_BEGIN_TEXT) for _, _, _, src in p.manual],
        "hidden": {ex.name: len(ex.hidden) if hidden else 0 for ex in p.exercises},
        "problems": p.problems} for nn, p in plans.items()},
        "grades": {f"{s}|{nn}": v for (s, nn), v in grades.items()},
        "answers": {f"{s}|{nn}": v for (s, nn), v in answers.items()},
        "errors": [r.get("setup_error") or r.get("worker_error") for r in errors]}


def _absent(ex: Exercise, hidden: bool, reason: str, status: str) -> dict:
    items = [{"item": i, "points": 0.0, "max": w, "status": status, "reason": reason, "seconds": None}
             for i, w in ex.items(hidden)]
    return {"exercise": ex.name, "functions": ex.functions, "points": 0.0,
            "max": sum(w for _, w in ex.items(hidden)), "items": items, "seconds": 0.0, "output": "",
            "output_bytes": 0, "grader_errors": []}


# ================================================================ reports

def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _answered(a: dict, nb: dict) -> int:
    """Questions answered: the solution's regions, less the stubs left in the student's cells."""
    return sum(max(0, q - x["unanswered"]) for q, x in zip(nb["questions"], a["answers"]))


def write_reports(data: dict, out: Path):
    out = Path(out)
    notebooks, students = data["notebooks"], data["students"]
    columns = [(nn, ex["name"], ex["max"]) for nn, nb in notebooks.items() for ex in nb["exercises"]]

    def record(s: str, nn: str, name: str):
        return data["grades"].get(f"{s}|{nn}", {}).get(name)

    # grades.csv: one row per student, the maxima first
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student"] + [f"{nn}:{name}" for nn, name, _ in columns]
                   + [f"{nn}:total" for nn in notebooks] + [f"{nn}:written answered" for nn in notebooks]
                   + ["total"])
        w.writerow(["(maximum)"] + [_fmt(m) for _, _, m in columns]
                   + [_fmt(sum(e["max"] for e in nb["exercises"])) for nb in notebooks.values()]
                   + [_fmt(sum(nb["questions"])) for nb in notebooks.values()]
                   + [_fmt(sum(m for _, _, m in columns))])
        for s in students:
            pts = [record(s, nn, name) for nn, name, _ in columns]
            totals = [sum((record(s, nn, e["name"]) or {}).get("points", 0) for e in nb["exercises"])
                      for nn, nb in notebooks.items()]
            written = []
            for nn, nb in notebooks.items():
                a = data["answers"].get(f"{s}|{nn}")
                written.append("" if a is None else _fmt(_answered(a, nb)))
            w.writerow([s] + [_fmt(r["points"]) if r else "" for r in pts] + [_fmt(t) for t in totals]
                       + written + [_fmt(sum(totals))])
    # details.csv: one row per check or hidden test
    with open(out / "details.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "notebook", "exercise", "item", "points", "max", "status", "reason", "seconds"])
        for s in students:
            for nn, name, _ in columns:
                r = record(s, nn, name)
                for it in (r or {}).get("items", []):
                    w.writerow([s, nn, name, it["item"], _fmt(it["points"]), _fmt(it["max"]), it["status"],
                                it["reason"], "" if it["seconds"] is None else it["seconds"]])
    # grades.md
    lines = ["# Grades", "", f"{len(students)} students, graded in {data.get('seconds', 0):.0f} s "
             f"(limits per exercise: {data.get('timeout', 0):g} s, {data.get('memory')} MB). "
             "Points: one per self-check cell (taken from the solution notebook) and one per hidden "
             "test. Written answers are in `answers.md`, for a person to grade.", ""]
    for e in data.get("errors", []):
        lines.append(f"**GRADER ERROR**: {_md(e)[:500]}")
    for wmsg in data.get("warnings", []):
        lines.append(f"- warning: {_md(wmsg)}")
    lines += ["", "## Totals", "", "| student | " + " | ".join(f"{nn}" for nn in notebooks) + " | total |",
              "|---|" + "---:|" * (len(notebooks) + 1)]
    for s in students:
        totals = [sum((record(s, nn, e["name"]) or {}).get("points", 0) for e in nb["exercises"])
                  for nn, nb in notebooks.items()]
        lines.append(f"| {_md(s)} | " + " | ".join(_fmt(t) for t in totals) + f" | {_fmt(sum(totals))} |")
    lines.append("| *maximum* | " + " | ".join(_fmt(sum(e["max"] for e in nb["exercises"])) for nb in notebooks.values())
                 + f" | {_fmt(sum(m for _, _, m in columns))} |")
    for nn, nb in notebooks.items():
        exs = nb["exercises"]
        lines += ["", f"## {nb['stem']}", "", "| student | " + " | ".join(f"{e['name']} (/{_fmt(e['max'])})" for e in exs)
                  + " | total | written answered |", "|---|" + "---:|" * (len(exs) + 2)]
        for s in students:
            cells = []
            for e in exs:
                r = record(s, nn, e["name"])
                cells.append("" if r is None else _fmt(r["points"]))
            a = data["answers"].get(f"{s}|{nn}")
            written = "" if a is None else f"{_fmt(_answered(a, nb))}/{_fmt(sum(nb['questions']))}"
            total = sum((record(s, nn, e["name"]) or {}).get("points", 0) for e in exs)
            lines.append(f"| {_md(s)} | " + " | ".join(cells) + f" | {_fmt(total)} | {written} |")
        counts = ", ".join(f"`{e['name']}` {n}" for e in exs for n in [nb.get("hidden", {}).get(e["name"], 0)])
        lines.append(f"\nHidden tests per exercise: {counts}. A hidden test skipped (an optional package "
                     "missing on the grading machine) counts in the maximum and is listed below: install "
                     "the package and grade again.")
        for prob in nb.get("problems", []):
            lines.append(f"\n- grading note: {_md(prob)}")
    lines += ["", "## Why points were lost", ""]
    for s in students:
        lost = []
        for nn, name, _ in columns:
            r = record(s, nn, name)
            not_run = 0
            for it in (r or {}).get("items", []):
                if it["status"] == "not run":
                    not_run += 1
                elif it["status"] != "pass":
                    lost.append(f"  - {nn} `{name}` {it['item'].replace(HIDDEN_PREFIX, 'hidden ')}: "
                                f"{it['status']}: {_md(it['reason'])}")
            if not_run:
                lost.append(f"  - {nn} `{name}`: {not_run} more test(s) not run (the process had stopped)")
            if r and r.get("output_bytes", 0) > 2 * KEEP_OUTPUT:
                lost.append(f"  - {nn} `{name}`: printed {r['output_bytes']:,} bytes (truncated in details.json)")
        if lost:
            lines += [f"- **{_md(s)}**"] + lost
    (out / "grades.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # answers.md
    lines = ["# Written answers", "", "For a person to read and grade (each heading gives the points "
             "of its cell, from its nbgrader metadata).", ""]
    for nn, nb in notebooks.items():
        for k, (grade_id, pts) in enumerate(nb["manual"]):
            lines += [f"## {nb['stem']}: {grade_id} ({_fmt(pts)} points)", ""]
            for s in students:
                a = data["answers"].get(f"{s}|{nn}")
                if a is None:
                    lines += [f"### {s}", "", "*(notebook not submitted or not readable)*", ""]
                    continue
                ans = next((x for x in a["answers"] if x["answer"] == grade_id), None)
                if ans is None or not ans["found"]:
                    lines += [f"### {s}", "", "*(answer cell not found)*", ""]
                    continue
                note = f" — {ans['unanswered']} question(s) unanswered" if ans["unanswered"] else ""
                lines += [f"### {s}{note}", ""] + ["> " + ln for ln in ans["text"].splitlines()] + [""]
    (out / "answers.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "details.json").write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")


def main_from_args(args, root: Path | None = None) -> int:
    root = Path(root or ROOT)
    data = grade(args.submissions, args.out, solutions=args.solutions or root / "solutions",
                 tests=args.tests or root / "tests", notebooks=args.notebooks, timeout=args.timeout,
                 memory=args.memory or None, jobs=args.jobs, hidden=not args.no_hidden,
                 quick=getattr(args, "quick", False), sandbox=not getattr(args, "unsandboxed", False))
    return 1 if data["errors"] else 0


def _worker_main(argv) -> int:
    spec = json.loads(Path(argv[argv.index("--worker") + 1]).read_text())
    return worker(spec)


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
