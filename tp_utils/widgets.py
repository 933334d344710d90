"""Interactive explorers (ipywidgets) that also show their default view when run headless.

The view is an image displayed with a ``display_id``: the first view is a normal
cell output (so it is saved in the notebook and rendered by nbval / nbconvert, and shown as a
static picture wherever widgets cannot render: GitHub, a Colab without its custom widget manager,
an email), and each change of a control replaces it in place. In Colab the explorer enables the
custom widget manager itself; without ipywidgets it shows the default view only.
"""
from __future__ import annotations

import io
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def explorer(draw: Callable[..., "plt.Figure"], controls: Mapping[str, Sequence],
             defaults: Mapping | None = None):
    """Show ``draw(**values)`` with one control per keyword; returns the controls (an
    :class:`Explorer`, which displays as nothing: the controls show once).

    ``controls`` maps a keyword to its choices: a list of values gives a dropdown,
    a ``range`` gives an integer slider. The default view uses ``defaults`` where
    given, else the first choice of each control.
    """
    defaults = dict(defaults or {})
    from IPython.display import Image, display

    from .colab import enable_widgets

    enable_widgets()  # Colab renders ipywidgets only with its custom widget manager
    try:
        import ipywidgets as W
    except ImportError:  # no widgets here: the default view as a picture, and one line saying so
        print("(ipywidgets is not installed: the explorer shows its default view only)")
        display(Image(_png(draw(**{k: defaults.get(k, list(c)[0]) for k, c in controls.items()}))))
        return None

    widgets = {}
    for key, choices in controls.items():
        if isinstance(choices, range):
            widgets[key] = W.IntSlider(value=defaults.get(key, choices.start), min=choices.start, max=choices.stop - 1,
                                       step=choices.step, description=key, continuous_update=False)
        else:
            widgets[key] = W.Dropdown(options=list(choices), value=defaults.get(key, list(choices)[0]),
                                      description=key)

    def render():
        return Image(_png(draw(**{k: w.value for k, w in widgets.items()})))

    box = W.HBox(list(widgets.values()))
    display(box)
    handle = display(render(), display_id=True)

    def update(_change):
        handle.update(render())

    for w in widgets.values():
        w.observe(update, names="value")
    return Explorer(box)


class Explorer:
    """What :func:`explorer` returns: its controls (``.box``, ``.children``). Displays as
    nothing, so that an explorer on a cell's last line does not show its controls a second time
    as the cell's result."""

    def __init__(self, box):
        self.box, self.children = box, box.children

    def _ipython_display_(self):
        pass
