"""Helpers for the course "Visualizing and Understanding CNNs".

Everything is imported lazily (PEP 562): ``import tp_utils`` is instant and
``tp --help`` does not load PyTorch; ``tp_utils.load_model`` imports
:mod:`tp_utils.models` (and torch) on first use. ``CONTRIBUTING.md`` says
which module holds what.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "assets": ["AssetError", "cache_dir", "data_dir", "fetch", "fetch_all"],
    "device": ["get_device", "seed_everything"],
    "images": ["IMAGENET_MEAN", "IMAGENET_STD", "PAINTINGS", "CONTENT_PHOTOS", "SAMPLE_IMAGES",
               "clamp_normalized", "crop_bank", "deprocess", "load_image", "preprocess",
               "resize_crop", "sample_images"],
    "imagenet": ["labelled_set"],
    "labels": ["class_index", "class_name", "imagenet_classes"],
    "models": ["WeightsUnavailableError", "capture_activations", "get_layer", "layer_names",
               "load_model"],
    "plotting": ["overlay_heatmap", "plot_topk", "show_images"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = {"answers", "assets", "checks", "colab", "conventions", "device", "digits", "efficientnet", "images", "imagenet",
               "labels", "models",
               "notebook", "optimize", "patches", "plotting", "regularizers", "sanity",
               "squeezenet", "style", "transformer_net", "widgets"}

__all__ = sorted(_WHERE) + sorted(_SUBMODULES)

# A submodule's import sets the package attribute of the same name to the module: bind the
# function `progress` now, so that `tp.progress(...)` stays the function once
# tp_utils/progress.py is imported (tqdm only: fast).
from .progress import progress  # noqa: E402


def _in_kernel() -> None:
    import sys

    if "ipykernel" in sys.modules:  # a Jupyter kernel: readable errors for unfinished exercises
        from .checks import install_hints

        install_hints()


_in_kernel()


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'tp_utils' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return __all__
