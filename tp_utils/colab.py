"""Google Colab: the first cell of every notebook, and what it does there.

Every notebook starts with a cell that does nothing outside Colab. In Colab it installs the course
at the notebook's own version (``pip install "tp-utils @ git+REPOSITORY@vVERSION"``), then calls
:func:`setup`: it fetches the assets the notebook needs, enables Colab's custom widget manager (the
explorers' sliders are third-party widgets) and says whether a GPU runtime is on.

The repository's address is ONE setting, ``[project.urls] Repository`` in ``pyproject.toml``
(the course is forked per class). ``python scripts/colab_cells.py`` writes the first cell of every
solution notebook and the README's "Open in Colab" badges from it; ``tp generate`` then copies the
cells into the student notebooks. Nothing here imports torch until :func:`setup` runs.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

CELL_ID = "colab-setup"
CELL_TAG = "colab"
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BEGIN, END = "<!-- colab-badges: written by scripts/colab_cells.py -->", "<!-- /colab-badges -->"

# which asset groups a notebook needs, from what its code names (the model: always)
_NEEDS = {
    "paintings": re.compile(r"PAINTINGS|starry_night|the_scream|shipwreck"),
    "photos": re.compile(r"CONTENT_PHOTOS|tubingen|golden_gate|hoovertowernight"),
    "imagenet": re.compile(r"labelled_set"),
}


def in_colab() -> bool:
    """True inside a Colab runtime (its kernel imports ``google.colab`` at start)."""
    return "google.colab" in sys.modules


def asset_groups(nb) -> list[str]:
    """The asset groups notebook ``nb`` uses (``tp fetch --only`` groups), in a fixed order.
    The door for earlier answers runs the earlier notebooks' export cells: their needs count too
    only if those cells name an asset, which none does."""
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code" and c.get("id") != CELL_ID)
    return ["model"] + [group for group, pattern in _NEEDS.items() if pattern.search(code)]


def requirement(repository: str, version: str) -> str:
    """What pip installs in Colab: the course at the tag of this version."""
    return f"tp-utils @ git+{repository.rstrip('/')}@v{version}"


def cell_source(requirement: str, version: str, groups: list[str]) -> str:
    """The first cell of a notebook: nothing outside Colab (no output); in Colab, the install."""
    return (
        "# Google Colab only (elsewhere this cell does nothing): install the course at this notebook's\n"
        "# version, fetch its assets, enable the explorers' widgets. Written by scripts/colab_cells.py.\n"
        "import sys\n"
        "if \"google.colab\" in sys.modules:\n"
        "    import subprocess\n"
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                    {requirement!r}], check=True)\n"
        "    import tp_utils.colab\n"
        f"    tp_utils.colab.setup({version!r}, {groups!r})"
    )


def setup(version: str, groups: list[str]) -> None:
    """In Colab, after the install: check the version, fetch ``groups``, enable the custom widget
    manager and say whether a GPU runtime is on (a few lines of output)."""
    import tp_utils

    from . import assets

    if tp_utils.__version__ != version:
        print(f"tp_utils {tp_utils.__version__} is loaded, this notebook is for {version}: "
              "Runtime > Restart session, then run this cell again")
    paths = assets.fetch_all(groups)
    print(f"course {tp_utils.__version__} installed; {len(paths)} asset file(s) of "
          f"{', '.join(groups)} in {assets.data_dir()}")
    enable_widgets()
    import torch

    if torch.cuda.is_available():
        print(f"GPU runtime on: {torch.cuda.get_device_name(0)}")
    else:
        print("no GPU runtime (every notebook runs on the CPU; Runtime > Change runtime type > "
              "T4 GPU makes notebooks 07-12 faster)")


def enable_widgets() -> bool:
    """Enable Colab's custom widget manager (needed for ipywidgets' sliders); True if done."""
    if not in_colab():
        return False
    try:
        from google.colab import output
        output.enable_custom_widget_manager()
    except Exception:  # an older or newer Colab: the explorers still show their default picture
        return False
    return True


# ---- writing the cells and the badges (instructors: scripts/colab_cells.py) ----------------

def settings(root: Path) -> tuple[str, str]:
    """``(repository, version)`` from ``root/pyproject.toml``."""
    text = (Path(root) / "pyproject.toml").read_text(encoding="utf-8")
    version = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    repository = re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.M)
    if not version or not repository:
        raise ValueError(f"{root}/pyproject.toml needs [project] version and [project.urls] Repository")
    return repository.group(1), version.group(1)


def ensure_first_cell(nb, requirement: str, version: str) -> bool:
    """Make ``nb``'s first cell the Colab cell (inserted, or rewritten in place); True if changed.
    Idempotent; nothing is executed (the cell has no output outside Colab)."""
    import nbformat

    source = cell_source(requirement, version, asset_groups(nb))
    cells = [c for c in nb.cells if c.get("id") == CELL_ID or CELL_TAG in c.get("metadata", {}).get("tags", [])]
    if cells and nb.cells[0] is cells[0] and len(cells) == 1:
        cell = cells[0]
        if cell.source == source and cell.outputs == [] and cell.get("execution_count") is not None:
            return False
        cell.source, cell.outputs = source, []
        cell.execution_count = cell.get("execution_count") or 1
        return True
    nb.cells = [c for c in nb.cells if not any(c is d for d in cells)]
    # executed (a solution's cells all are; outside Colab it prints nothing), without running it
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [CELL_TAG]}, execution_count=1)
    cell["id"] = CELL_ID
    nb.cells.insert(0, cell)
    return True


def badge_table(repository: str, version: str, notebooks: list[str]) -> str:
    """The README's badges, at this version's tag: Binder (the whole course in JupyterLab) and one
    "Open in Colab" per student notebook."""
    path = re.sub(r"^https?://github\.com/", "", repository.rstrip("/"))
    binder = f"https://mybinder.org/v2/gh/{path}/v{version}?urlpath=lab/tree/notebooks"
    rows = [f"Binder, every notebook in JupyterLab: [![Binder](https://mybinder.org/badge_logo.svg)]({binder})",
            "", "| notebook | Colab |", "|---|---|"]
    for name in notebooks:
        url = f"https://colab.research.google.com/github/{path}/blob/v{version}/notebooks/{name}"
        rows.append(f"| `{name[:-6]}` | [![Open In Colab]({BADGE})]({url}) |")
    return "\n".join([BEGIN, *rows, END])


def write_badges(readme: Path, table: str) -> bool:
    text = Path(readme).read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme} has no {BEGIN} ... {END} block for the badges")
    new = text[:text.index(BEGIN)] + table + text[text.index(END) + len(END):]
    if new != text:
        Path(readme).write_text(new, encoding="utf-8")
    return new != text
