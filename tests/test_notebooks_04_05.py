"""The attribution methods of notebooks 04-05 against captum, and the clean-up of their hooks."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import tp_utils as tp
from tp_utils.notebook import load_exports

captum_attr = pytest.importorskip("captum.attr")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def nb04():
    return load_exports(ROOT / "solutions" / "04_saliency.ipynb")


@pytest.fixture(scope="module")
def nb05():
    return load_exports(ROOT / "solutions" / "05_guided_backprop.ipynb")


@pytest.fixture(scope="module")
def vgg():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return tp.load_model("vgg16", pretrained=False)


@pytest.fixture(params=["squeezenet1_0", "vgg16"])
def case(request, model, vgg):
    """(model, input batch, targets, last conv layer): the default model at 224 px on two photos,
    and VGG16 with random weights at 64 px (its forward pass at 224 px is 15 GFLOPs)."""
    if request.param == "squeezenet1_0":
        x = torch.cat([tp.preprocess("chelsea"), tp.preprocess("coffee")])
        return model, x, [tp.class_index("tabby"), tp.class_index("espresso")], "fire9"
    x = torch.cat([tp.preprocess("chelsea", size=64), tp.preprocess("rocket", size=64)])
    with torch.no_grad():
        targets = vgg(x).argmax(dim=1).tolist()
    return vgg, x, targets, "relu5_3"


def assert_relative(ours, ref, tol=1e-5):
    ours, ref = ours.detach().float(), ref.detach().float()
    assert ours.shape == ref.shape
    scale = ref.abs().max()
    assert scale > 0, "the reference is all zeros: the comparison would prove nothing"
    assert (ours - ref).abs().max() <= tol * scale, float((ours - ref).abs().max() / scale)


# ------------------------------------------------------------------ equivalence with captum

def test_class_gradient_equals_captum_saliency(nb04, case):
    model, x, targets, _ = case
    ref = captum_attr.Saliency(model).attribute(x.clone().requires_grad_(), target=targets, abs=False)
    assert_relative(nb04.class_gradient(model, x, torch.tensor(targets)), ref)


def test_saliency_map_is_max_over_channels_of_abs(nb04):
    g = torch.randn(2, 3, 5, 7)
    assert torch.equal(nb04.saliency_map(g), g.abs().max(dim=1).values)


def test_guided_backprop_equals_captum(nb05, case):
    model, x, targets, _ = case
    ref = captum_attr.GuidedBackprop(model).attribute(x.clone().requires_grad_(), target=targets)
    ours = torch.cat([nb05.unit_gradient(model, x[i:i + 1], None, (c,), guided=True)
                      for i, c in enumerate(targets)])
    assert_relative(ours, ref)
    plain = torch.cat([nb05.unit_gradient(model, x[i:i + 1], None, (c,)) for i, c in enumerate(targets)])
    assert not torch.allclose(plain, ours)  # the guided rule really changed something


def test_unit_gradients_equal_captum_neuron_methods(nb05, case):
    model, x, _, layer = case
    module = tp.get_layer(model, layer)
    with torch.no_grad(), tp.capture_activations(model, layer) as acts:
        model(x)
    unit = (int(acts[layer][:, :, 1, 1].min(dim=0).values.argmax()), 1, 1)  # active in both images
    ref = captum_attr.NeuronGuidedBackprop(model, module).attribute(x.clone().requires_grad_(), neuron_selector=unit)
    assert_relative(nb05.unit_gradient(model, x, layer, unit, guided=True), ref)
    ref = captum_attr.NeuronGradient(model, module).attribute(x.clone().requires_grad_(), neuron_selector=unit)
    assert_relative(nb05.unit_gradient(model, x, layer, unit), ref)


def test_integrated_gradients_equal_captum(nb04, case):
    # in float64: a sum of 32 gradients in float32 depends on the number of threads (3e-4 apart)
    model, x, targets, _ = case
    model, x = copy.deepcopy(model).double(), x.double()
    steps = 32 if model.name == "squeezenet1_0" else 8
    ig = captum_attr.IntegratedGradients(model)
    for i, c in enumerate(targets):
        ref = ig.attribute(x[i:i + 1], target=c, n_steps=steps, method="riemann_middle")
        assert_relative(nb04.integrated_gradients(model, x[i:i + 1], c, steps=steps, batch_size=steps), ref)
        # in smaller batches, the same result up to float rounding
        assert_relative(nb04.integrated_gradients(model, x[i:i + 1], c, steps=steps, batch_size=3), ref)


def test_grad_cam_equals_captum(nb04, case):
    model, x, targets, layer = case
    ref = captum_attr.LayerGradCam(model, tp.get_layer(model, layer)).attribute(
        x.clone().requires_grad_(), target=targets, relu_attributions=True)
    assert_relative(nb04.grad_cam(model, x, torch.tensor(targets), layer), ref[:, 0])


# ------------------------------------------------------------------ nothing left behind

def _state(model, x, c):
    """Output, input gradient and hooks of a model, to compare before and after."""
    xg = x.clone().requires_grad_(True)
    out = model(xg)
    out[0, c].backward()
    hooks = sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks)
                for m in model.modules())
    relus = [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)]
    return out.detach(), xg.grad, hooks, relus


def test_methods_leave_the_model_as_they_found_it(nb04, nb05, model):
    x, c = tp.preprocess("coffee"), tp.class_index("espresso")
    out0, grad0, hooks0, relus0 = _state(model, x, c)
    nb05.unit_gradient(model, x, None, (c,), guided=True)
    nb05.unit_gradient(model, x, "fire9", (3, 2, 2), guided=True)
    nb04.grad_cam(model, x, c, "fire9")
    nb04.smoothgrad(model, x, c, n=2)
    nb04.integrated_gradients(model, x, c, steps=4)
    with pytest.raises(IndexError):  # a unit that does not exist: the hooks must go all the same
        nb05.unit_gradient(model, x, "fire9", (5000, 0, 0), guided=True)
    with pytest.raises(KeyError):
        nb04.grad_cam(model, x, c, "fire99")
    out1, grad1, hooks1, relus1 = _state(model, x, c)
    assert torch.equal(out0, out1) and torch.equal(grad0, grad1)
    assert hooks1 == hooks0 and relus1 == relus0
    assert not any(p.requires_grad for p in model.parameters())


def test_guided_backprop_refuses_in_place_relus(nb05):
    raw = torchvision.models.squeezenet1_0(weights=None).eval()
    with pytest.raises(ValueError, match="inplace"):
        nb05.unit_gradient(raw, torch.zeros(1, 3, 64, 64), None, (0,), guided=True)


def test_randomize_top_copies_and_reinitializes_from_the_top(nb04, model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert tp.sanity.parameter_layers(model)[0] == "conv1" and tp.sanity.parameter_layers(model)[-1] == "conv10"
    one = tp.sanity.randomize_top(model, 1)
    changed = {k for k, v in one.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"classifier.1.weight", "classifier.1.bias"}  # conv10 only
    two = tp.sanity.randomize_top(model, 2)
    fire = lambda net, name: tp.get_layer(net, name)
    assert not torch.equal(fire(two, "fire9").expand3x3.weight, fire(model, "fire9").expand3x3.weight)
    assert torch.equal(fire(two, "fire8").squeeze.weight, fire(model, "fire8").squeeze.weight)
    again = tp.sanity.randomize_top(model, 2)
    assert all(torch.equal(a, b) for a, b in zip(two.state_dict().values(), again.state_dict().values()))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # original untouched
    assert all(torch.equal(a, b) for a, b in zip(tp.sanity.randomize_top(model, 0).state_dict().values(),
                                                  model.state_dict().values()))


# ------------------------------------------------------------------ the other exercises

def test_smoothgrad(nb04, model):
    x, c = tp.preprocess("chelsea", size=96), tp.class_index("tabby")
    vanilla = nb04.saliency_map(nb04.class_gradient(model, x, c))
    assert torch.allclose(nb04.smoothgrad(model, x, c, n=3, noise=0.0, batch_size=2), vanilla, atol=1e-6)
    a = nb04.smoothgrad(model, x, c, n=5, batch_size=2, generator=torch.Generator().manual_seed(1))
    b = nb04.smoothgrad(model, x, c, n=5, batch_size=5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (1, 96, 96) and torch.allclose(a, b, atol=1e-6)  # batching does not change it
    d = nb04.smoothgrad(model, x, c, n=5, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(a, d)


class _Quadrants(nn.Module):
    """Class 0's score is 4 x the mean of the top-left quadrant of channel 0."""

    def forward(self, x):
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        s = 4 * x[:, 0, :h, :w].mean(dim=(1, 2))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_deletion_curve(nb04):
    x = torch.ones(1, 3, 8, 8)
    importance = torch.zeros(8, 8)
    importance[:4, :4] = 1.0  # the quadrant the model reads, first
    curve = nb04.deletion_curve(_Quadrants(), x, 0, importance, steps=4, block=2,
                                baseline=torch.zeros_like(x))
    assert torch.allclose(curve, torch.sigmoid(torch.tensor([4.0, 0.0, 0.0, 0.0, 0.0])))
    reverse = nb04.deletion_curve(_Quadrants(), x, 0, -importance, steps=4, block=2,
                                  baseline=torch.zeros_like(x))
    assert torch.allclose(reverse, torch.sigmoid(torch.tensor([4.0, 4.0, 4.0, 4.0, 0.0])))
    assert nb04.curve_area(curve) < nb04.curve_area(reverse)
    assert nb04.curve_area(torch.ones(5)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="blocks"):
        nb04.deletion_curve(_Quadrants(), x, 0, importance, block=3)


def test_saliency_seeds_and_segmentation(nb04):
    markers = nb04.saliency_seeds(np.arange(200.0).reshape(10, 20), fg=0.9, bg=0.5)
    assert (markers == 1).sum() == 20 and (markers == 2).sum() == 100 and set(np.unique(markers)) == {0, 1, 2}
    image = np.full((64, 64, 3), 0.2)
    image[16:48, 16:48] = (0.9, 0.3, 0.1)  # an orange square on a dark background
    saliency = np.zeros((64, 64))
    saliency[16:48, 16:48] = 0.5
    saliency[24:40, 24:40] = 1.0  # most salient in the middle of the square: the seeds
    saliency += np.random.default_rng(0).uniform(0, 0.1, saliency.shape)
    mask = nb04.segment_from_saliency(image, saliency, sigma=2.0)
    truth = np.zeros((64, 64), bool)
    truth[16:48, 16:48] = True
    assert (mask & truth).sum() / (mask | truth).sum() > 0.9  # the mask grew to the square's edges


def test_rank_correlation(nb04):
    a = torch.arange(10.0)
    assert tp.sanity.rank_correlation(a, a ** 3) == pytest.approx(1.0)
    assert tp.sanity.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert tp.sanity.rank_correlation(a, torch.zeros(10)) == 0.0


@pytest.mark.parametrize("name", ["04_saliency", "05_guided_backprop"])
def test_stored_notebook_stays_light(name):
    # notebook 04 was once 13.6 MB (figures at 100 dpi); it travels to every clone and GPU run
    size = (ROOT / "solutions" / f"{name}.ipynb").stat().st_size
    assert size < 5e6, f"{name}: {size / 1e6:.1f} MB stored"


def test_smoothgrad_default_noise_is_the_papers(nb04):
    # Smilkov et al. (2017): 10-20 % of the input range
    import inspect

    assert 0.10 <= inspect.signature(nb04.smoothgrad).parameters["noise"].default <= 0.20


def _object_boxes():
    import csv
    from importlib.resources import files

    with (files("tp_utils") / "data" / "object_boxes.csv").open() as f:
        return {r["class_name"]: [int(r[k]) for k in ("x0", "y0", "x1", "y1")] for r in csv.DictReader(f)}


def test_object_boxes_are_boxes_on_labelled_photos():
    boxes = _object_boxes()
    names = tp.labelled_set().names
    assert len(boxes) >= 20
    for name, (x0, y0, x1, y1) in boxes.items():
        assert name in names, name
        assert 0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224, name
        assert 0.01 < (x1 - x0) * (y1 - y0) / 224 ** 2 < 0.8, f"{name}: a box should leave room outside it"


def test_trained_saliency_prefers_its_own_box_and_random_does_not(nb04):
    # the property notebook 04's section 3 prints: own box lifted more than the other photos' boxes
    boxes = _object_boxes()
    photos = tp.labelled_set()
    idx = [photos.names.index(n) for n in boxes]
    x, y = photos.images[idx], torch.tensor([photos.labels[i] for i in idx])
    inside = torch.zeros(len(idx), 224, 224, dtype=torch.float64)
    for k, (x0, y0, x1, y1) in enumerate(boxes.values()):
        inside[k, y0:y1, x0:x1] = 1

    def excess(model):
        energy = nb04.saliency_map(nb04.class_gradient(model, x, y)).double() ** 2
        lift = torch.einsum("ihw,jhw->ij", energy, inside) / energy.sum(dim=(1, 2))[:, None] / inside.mean(dim=(1, 2))
        keep = ~torch.isnan(lift.diagonal())
        own = lift.diagonal()[keep]
        others = ((lift.sum(dim=1) - lift.diagonal()) / (len(idx) - 1))[keep]
        return (own - others).mean().item()

    trained = excess(tp.load_model())
    torch.manual_seed(0)
    random = excess(tp.load_model("squeezenet1_0", pretrained=False))
    assert trained > 0.8, trained
    assert abs(random) < 0.3, random
