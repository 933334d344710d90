"""Assets: TP_DATA_DIR, hashes, clear errors offline (CONTRIBUTING.md sections 4 and 9)."""
import shutil

import pytest

import tp_utils as tp
from tp_utils import assets


def test_every_asset_is_found_with_its_hash():
    paths = tp.fetch_all()
    assert set(paths) == set(assets.REGISTRY)
    for name, path in paths.items():
        assert path == tp.data_dir() / name
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


# ---------------------------------------------------------------- labelled ImageNet photos

def test_registry_hashes_equal_the_manifest():
    import csv
    import os
    from pathlib import Path

    manifest = Path(os.environ["TP_DATA_DIR"]) / "imagenet-samples" / "manifest.csv"
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 198 == len(assets.GROUPS["imagenet"])
    for row in rows:
        assert assets.REGISTRY[f"imagenet-samples/{row['file']}"] == "sha256:" + row["sha256"]
        assert assets.URLS[f"imagenet-samples/{row['file']}"].endswith("/master/" + row["file"])
    ours = {r["file"]: r for r in assets.imagenet_manifest()}
    assert all(ours[r["file"]]["class_index"] == int(r["class_index"]) and
               ours[r["file"]]["class_name"] == r["class_name"] and ours[r["file"]]["group"] == r["group"]
               for r in rows)


def test_manifest_names_match_torchvision_classes():
    for row in assets.imagenet_manifest():
        assert tp.class_name(row["class_index"]) == row["class_name"]


def test_labelled_set_loads_offline(offline):
    photos = tp.labelled_set()
    assert photos.images.shape == (198, 3, 224, 224) and len(photos) == 198
    assert photos.labels == sorted(photos.labels)
    assert [tp.class_name(i) for i in photos.labels] == photos.names
    counts = {g: photos.groups.count(g) for g in tp.imagenet.GROUPS}
    assert counts["dog"] == 24 and counts["feline"] == 13 and sum(counts.values()) == 198


def test_labelled_set_groups_and_subsets():
    dogs = tp.labelled_set(groups="dog", per_group=3, size=64)
    assert dogs.images.shape == (3, 3, 64, 64) and set(dogs.groups) == {"dog"}
    two = tp.labelled_set(groups=["fish", "food"], per_group=2, tensors=False)
    assert two.groups == ["fish", "fish", "food", "food"] and two.images[0].mode == "RGB"
    sub = two.subset([3, 0])
    assert sub.names == [two.names[3], two.names[0]] and two.group_ids().tolist() == [0, 0, 9, 9]
    with pytest.raises(ValueError, match="dog"):
        tp.labelled_set(groups="dogs")


def test_tampered_photo_is_refused(tmp_path, monkeypatch):
    name = "imagenet-samples/" + assets.imagenet_manifest()[0]["file"]
    (tmp_path / "imagenet-samples").mkdir()
    data = bytearray(tp.fetch(name).read_bytes())
    data[500] ^= 0xFF
    (tmp_path / name).write_bytes(bytes(data))
    monkeypatch.setenv("TP_DATA_DIR", str(tmp_path))
    with pytest.raises(tp.AssetError, match="corrupted"):
        tp.labelled_set(groups="fish", per_group=1)


def test_missing_photos_offline_say_what_to_do(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("TP_DATA_DIR", str(tmp_path))
    with pytest.raises(tp.AssetError) as err:
        tp.labelled_set(groups="fish", per_group=1)
    assert "n01440764_tench.JPEG" in str(err.value) and "tp fetch" in str(err.value)


def test_content_photos_load_by_name():
    for name in tp.CONTENT_PHOTOS:
        assert min(tp.load_image(name).size) >= 400


def test_fetch_groups():
    assert set(tp.fetch_all(["photos"])) == {"tubingen.jpg", "golden_gate.jpg", "hoovertowernight.jpg"}
    with pytest.raises(tp.AssetError, match="imagenet"):
        tp.fetch_all(["everything"])
