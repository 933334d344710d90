"""Assets: TP_DATA_DIR, hashes, clear errors offline (COURSE.md sections 3 and 7)."""
import shutil

import pytest

import tp_utils as tp
from tp_utils import assets


def test_every_asset_is_found_with_its_hash():
    paths = tp.fetch_all()
    assert set(paths) == set(assets.REGISTRY)
    for name, path in paths.items():
        assert path.parent == tp.data_dir()
        assert "sha256:" + assets.sha256(path) == assets.REGISTRY[name]


def test_tampered_file_is_refused(tmp_path, monkeypatch):
    src = tp.fetch("the_scream.jpg")
    bad = tmp_path / "the_scream.jpg"
    data = bytearray(src.read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setenv("TP_DATA_DIR", str(tmp_path))
    with pytest.raises(tp.AssetError) as err:
        tp.fetch("the_scream.jpg")
    message = str(err.value)
    assert "the_scream.jpg" in message and "tp fetch" in message and assets.URLS["the_scream.jpg"] in message


def test_missing_file_offline_says_what_to_do(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("TP_DATA_DIR", str(tmp_path))
    with pytest.raises(tp.AssetError) as err:
        tp.load_model()
    message = str(err.value)
    for part in ("compressed_SqueezeNet.net", assets.URLS["compressed_SqueezeNet.net"], str(tmp_path), "tp fetch"):
        assert part in message


def test_file_present_is_used_without_network(tmp_path, monkeypatch, offline):
    shutil.copy(tp.fetch("starry_night.jpg"), tmp_path / "starry_night.jpg")
    monkeypatch.setenv("TP_DATA_DIR", str(tmp_path))
    assert tp.fetch("starry_night.jpg") == tmp_path / "starry_night.jpg"
    assert tp.load_image("starry_night").mode == "RGB"


def test_unknown_asset():
    with pytest.raises(tp.AssetError, match="known assets"):
        tp.fetch("mona_lisa.jpg")
