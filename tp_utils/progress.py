"""Progress bars for long loops: tqdm.auto, silent when ``$TQDM_DISABLE`` is set (CI, headless runs).

tqdm's own ``TQDM_DISABLE`` does not reach its notebook widget, which always passes
``disable=False``; this wrapper passes the variable on explicitly.
"""
from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress(iterable=None, **kwargs):
    """``tqdm.auto.tqdm(iterable, **kwargs)``, disabled when ``$TQDM_DISABLE`` is 1/true/yes."""
    # read the variable at each call: tqdm itself reads it once, when it is imported
    quiet = os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")
    kwargs["disable"] = True if quiet else kwargs.get("disable", False)
    return tqdm(iterable, **kwargs)
