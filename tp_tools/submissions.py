"""Finding the submissions in a folder: one folder per student, or one file per student and notebook."""
from __future__ import annotations

import os
import re
from pathlib import Path


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
