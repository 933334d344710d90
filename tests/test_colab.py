"""The Colab first cell and the badges (tp_utils/colab.py, scripts/colab_cells.py), and the
explorer's static picture where widgets cannot render. Cheap: nothing is installed here (the
install itself, with a fake google.colab, is tests/test_install.py)."""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from tp_utils import colab

ROOT = Path(__file__).resolve().parents[1]


def solution(nn: str):
    (path,) = (ROOT / "solutions").glob(f"{nn}_*.ipynb")
    return nbformat.read(path, as_version=4)


def test_first_cell_does_nothing_outside_colab(tmp_path):
    source = colab.cell_source("tp-utils @ git+https://example.invalid/x@v0", "0", ["model"])
    code = source + "\nprint(sorted(m for m in sys.modules if m.startswith(('tp_utils', 'torch', 'subprocess'))))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert proc.stdout.strip() == "[]" and proc.stderr == ""  # no output, no install, no import


def test_first_cell_is_inserted_once_and_rewritten_in_place():
    nb = solution("06")
    nb.cells = [c for c in nb.cells if c.get("id") != colab.CELL_ID]  # as before scripts/colab_cells.py
    n = len(nb.cells)
    req = colab.requirement("https://github.com/a/b/", "1.2")
    assert req == "tp-utils @ git+https://github.com/a/b@v1.2"
    assert colab.ensure_first_cell(nb, req, "1.2") and len(nb.cells) == n + 1
    assert nb.cells[0].id == colab.CELL_ID and "setup('1.2', ['model', 'imagenet'])" in nb.cells[0].source
    assert not colab.ensure_first_cell(nb, req, "1.2")  # idempotent
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="x")]
    assert colab.ensure_first_cell(nb, req, "1.2") and nb.cells[0].outputs == []
    nb.cells.insert(0, nb.cells.pop(0).copy())
    nb.cells.append(nb.cells.pop(0))  # moved to the end: back to the top, no duplicate
    assert colab.ensure_first_cell(nb, req, "1.3") and len(nb.cells) == n + 1
    assert "@v1.2" in nb.cells[0].source and "setup('1.3'" in nb.cells[0].source
    assert sum(c.get("id") == colab.CELL_ID for c in nb.cells) == 1


@pytest.mark.parametrize("nn, groups", [("00", ["model"]), ("06", ["model", "imagenet"]),
                                        ("11", ["model", "paintings", "photos"]),
                                        ("12", ["model", "paintings", "photos", "imagenet"])])
def test_asset_groups_follow_what_the_notebook_uses(nn, groups):
    assert colab.asset_groups(solution(nn)) == groups


def test_badges_come_from_the_one_setting(tmp_path):
    repository, version = colab.settings(ROOT)
    assert repository.startswith("https://github.com/") and version == __import__("tp_utils").__version__
    names = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    table = colab.badge_table("https://github.com/klass/fork", "9.9", names)
    for name in names:
        assert f"colab.research.google.com/github/klass/fork/blob/v9.9/notebooks/{name})" in table
    assert "mybinder.org/v2/gh/klass/fork/v9.9" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"a\n{colab.BEGIN}\nold\n{colab.END}\nb\n")
    assert colab.write_badges(readme, table) and not colab.write_badges(readme, table)
    assert readme.read_text() == f"a\n{table}\nb\n"
    assert colab.badge_table(repository, version, names) in (ROOT / "README.md").read_text()


def test_setup_enables_the_widget_manager_and_fetches(monkeypatch, capsys):
    calls = []
    google = types.ModuleType("google")
    google.colab = types.ModuleType("google.colab")
    google.colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append(1))
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google.colab)
    assert colab.in_colab()
    colab.setup(__import__("tp_utils").__version__, ["model"])
    out = capsys.readouterr().out.splitlines()
    assert calls == [1] and out[0].startswith("course ") and "1 asset file(s) of model" in out[0]
    assert ("GPU runtime on" in out[-1]) == __import__("torch").cuda.is_available()
    colab.setup("0.0.0", ["model"])
    assert "Restart session" in capsys.readouterr().out


def test_explorer_shows_its_default_view_as_a_picture_without_widgets(monkeypatch, capsys):
    import IPython.display
    import matplotlib.pyplot as plt

    from tp_utils import widgets

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets fails

    def draw(channel, layer):
        fig, ax = plt.subplots()
        ax.set_title(f"{layer} {channel}")
        return fig

    assert widgets.explorer(draw, {"channel": range(3, 9), "layer": ["a", "b"]}, {"layer": "b"}) is None
    assert len(shown) == 1 and isinstance(shown[0], IPython.display.Image)
    assert shown[0].data[:8] == b"\x89PNG\r\n\x1a\n"
    assert shown[0].data == widgets._png(draw(channel=3, layer="b"))  # the default view
    assert "default view only" in capsys.readouterr().out


def test_every_notebook_starts_with_the_colab_cell_and_the_badges_are_current():
    """`python scripts/colab_cells.py --check`: nothing to rewrite (run it without --check, then
    `tp generate`, after adding a notebook or merging notebook edits)."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "colab_cells.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    for folder in ("solutions", "notebooks"):
        for path in sorted((ROOT / folder).glob("[0-9][0-9]_*.ipynb")):
            first = nbformat.read(path, as_version=4).cells[0]
            assert first.metadata.get("tags") == [colab.CELL_TAG] and "google.colab" in first.source, path
            assert first.outputs == [], path
