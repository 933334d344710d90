"""Downloadable assets (model weights, paintings), fetched with pooch and sha256-checked.

Files are looked up in ``$TP_DATA_DIR`` when that variable is set (a classroom
share, a USB stick, ``../shared/assets`` in CI), otherwise in the user cache.
A file already there with the right hash is used without any network access.
Things the course derives from these files (a decoded state dict, say) go to
:func:`cache_dir`, never into ``$TP_DATA_DIR``, which may be read-only.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pooch

ENV_VAR = "TP_DATA_DIR"
CACHE_ENV_VAR = "TP_CACHE_DIR"

_NEURAL_STYLE = "https://raw.githubusercontent.com/jcjohnson/neural-style/master/examples/inputs/"
URLS = {
    "compressed_SqueezeNet.net": "https://raw.githubusercontent.com/songhan/"
    "SqueezeNet-Deep-Compression/master/compressed_SqueezeNet.net",
    "starry_night.jpg": _NEURAL_STYLE + "starry_night.jpg",
    "the_scream.jpg": _NEURAL_STYLE + "the_scream.jpg",
    "shipwreck.jpg": _NEURAL_STYLE + "shipwreck.jpg",
}
REGISTRY = {
    "compressed_SqueezeNet.net": "sha256:e4ab6960ae8cd81505e1c2136921201507e930966c53deaf15862a395b3a3261",
    "starry_night.jpg": "sha256:0592ab0f7b51b3ce72608a95e53880bd93971e5b48f93a0ce8dfd3cbccf3d098",
    "the_scream.jpg": "sha256:f3075cddeb974a9ee1d6418f7f33fd05185a7ac7dcb4288bd2805d499a9dcaee",
    "shipwreck.jpg": "sha256:4f7cf34e3cd4a5daaf3f421f059ca9a01aaa2a3afd7243d6670c9c8bc001a213",
}



class AssetError(RuntimeError):
    """An asset is missing and cannot be downloaded, or its content is wrong."""


def data_dir() -> Path:
    """The folder assets are read from: ``$TP_DATA_DIR`` if set, else the user cache."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path(pooch.os_cache("tp-course"))


def cache_dir() -> Path:
    """A writable folder for files the course derives from the assets (``$TP_CACHE_DIR``)."""
    path = Path(os.environ.get(CACHE_ENV_VAR) or pooch.os_cache("tp-course")) / "derived"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name: str) -> Path:
    """Return the local path of asset ``name``, downloading it if needed.

    Raises :class:`AssetError` naming the file, its URL and what to do when the
    file is absent and cannot be downloaded, or when its sha256 is wrong.
    """
    if name not in REGISTRY:
        raise AssetError(f"unknown asset {name!r}; known assets: {', '.join(REGISTRY)}")
    path = data_dir() / name
    expected = REGISTRY[name].split(":", 1)[1]
    if path.exists():
        actual = sha256(path)
        if actual != expected:
            raise AssetError(
                f"{path} is corrupted or not the expected file (sha256 {actual[:12]}..., "
                f"expected {expected[:12]}...). Delete it and run `tp fetch` to download it "
                f"again from {URLS[name]}"
            )
        return path
    try:
        store = pooch.create(path=data_dir(), base_url="", registry=REGISTRY, urls=URLS)
        return Path(store.fetch(name, progressbar=False))
    except Exception as err:  # network down, proxy, read-only folder, ...
        raise AssetError(
            f"{name} is not in {data_dir()} and could not be downloaded ({type(err).__name__}: "
            f"{err}). Either run `tp fetch` on a machine with internet access, or download "
            f"{URLS[name]} yourself and put it in {data_dir()} (or in the folder named by "
            f"${ENV_VAR})."
        ) from err


def fetch_all() -> dict[str, Path]:
    """Fetch every asset (run this before an offline class): ``{name: path}``."""
    return {name: fetch(name) for name in REGISTRY}
