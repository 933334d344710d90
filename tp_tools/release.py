"""``tp release OUT``: the copy of the course that students get.

It holds ``notebooks/`` (the student notebooks), the helper package ``tp_utils`` with the data the
notebooks read (``tp_utils/data/``, package data), the licence, the conda environment, a ``pyproject.toml`` that installs
``tp_utils`` only and a README for students. It leaves out ``solutions/``, ``tests/`` (hidden tests,
mutation and attack catalogues), ``benchmarks/``, ``scripts/``, the instructor tooling
(``tp_tools``), ``CONTRIBUTING.md`` and nbgrader's configuration.

:func:`leaks` scans every text file of a release for every solution region of ``solutions/``: a
region of four lines or more counts as found when at least four of its lines, and half of them,
stand in that order in one file (one cell of a notebook) with identifiers, strings and numbers renamed away (the shapes of
:func:`tp_tools.student.shipped_answers`); a shorter region when all its lines stand, verbatim, in
that order in one file (cell).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

KEEP = ["notebooks", "tp_utils", "LICENSE", "environment.yml"]
TEXT = {".py", ".ipynb", ".md", ".txt", ".toml", ".cfg", ".json", ".yml", ".yaml", ".csv", ".sh"}

README = """# Visualizing and Understanding CNNs: the student copy

Thirteen Jupyter notebooks (`notebooks/00_*.ipynb` to `12_*.ipynb`) and their helper package
`tp_utils`. Each notebook has exercises: a cell with a function to write (it raises
`NotImplementedError("not written yet: ...")` until you do), followed by a self-check cell that
tells you whether your answer is right.

## Install

```bash
python -m venv .venv && . .venv/bin/activate      # or: conda env create -f environment.yml
pip install -e .                                  # tp_utils, PyTorch, Jupyter, ...
tp fetch                                          # the model and the photos (once, online)
tp demo                                           # checks the install: classifies the sample photos
jupyter lab notebooks/
```

Set `TP_DATA_DIR` to a folder that already holds the assets (a classroom share) to skip the download.
A later notebook that uses an earlier answer (`tp.answers.earlier(...)`) reads it from your own
earlier notebook in the same folder: finish that exercise first.

Hand in the notebooks as your teacher says (one file per notebook, names unchanged).
"""


def _pyproject(root: Path) -> str:
    """The course's pyproject.toml, for tp_utils alone (no instructor package, no dev extras)."""
    drop = {"[project.optional-dependencies]", "[tool.pytest.ini_options]", '[project.entry-points."tp.commands"]'}
    out, skipping = [], False
    for line in (root / "pyproject.toml").read_text(encoding="utf-8").splitlines():
        if re.match(r'^\[[\w."-]+\]\s*$', line):
            skipping = line.strip() in drop
        if not skipping:
            out.append(line)
    text = re.sub(r'packages = \[[^\]]*\]', 'packages = ["tp_utils"]', "\n".join(out) + "\n")
    try:
        import tomllib

        tomllib.loads(text)  # still valid
    except ImportError:  # Python < 3.11
        pass
    return text


def build(root: Path, out: Path) -> list[Path]:
    """Write the release of the checkout ``root`` into ``out`` (which must not exist or be empty)."""
    root, out = Path(root), Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")
    for name in KEEP:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, out / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, out / name)
    (out / "pyproject.toml").write_text(_pyproject(root), encoding="utf-8")
    (out / "README.md").write_text(README, encoding="utf-8")
    return sorted(p for p in out.rglob("*") if p.is_file())


def _units(path: Path) -> list[list[str]]:
    """The pieces of a file a region is looked for in: each cell of a notebook, else the whole file."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".ipynb":
        import nbformat

        try:
            nb = nbformat.reads(text, as_version=4)
            return [c.source.splitlines() for c in nb.cells]
        except Exception:  # noqa: BLE001 - not a notebook after all: its raw lines
            pass
    return [text.splitlines()]


def _in_order(needles: list[str], hay: list[str]) -> bool:
    it = iter(hay)
    return all(any(n == h for h in it) for n in needles)


def leaks(solutions: Path, release: Path) -> list[str]:
    """Solution regions found in the release's files (see the module's docstring)."""
    from tp_tools.student import MIN_SHARED_LINES, _common, _shapes, solution_regions

    files = [p for p in sorted(Path(release).rglob("*")) if p.is_file() and p.suffix in TEXT]
    units = {p: _units(p) for p in files}
    shapes = {p: [_shapes(u) for u in us] for p, us in units.items()}
    stripped = {p: [[ln.strip() for ln in u if ln.strip()] for u in us] for p, us in units.items()}
    problems = []
    for sol, i, region in solution_regions(solutions):
        lines = [ln.strip() for ln in region if ln.strip() and not ln.strip().startswith("#")]
        region_shapes = _shapes(region)
        for p in files:
            if len(region_shapes) >= MIN_SHARED_LINES:
                hit = any(shared >= MIN_SHARED_LINES and shared >= len(region_shapes) / 2
                          for shared in (_common(region_shapes, u) for u in shapes[p]))
            else:
                hit = bool(lines) and any(_in_order(lines, u) for u in stripped[p])
            if hit:
                problems.append(f"{p.relative_to(release)} holds the solution region of "
                                f"solutions/{sol.name} cell {i}")
    return problems


def forbidden(release: Path) -> list[str]:
    """What must not be in a release, if it is there."""
    release = Path(release)
    bad = [n for n in ("solutions", "tests", "tp_tools", "benchmarks", "scripts", "nbgrader_config.py",
                       "CONTRIBUTING.md") if (release / n).exists()]
    bad += [str(p.relative_to(release)) for p in release.rglob("*") if p.name.startswith(("test_", "nb"))
            and p.suffix == ".py"]
    return bad


def main_from_args(args, root: Path) -> int:
    out = Path(args.out)
    files = build(root, out)
    size = sum(p.stat().st_size for p in files)
    print(f"wrote {len(files)} files ({size / 1e6:.1f} MB) into {out}")
    problems = forbidden(out) + leaks(root / "solutions", out)
    for prob in problems:
        print(f"problem: {prob}")
    print(f"{len(problems)} problem(s): " + ("no solution line, no hidden test" if not problems else "do not hand it out"))
    return 1 if problems else 0
