"""Downloadable assets (model weights, paintings, photos), fetched with pooch and sha256-checked.

Files are looked up in ``$TP_DATA_DIR`` when that variable is set (a classroom
share, a USB stick, ``../shared/assets`` in CI), otherwise in the user cache.
A file already there with the right hash is used without any network access.
Things the course derives from these files (a decoded state dict, say) go to
:func:`cache_dir`, never into ``$TP_DATA_DIR``, which may be read-only.
"""
from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import pooch

ENV_VAR = "TP_DATA_DIR"
CACHE_ENV_VAR = "TP_CACHE_DIR"

_NEURAL_STYLE = "https://raw.githubusercontent.com/jcjohnson/neural-style/master/examples/inputs/"
_IMAGENET_SAMPLES = "https://raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/master/"
IMAGENET_FOLDER = "imagenet-samples"
IMAGENET_MANIFEST = Path(__file__).resolve().parent / "registry" / "imagenet_samples.csv"

URLS = {
    "compressed_SqueezeNet.net": "https://raw.githubusercontent.com/songhan/"
    "SqueezeNet-Deep-Compression/master/compressed_SqueezeNet.net",
}
REGISTRY = {
    "compressed_SqueezeNet.net": "sha256:e4ab6960ae8cd81505e1c2136921201507e930966c53deaf15862a395b3a3261",
    # public-domain paintings (van Gogh, Munch, Turner)
    "starry_night.jpg": "sha256:0592ab0f7b51b3ce72608a95e53880bd93971e5b48f93a0ce8dfd3cbccf3d098",
    "the_scream.jpg": "sha256:f3075cddeb974a9ee1d6418f7f33fd05185a7ac7dcb4288bd2805d499a9dcaee",
    "shipwreck.jpg": "sha256:4f7cf34e3cd4a5daaf3f421f059ca9a01aaa2a3afd7243d6670c9c8bc001a213",
    # content photographs for style transfer (downloaded for the user, never redistributed)
    "tubingen.jpg": "sha256:e67d1869f01fd805385c681a80d9ebcf0f70ea4a5fe6127f0606bb1c7f4bf506",
    "golden_gate.jpg": "sha256:f8476ac216e0d409af2e52bf82ad2cdc3433e23d7895e6f9b2048fc014ed57ba",
    "hoovertowernight.jpg": "sha256:8852910ed1594af535c3dee012b020b9ee4045798645885d20a9445d12e98093",
}
for _name in REGISTRY:
    URLS.setdefault(_name, _NEURAL_STYLE + _name)


def imagenet_manifest() -> list[dict]:
    """The labelled ImageNet photos: one dict per photo with ``file``, ``class_index``,
    ``class_name``, ``group`` and ``sha256`` (the registry shipped with the package)."""
    with open(IMAGENET_MANIFEST, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["class_index"] = int(row["class_index"])
    return rows


# The 198 photos live in their own sub-folder, fetched only when a notebook asks for them.
for _row in imagenet_manifest():
    REGISTRY[f"{IMAGENET_FOLDER}/{_row['file']}"] = "sha256:" + _row["sha256"]
    URLS[f"{IMAGENET_FOLDER}/{_row['file']}"] = _IMAGENET_SAMPLES + _row["file"]

# What `tp fetch` can fetch, by group.
GROUPS = {
    "model": ["compressed_SqueezeNet.net"],
    "paintings": ["starry_night.jpg", "the_scream.jpg", "shipwreck.jpg"],
    "photos": ["tubingen.jpg", "golden_gate.jpg", "hoovertowernight.jpg"],
    "imagenet": [name for name in REGISTRY if name.startswith(IMAGENET_FOLDER + "/")],
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
        known = [n for n in REGISTRY if not n.startswith(IMAGENET_FOLDER + "/")]
        raise AssetError(f"unknown asset {name!r}; known assets: {', '.join(known)} "
                         f"and the photos of {IMAGENET_FOLDER}/")
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


def fetch_all(groups=None) -> dict[str, Path]:
    """Fetch every asset of ``groups`` (default: all of :data:`GROUPS`), e.g. before an
    offline class: ``{name: path}``."""
    groups = list(GROUPS) if groups is None else list(groups)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise AssetError(f"unknown asset group(s) {unknown}; choose among {', '.join(GROUPS)}")
    return {name: fetch(name) for g in groups for name in GROUPS[g]}
