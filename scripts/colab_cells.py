"""Write the Colab first cell of every solution notebook and the README's "Open in Colab" badges
from the one setting, ``[project.urls] Repository`` in pyproject.toml (see tp_utils/colab.py).

    python scripts/colab_cells.py            # write them (idempotent; executes nothing)
    python scripts/colab_cells.py --check    # exit 1 if a cell or the badges are out of date

Then run `tp generate` to copy the cells into notebooks/.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tp_utils import colab  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is stale")
    args = p.parse_args(argv)
    repository, version = colab.settings(ROOT)
    requirement = colab.requirement(repository, version)
    stale = []
    solutions = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    for path in solutions:
        nb = nbformat.read(path, as_version=4)
        if colab.ensure_first_cell(nb, requirement, version):
            stale.append(path.relative_to(ROOT))
            if not args.check:
                nbformat.write(nb, path)
    readme = ROOT / "README.md"
    table = colab.badge_table(repository, version, [p.name for p in solutions])
    if args.check:
        if table not in readme.read_text(encoding="utf-8"):
            stale.append("README.md")
    elif colab.write_badges(readme, table):
        stale.append("README.md")
    for name in stale:
        print(f"{'stale' if args.check else 'wrote'} {name}")
    print(f"{len(solutions)} notebooks, {requirement}" + ("" if args.check or not stale else
                                                          "; now run `tp generate`"))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
