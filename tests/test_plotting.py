"""Plotting helpers, the explorer widget and the progress bar."""
import matplotlib
import numpy as np
import pytest
import torch

import tp_utils as tp

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def test_show_images_grid():
    imgs = [tp.preprocess("coffee", size=64), np.random.rand(10, 12), tp.load_image("chelsea")]
    fig = tp.show_images(imgs, titles=["a", "b", "c"], ncols=2)
    axes = fig.get_axes()
    assert len(axes) == 4 and [len(ax.images) for ax in axes] == [1, 1, 1, 0]
    assert axes[0].images[0].get_array().shape == (64, 64, 3)
    assert axes[1].images[0].get_cmap().name == "gray"
    plt.close(fig)


def test_overlay_heatmap_resizes_and_rescales():
    fig, ax = plt.subplots()
    tp.overlay_heatmap(tp.preprocess("chelsea", size=64), torch.arange(16.0).view(4, 4), ax=ax)
    base, heat = ax.images
    assert heat.get_array().shape == (64, 64)
    assert heat.get_array().min() == 0 and heat.get_array().max() == pytest.approx(1.0)
    plt.close(fig)


def test_plot_topk_labels():
    fig, ax = plt.subplots()
    tp.plot_topk(torch.tensor([0.7, 0.2]), torch.tensor([285, 967]), ax=ax)
    top_down = sorted(ax.get_yticklabels(), key=lambda t: -t.get_position()[1])
    assert [t.get_text() for t in top_down] == ["Egyptian cat", "espresso"]  # most probable on top
    widths = [bar.get_width() for bar in sorted(ax.patches, key=lambda b: -b.get_y())]
    assert widths == pytest.approx([0.7, 0.2])  # each bar is its own class's probability
    plt.close(fig)
    with pytest.raises(ValueError):
        tp.plot_topk(torch.tensor([0.7, 0.2]), torch.tensor([285]))


def test_explorer_shows_default_and_updates(monkeypatch):
    import IPython.display

    shown, calls = [], []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    def fake_display(obj, display_id=None):
        shown.append(("display", obj))
        return Handle() if display_id else None

    monkeypatch.setattr(IPython.display, "display", fake_display)

    def draw(letter, n):
        calls.append((letter, n))
        fig, ax = plt.subplots()
        ax.plot([0, n])
        return fig

    box = tp.widgets.explorer(draw, {"letter": ["a", "b"], "n": range(1, 5)}, defaults={"n": 3})
    assert calls == [("a", 3)]
    assert shown[1][1].data[:4] == b"\x89PNG"
    box.children[0].value = "b"
    assert calls[-1] == ("b", 3) and shown[-1][0] == "update"
    # on a cell's last line it shows nothing more: the controls once, not again as the result
    from IPython.core.formatters import DisplayFormatter
    assert DisplayFormatter().format(box) == ({}, {})


def test_progress_is_silent_when_disabled(monkeypatch, capsys):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert list(tp.progress(range(3), desc="quiet")) == [0, 1, 2]
    assert "quiet" not in capsys.readouterr().err
    monkeypatch.delenv("TQDM_DISABLE")
    assert list(tp.progress(range(3), desc="loud")) == [0, 1, 2]
    assert "loud" in capsys.readouterr().err  # the bar is drawn when not disabled


def test_package_names_stay_what_they_are():
    import importlib

    for module in ("patches", "sanity", "optimize", "progress", "answers", "models"):
        importlib.import_module(f"tp_utils.{module}")  # importing a submodule sets a package attribute
    assert callable(tp.progress) and tp.progress.__name__ == "progress"
    assert tp.patches.patch_box(0, 0, (7, 2, 3.0), 224) == (0, 0, 7, 7)


def test_every_module_is_reachable_from_the_package():
    from pathlib import Path

    modules = {p.stem for p in Path(tp.__file__).parent.glob("*.py") if not p.stem.startswith("_")}
    not_for_notebooks = {"progress", "cli"}  # tp.progress is the function; cli is the `tp` command
    unreachable = sorted(m for m in modules - not_for_notebooks if m not in dir(tp))
    assert not unreachable, f"add these to tp_utils._SUBMODULES: {unreachable}"
