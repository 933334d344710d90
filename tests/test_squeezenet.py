"""The Deep Compression decoder against the facts of CONTRIBUTING.md section 4."""
import numpy as np
import pytest
import torch
import torchvision

import tp_utils as tp
from tp_utils import squeezenet as sq

from conftest import top1


@pytest.fixture(scope="module")
def raw():
    return tp.fetch("compressed_SqueezeNet.net").read_bytes()


@pytest.fixture(scope="module")
def shapes():
    ref = torchvision.models.squeezenet1_0(weights=None).state_dict()
    return [tuple(v.shape) for k, v in ref.items() if k.endswith("weight")]


def test_file_header(raw):
    counts = np.frombuffer(raw, "<u4", count=26)
    assert len(raw) == 675_763
    assert counts.sum() == 422_083


def test_decoded_layers(raw, shapes):
    layers = sq.decode(raw, shapes)
    assert [w.shape for w, _ in layers] == shapes
    assert sum(w.size + b.size for w, b in layers) == 1_248_424
    assert sum(int(np.count_nonzero(w)) for w, _ in layers) == 415_921
    # quantized: each layer uses at most 256 distinct weight values, 0 among them
    for w, _ in layers:
        assert len(np.unique(w)) <= 256


def test_model_parameters(model):
    assert sum(p.numel() for p in model.parameters()) == 1_248_424
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training


def test_truncated_or_padded_file_is_rejected(raw, shapes):
    with pytest.raises(ValueError, match="corrupted"):
        sq.decode(raw + b"\0\0\0\0", shapes)
    with pytest.raises(ValueError):
        sq.decode(raw[:-1000], shapes)


def test_folding_matches_caffe_convention(raw, shapes):
    """conv1 folded for normalized RGB == original conv1 on Caffe's BGR [0, 255] - mean input."""
    w, b = sq.decode(raw, shapes)[0]
    w_rgb, b_rgb = sq.fold_caffe_preprocessing(w, b)
    x = tp.preprocess("coffee")
    rgb255 = tp.deprocess(x).transpose(0, 3, 1, 2) * 255.0
    caffe = torch.from_numpy(rgb255[:, ::-1].copy() - np.array([104, 117, 123.0]).reshape(1, 3, 1, 1)).float()
    ref = torch.nn.functional.conv2d(caffe, torch.from_numpy(w), torch.from_numpy(b), stride=2)
    out = torch.nn.functional.conv2d(x, torch.from_numpy(w_rgb), torch.from_numpy(b_rgb), stride=2)
    assert torch.allclose(out, ref, atol=1e-3 * ref.abs().max())


@pytest.mark.parametrize("name,label,p", [("chelsea", "Egyptian cat", 0.71),
                                          ("coffee", "espresso", 0.81),
                                          ("rocket", "missile", 0.34)])
def test_reference_predictions(model, name, label, p):
    got, prob = top1(model, name)
    assert got == label
    assert prob == pytest.approx(p, abs=0.01)


def test_decoded_weights_are_cached_outside_data_dir(model, monkeypatch):
    cached = list(tp.cache_dir().glob("squeezenet1_0-*.pt"))
    assert len(cached) == 1
    assert tp.data_dir() not in cached[0].parents
    # the second load comes from the cache, not from the decoder
    monkeypatch.setattr(sq, "state_dict_from_file", lambda raw: pytest.fail("decoded again"))
    again = tp.load_model()
    for a, b in zip(again.parameters(), model.parameters()):
        assert torch.equal(a, b)
