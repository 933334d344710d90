"""Model loading, layer names, activation capture and hook hygiene."""
import pytest
import torch
from torch import nn

import tp_utils as tp
from tp_utils import models


@pytest.mark.parametrize("name", ["squeezenet1_1", "vgg16", "vgg19", "alexnet", "resnet18"])
def test_other_models_with_random_weights(name):
    model = tp.load_model(name, pretrained=False)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert not any(getattr(m, "inplace", False) for m in model.modules() if isinstance(m, nn.ReLU))
    for alias in tp.layer_names(model):
        tp.get_layer(model, alias)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


def test_layer_names():
    vgg = tp.load_model("vgg16", pretrained=False)
    names = tp.layer_names(vgg)
    assert names["conv1_1"] == "features.0" and names["conv5_3"] == "features.28"
    assert names["pool5"] == "features.30" and names["fc8"] == "classifier.6"
    sq11 = tp.layer_names(tp.load_model("squeezenet1_1", pretrained=False))
    assert sq11["pool3"] == "features.5" and sq11["fire9"] == "features.12"


def test_get_layer_aliases_and_paths(model):
    assert tp.get_layer(model, "conv1") is model.features[0]
    assert tp.get_layer(model, "fire2.expand3x3") is model.features[3].expand3x3
    assert tp.get_layer(model, "features.12") is model.features[12]
    assert tp.get_layer(model, "conv10") is model.classifier[1]


def test_unknown_layer_suggests(model):
    with pytest.raises(KeyError) as err:
        tp.get_layer(model, "fier5")
    suggestion = str(err.value).split("did you mean", 1)[1].split("?", 1)[0]  # not the full list after it
    assert "'fire5'" in suggestion and "'conv1'" not in suggestion


def test_unknown_model():
    with pytest.raises(ValueError, match="vgg16"):
        tp.load_model("vgg61")


def test_missing_torchvision_weights_offline(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(tp.WeightsUnavailableError) as err:
        tp.load_model("vgg16")
    message = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth") in message
    assert "tp fetch --model vgg16" in message and "pretrained=False" in message


def test_capture_activations(model):
    x = tp.preprocess("chelsea")
    with tp.capture_activations(model, ["conv1", "relu1", "fire9", "conv10"]) as acts:
        logits = model(x)
    assert acts["conv1"].shape == (1, 96, 109, 109)
    assert acts["fire9"].shape == (1, 512, 13, 13)
    assert (acts["conv1"] < 0).any(), "conv1 is captured before its ReLU"
    assert torch.equal(acts["relu1"], acts["conv1"].clamp(min=0))
    assert torch.allclose(acts["conv10"].clamp(min=0).mean(dim=(2, 3)), logits, atol=1e-5)
    assert not acts["conv1"].requires_grad


def test_capture_keeps_graph_when_asked(model):
    x = tp.preprocess("coffee").requires_grad_(True)
    with tp.capture_activations(model, "fire5", detach=False) as acts:
        model(x)
    acts["fire5"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())


def test_hooks_removed_after_an_error(model):
    before = _hook_count(model)
    x = tp.preprocess("chelsea")
    with torch.no_grad():
        reference = model(x)
    with pytest.raises(RuntimeError, match="boom"):
        with tp.capture_activations(model, ["conv1", "fire4"]):
            model(x)
            assert _hook_count(model) == before + 2
            raise RuntimeError("boom")
    assert _hook_count(model) == before
    with pytest.raises(KeyError):  # a bad name registers nothing
        with tp.capture_activations(model, ["conv1", "nope"]):
            pass
    assert _hook_count(model) == before
    with torch.no_grad():
        assert torch.equal(model(x), reference)


def test_device_and_seeds():
    assert tp.get_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert tp.get_device().type in ("cpu", "mps")
    tp.seed_everything(3)
    a = torch.rand(4)
    tp.seed_everything(3)
    assert torch.equal(a, torch.rand(4))
