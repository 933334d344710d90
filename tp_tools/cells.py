"""Cells of a notebook as code: a cell's source without magics, the names it uses and binds, the
dependency slice the self-checks need, cells made of definitions only."""
from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

from tp_utils.conventions import DEF, strip_magics


_code = strip_magics  # a cell's source without IPython magics and shell escapes


def _compile(source, filename: str, text: str | None = None):
    """compile(), with the source registered so that tracebacks show its lines."""
    import linecache

    text = source if isinstance(source, str) else text
    if text is not None:
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    return compile(source, filename, "exec")


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
        return set(DEF.findall(source))
