"""The exercises of notebooks 01-03, imported from their export cells, against references."""
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import tp_utils as tp
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def nb01():
    return load_exports(ROOT / "solutions" / "01_filters_and_activations.ipynb")


@pytest.fixture(scope="module")
def nb02():
    return load_exports(ROOT / "solutions" / "02_feature_space.ipynb")


@pytest.fixture(scope="module")
def nb03():
    return load_exports(ROOT / "solutions" / "03_patches_and_occlusion.ipynb")


# ---------------------------------------------------------------- 01

def test_normalize_per_filter(nb01):
    w = torch.randn(10, 3, 5, 5)
    out = nb01.normalize_per_filter(w)
    for i in range(10):
        ref = (w[i] - w[i].min()) / (w[i].max() - w[i].min())
        assert torch.allclose(out[i], ref, atol=1e-6)


def test_channel_means_match_and_clean_up(nb01, model):
    x = torch.cat([tp.preprocess("coffee"), tp.preprocess("chelsea")])
    means = nb01.channel_means(model, x, ["relu1", "fire7"])
    with torch.no_grad(), tp.capture_activations(model, ["relu1", "fire7"]) as ref:
        model(x)
    assert means["relu1"].shape == (2, 96) and means["fire7"].shape == (2, 384)
    assert all(torch.allclose(means[k], ref[k].double().mean(dim=(2, 3)).float(), atol=1e-6) for k in ref)
    hooks = lambda: sum(len(m._forward_hooks) for m in model.modules())
    before = hooks()
    with pytest.raises(ValueError):  # the forward pass fails: hooks must still go
        nb01.channel_means(model, torch.zeros(1, 3, 8, 8), ["relu1", "fire7"])
    assert hooks() == before


def test_zero_fraction(nb01):
    assert nb01.zero_fraction(torch.tensor([[0.0, 0.0], [3.0, -0.0]])) == 0.75
    assert nb01.zero_fraction(torch.ones(5)) == 0.0


# ---------------------------------------------------------------- 02

def test_nearest_neighbors_against_scikit_learn(nb02):
    from sklearn.neighbors import NearestNeighbors

    X = torch.randn(60, 7, generator=torch.Generator().manual_seed(0))
    ours = nb02.nearest_neighbors(X, 4)
    ref = NearestNeighbors(n_neighbors=5).fit(X.numpy()).kneighbors(X.numpy(), return_distance=False)[:, 1:]
    assert np.array_equal(ours.numpy(), ref)


def test_same_source_rate(nb02):
    nbrs = torch.tensor([[1, 2], [0, 2], [0, 1]])
    assert nb02.same_source_rate(nbrs, np.array([0, 0, 1])) == pytest.approx(2 / 6)


# ---------------------------------------------------------------- 03

def linearized(model):
    """Same geometry, but every path counts: positive weights, no ReLU, average instead of max pooling."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, child_name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(module, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                         ceil_mode=child.ceil_mode))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) + 0.1)
    return model.double()


@pytest.mark.parametrize("arch,size,layers", [
    ("squeezenet1_0", 224, ["conv1", "pool1", "fire3", "pool4", "fire6", "pool8", "fire9", "conv10"]),
    ("vgg16", 128, ["conv1_2", "pool2", "conv3_3", "conv4_3"]),
])
def test_receptive_fields_equal_gradient_support(nb03, arch, size, layers):
    model = linearized(tp.load_model(arch, pretrained=False))
    fields = nb03.receptive_fields(model)
    for layer in layers:
        r, j, o = fields[layer]
        x = torch.zeros(1, 3, size, size, dtype=torch.float64, requires_grad=True)
        with tp.capture_activations(model, layer, detach=False) as acts:
            model(x)
        h = acts[layer].shape[-1]
        u = h // 2
        acts[layer][0, -1, u, u].backward()  # the last channel: a fire module's 3x3 branch
        rows = x.grad[0].abs().sum(0).sum(1).nonzero().flatten()
        cols = x.grad[0].abs().sum(0).sum(0).nonzero().flatten()
        c = o + u * j
        lo, hi = c - (r - 1) / 2, c + (r - 1) / 2
        assert lo >= 0 and hi < size, f"{layer}: choose a larger input"
        assert (rows.min().item(), rows.max().item()) == (lo, hi), layer
        assert (cols.min().item(), cols.max().item()) == (lo, hi), layer


def test_top_activations_and_patch_box(nb03):
    patch_box = tp.patches.patch_box
    maps = torch.zeros(4, 5, 5)
    maps[0, 1, 2], maps[0, 4, 4], maps[2, 3, 0], maps[3, 0, 0] = 9, 8, 7, 1
    assert nb03.top_activations(maps, 3) == [(0, 1, 2), (2, 3, 0), (3, 0, 0)]
    assert patch_box(1, 1, (11, 4, 5.0), 224) == (4, 4, 15, 15)
    assert patch_box(0, 0, (155, 16, 17.0), 160) == (0, 0, 95, 95)


def test_photo_bank_holds_one_image_per_photo():
    # notebook 03's bank: "one patch per image" must mean one per photo (no crops or flips of a photo)
    images, labels = tp.patches.photo_bank(size=64)
    labelled = tp.labelled_set(size=64)
    assert images.shape == (len(labelled) + len(tp.images.SAMPLE_IMAGES), 3, 64, 64) == (len(labels), 3, 64, 64)
    assert torch.equal(images[:len(labelled)], labelled.images)
    assert labels[:len(labelled)] == labelled.names and labels[len(labelled):] == list(tp.images.SAMPLE_IMAGES)
    flat = images.flatten(1)
    assert torch.cdist(flat, flat).fill_diagonal_(float("inf")).min() > 1.0  # no two images alike


@pytest.mark.parametrize("window,stride,baseline", [(64, 32, 0.0), (50, 40, -1.0)])
def test_occlusion_equals_captum(nb03, model, window, stride, baseline):
    from captum.attr import Occlusion

    x = tp.preprocess("chelsea")
    target = tp.class_index("Egyptian cat")
    drops, ours = nb03.occlusion_map(model, x, target, window=window, stride=stride, baseline=baseline)
    probs = lambda inp: model(inp).softmax(dim=1)
    ref = Occlusion(probs).attribute(x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
                                     baselines=baseline, target=target, perturbations_per_eval=64)
    assert torch.allclose(ref[0, 0], ref[0, 2])
    assert (ours - ref[0, 0]).abs().max() < 1e-5
    assert drops.max() > 0.05  # the comparison is not between two zero maps
