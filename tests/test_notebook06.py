"""Notebook 06 (adversarial examples): the attacks against captum and against their definitions,
the self-checks against wrong answers, and tp_utils.digits."""
import copy
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tp_utils as tp
from tp_utils import digits
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "solutions" / "06_adversarial_examples.ipynb"
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
MEAN = torch.tensor(tp.IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(tp.IMAGENET_STD).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def nb06():
    return load_exports(NOTEBOOK)


@pytest.fixture(scope="module")
def digit_batch():
    """A DigitNet with random weights (seeded) and 64 test digits: gradients need no training."""
    images, labels, _, idx_test = digits.load_split()
    return digits.DigitNet(seed=0).eval(), images[idx_test[:64]], labels[idx_test[:64]]


@pytest.fixture(scope="module")
def photos():
    """Two photos at 112 px (normalized) with their classes and two other classes as targets."""
    x = torch.cat([tp.preprocess("chelsea", size=112), tp.preprocess("coffee", size=112)])
    return x, torch.tensor([tp.class_index("tabby"), tp.class_index("espresso")]), torch.tensor([1, 947])


class PixelInput(nn.Module):
    """The model on pixels in [0, 1]: captum's convention (one scalar epsilon, bounds 0 and 1)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, p):
        return self.model((p - MEAN) / STD)


def captum_fgsm(model, lower=0.0, upper=1.0):
    robust = pytest.importorskip("captum.robust")
    attack = robust.FGSM(model, loss_func=nn.CrossEntropyLoss(reduction="none"), lower_bound=lower,
                         upper_bound=upper)
    attack.zero_thresh = 0.0  # captum leaves |gradient| <= 1e-6 unperturbed; sign(g) does not
    return attack


def captum_pgd(model, lower=0.0, upper=1.0):
    robust = pytest.importorskip("captum.robust")
    attack = robust.PGD(model, loss_func=nn.CrossEntropyLoss(reduction="none"), lower_bound=lower,
                        upper_bound=upper)
    attack.fgsm.zero_thresh = 0.0
    return attack


def linf_pixels(x_adv, x, norm_std=STD):
    return ((x_adv - x) * norm_std).abs().amax().item()


# ------------------------------------------------------------------ FGSM and PGD against captum

@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_equals_captum_on_digits(nb06, digit_batch, targeted):
    net, x, y = digit_batch
    labels = (y + 3) % 10 if targeted else y
    ours = nb06.fgsm(net, x, labels, 0.1, targeted=targeted, norm=nb06.PIXELS)
    ref = captum_fgsm(net).perturb(x.clone(), 0.1, labels, targeted=targeted)
    assert (ours - x).abs().amax() > 0.09  # the attack moved pixels: the comparison proves something
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_equals_captum_on_squeezenet_in_pixel_space(nb06, model, photos, targeted):
    x, y, t = photos
    labels = t if targeted else y
    ours = nb06.fgsm(model, x, labels, 2 / 255, targeted=targeted)  # normalized, eps in pixel units
    ref = captum_fgsm(PixelInput(model)).perturb(x * STD + MEAN, 2 / 255, labels, targeted=targeted)
    torch.testing.assert_close(ours * STD + MEAN, ref, atol=2e-6, rtol=0)
    assert abs(linf_pixels(ours, x) - 2 / 255) < 1e-6


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_equals_captum_on_digits(nb06, digit_batch, targeted):
    net, x, y = digit_batch
    labels = (y + 3) % 10 if targeted else y
    ours = nb06.pgd(net, x, labels, 0.15, 0.05, 6, targeted=targeted, norm=nb06.PIXELS)
    ref = captum_pgd(net).perturb(x.clone(), 0.15, 0.05, 6, labels, targeted=targeted)
    assert not torch.allclose(ours, nb06.fgsm(net, x, labels, 0.15, targeted=targeted, norm=nb06.PIXELS))
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


def test_pgd_equals_captum_on_squeezenet_in_pixel_space(nb06, model, photos):
    # in float64: in float32 the two runs (normalized vs pixel inputs) round differently, and from
    # the second step on about 1 % of the gradient's signs differ where the gradient is tiny
    x, _, t = photos
    model64, x64 = copy.deepcopy(model).double(), x.double()
    mean = torch.tensor(tp.IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(tp.IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    ours = nb06.pgd(model64, x64, t, 2 / 255, 0.5 / 255, 3, targeted=True) * std + mean
    pixel_model = PixelInput(model64)
    pixel_model.forward = lambda p: model64((p - mean) / std)
    ref = captum_pgd(pixel_model).perturb(x64 * std + mean, 2 / 255, 0.5 / 255, 3, t, targeted=True)
    assert ((ours - x64 * std - mean).abs().amax() - 1.5 / 255).abs() < 1e-9  # three full steps
    torch.testing.assert_close(ours, ref, atol=1e-9, rtol=0)


# ------------------------------------------------------------------ properties

def test_projection_keeps_the_ball_and_the_valid_range(nb06):
    g = torch.Generator().manual_seed(0)
    x = tp.clamp_normalized(torch.randn(4, 3, 16, 16, generator=g) * 2)
    far = torch.randn(4, 3, 16, 16, generator=g) * 5
    for eps in [0.5 / 255, 4 / 255, 0.1]:
        p = nb06.project_linf(far, x, eps)
        assert linf_pixels(p, x) <= eps + 1e-6
        assert torch.equal(tp.clamp_normalized(p), p)
        inside = tp.clamp_normalized(x + (torch.rand(x.shape, generator=g) - 0.5) * eps / STD)
        torch.testing.assert_close(nb06.project_linf(inside, x, eps), inside)  # a projection


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_stays_in_the_ball_and_the_valid_range(nb06, model, photos, targeted):
    x, y, t = photos
    x = torch.cat([x[:1], tp.clamp_normalized(x[1:] * 10)])  # an image with saturated pixels too
    x_adv = nb06.pgd(model, x, t if targeted else y, 3 / 255, 1 / 255, 6, targeted=targeted)
    assert linf_pixels(x_adv, x) <= 3 / 255 + 1e-6
    assert torch.equal(tp.clamp_normalized(x_adv), x_adv)
    assert linf_pixels(x_adv, x) > 2.9 / 255  # it did move


def test_pgd_early_stop_freezes_successful_images(nb06, model, photos):
    x, y, _ = photos
    wrong = torch.tensor([tp.class_index("goldfish"), tp.class_index("espresso")])  # image 0 "already fooled"
    x_adv = nb06.pgd(model, x, wrong, 2 / 255, 0.5 / 255, 3, early_stop=True)
    assert torch.equal(x_adv[0], x[0])
    assert not torch.equal(x_adv[1], x[1])


def test_targeted_attack_reaches_the_target_on_a_real_photo(nb06, model):
    x = tp.preprocess("chelsea")
    target = torch.tensor([tp.class_index("goldfish")])
    x_fool, steps = nb06.make_fooling_image(model, x, target, eta=1.0, max_iter=100)
    with torch.no_grad():
        assert model(x_fool).argmax().item() == target.item()
        assert model(x).argmax().item() != target.item()
    assert 1 <= steps.item() <= 100
    assert torch.equal(tp.clamp_normalized(x_fool), x_fool)
    rel, linf = nb06.perturbation_size(x, x_fool)
    assert rel.item() < 0.03 and linf.item() < 64


def test_fooling_step_is_the_normalized_score_gradient(nb06, model, photos):
    x, _, t = photos
    x1, steps = nb06.make_fooling_image(model, x, t, eta=2.0, max_iter=1)
    assert steps.tolist() == [1, 1]
    xg = x.clone().double().requires_grad_(True)
    reference = copy.deepcopy(model).double()
    (g,) = torch.autograd.grad(reference(xg)[[0, 1], t].sum(), xg)  # float64 reference
    want = tp.clamp_normalized(x + 2.0 * (g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).float())
    torch.testing.assert_close(x1, want, atol=1e-4, rtol=0)


def test_perturbation_size_in_pixel_units(nb06):
    x = torch.zeros(1, 3, 4, 4)
    x_adv = x.clone()
    x_adv[0, 1, 2, 3] = 5 / 255 / tp.IMAGENET_STD[1]  # one green pixel up by 5 grey levels
    rel, linf = nb06.perturbation_size(x, x_adv)
    assert linf.item() == pytest.approx(5.0, rel=1e-5)
    pixels = (x * STD + MEAN).flatten()
    assert rel.item() == pytest.approx(5 / 255 / pixels.norm().item(), rel=1e-5)


# ------------------------------------------------------------------ the self-checks catch wrong answers

def _cells():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    export = [c.source for c in nb.cells if "export" in c.metadata.get("tags", [])]
    check1 = next(c.source for c in nb.cells if c.source.startswith("toy = "))
    check2 = next(c.source for c in nb.cells if c.source.startswith("mean_t, std_t = "))
    return export, check1, check2


WRONG = {  # (what is wrong, solution line, wrong line, which self-check must fail)
    "fooling step downhill": ("x_fool[running] = tp.clamp_normalized(xr.detach()[going] + eta * g)",
                              "x_fool[running] = tp.clamp_normalized(xr.detach()[going] - eta * g)", 1),
    "fooling step not normalized": ("g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)",
                                    "g = g", 1),
    "fooling step normalized over the batch": (
        "g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)", "g = g / g.norm()", 1),
    "fooling on probabilities": ("scores = model(xr)", "scores = model(xr).softmax(dim=1)", 1),
    "fooling without clamp": ("x_fool[running] = tp.clamp_normalized(xr.detach()[going] + eta * g)",
                              "x_fool[running] = xr.detach()[going] + eta * g", 1),
    "fooling moves images already at their target": (
        "going = scores.argmax(dim=1) != target[running]",
        "going = torch.ones_like(target[running], dtype=torch.bool) if i == 0 else "
        "scores.argmax(dim=1) != target[running]", 1),
    "fooling stops one step early": ("if i == max_iter or not going.any():",
                                     "if i == max_iter - 1 or not going.any():", 1),
    "fooling takes one step too many": ("if i == max_iter or not going.any():",
                                        "if i == max_iter + 1 or not going.any():", 1),
    "projection without 1/std": ("delta = torch.max(torch.min(x_adv - x, eps / std), -eps / std)",
                                 "delta = torch.max(torch.min(x_adv - x, eps + 0 * std), -eps + 0 * std)", 2),
    "projection without valid range": ("return torch.max(torch.min(x + delta, (1 - mean) / std), -mean / std)",
                                       "return x + delta", 2),
    "FGSM uphill for targeted": ("sign = -1.0 if targeted else 1.0\n    return project_linf",
                                 "sign = 1.0\n    return project_linf", 2),
    "FGSM downhill": ("sign = -1.0 if targeted else 1.0\n    return project_linf",
                      "sign = 1.0 if targeted else -1.0\n    return project_linf", 2),
    "FGSM without 1/std": ("return project_linf(x + sign * eps / std * g.sign(), x, eps, norm)",
                           "return project_linf(x + sign * eps * g.sign(), x, eps, norm)", 2),
    "FGSM on the class score": ('loss = F.cross_entropy(model(xg), y, reduction="sum")',
                                "loss = -model(xg).gather(1, y[:, None]).sum()", 2),
    "FGSM with the raw gradient": ("return project_linf(x + sign * eps / std * g.sign(), x, eps, norm)",
                                   "return project_linf(x + sign * eps / std * g, x, eps, norm)", 2),
    "PGD without projection": (
        "stepped = project_linf(xr.detach() + sign * alpha / std * g.sign(), x[running], eps, norm)",
        "stepped = tp.clamp_normalized(xr.detach() + sign * alpha / std * g.sign())", 2),
    "PGD ignores early_stop": ("        if early_stop:\n            on_y", "        if False:\n            on_y", 2),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_self_checks_catch_wrong_answers(name):
    export, check1, check2 = _cells()
    old, new, which = WRONG[name]
    code = "\n\n".join(export)
    assert old in code, f"the solution changed: update the wrong answer {name!r}"
    namespace = {}
    exec(compile("\n".join(ln for ln in code.replace(old, new).splitlines() if not ln.startswith("%")),
                 "wrong", "exec"), namespace)
    if which == 1:
        with pytest.raises(AssertionError):
            exec(check1, namespace)
    else:
        exec(check1, namespace)  # exercise 1 is right: its check passes, the next one must not
        with pytest.raises(AssertionError):
            exec(check2, namespace)


def test_self_checks_pass_with_the_solution():
    export, check1, check2 = _cells()
    namespace = {}
    exec("\n".join(ln for ln in "\n\n".join(export).splitlines() if not ln.startswith("%")), namespace)
    exec(check1, namespace)
    exec(check2, namespace)


# ------------------------------------------------------------------ tp_utils.digits

def test_load_split_is_a_stratified_partition():
    images, labels, idx_train, idx_test = digits.load_split()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert images.min() == 0 and images.max() == 1
    assert len(set(idx_train) & set(idx_test)) == 0 and len(idx_train) + len(idx_test) == 1797
    assert len(idx_test) == 450
    share = np.bincount(labels[idx_test].numpy(), minlength=10) / np.bincount(labels.numpy(), minlength=10)
    assert np.allclose(share, 0.25, atol=0.02)
    again = digits.load_split()
    assert np.array_equal(again[3], idx_test)
    assert not np.array_equal(digits.load_split(seed=1)[3], idx_test)


def test_digitnet_seed_is_deterministic_and_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = digits.DigitNet(seed=5), digits.DigitNet(seed=5)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = digits.DigitNet(seed=6)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    x = torch.rand(3, 1, 8, 8)
    assert a(x).shape == (3, 10) and a.features(x).shape == (3, 64)


def test_train_learns_the_digits_and_calls_the_perturb_hook_on_every_batch():
    images, labels, idx_train, idx_test = digits.load_split()
    threads = torch.get_num_threads()
    calls = []

    def identity(net, xb, yb):
        calls.append((len(xb), len(yb), net.training))
        return xb

    net = digits.train(digits.DigitNet(seed=0), images[idx_train], labels[idx_train], epochs=4,
                       perturb=identity)
    assert torch.get_num_threads() == threads  # restored after the single-threaded loop
    assert len(calls) == 4 * int(np.ceil(len(idx_train) / 64)) and all(t for _, _, t in calls)
    assert not net.training
    assert digits.accuracy(net, images[idx_test], labels[idx_test]) > 0.9

    blank = digits.train(digits.DigitNet(seed=0), images[idx_train], labels[idx_train], epochs=2,
                         perturb=lambda net, xb, yb: torch.zeros_like(xb))  # the hook's output is used
    assert digits.accuracy(blank, images[idx_test], labels[idx_test]) < 0.2


def test_accuracy():
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].bias.copy_(torch.arange(10.0))  # always class 9
    y = torch.tensor([9, 9, 1, 9])
    assert digits.accuracy(net, torch.zeros(4, 1, 8, 8), y) == 0.75


def test_one_thread_restores_the_setting_on_errors():
    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with digits.one_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError
    assert torch.get_num_threads() == threads
