"""Notebook 07 (class visualization): the students' functions against independent references, and
the notebook's self-checks against plausible wrong answers."""
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import tp_utils as tp
from tp_utils import optimize as O
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[1]
PATH = ROOT / "solutions" / "07_class_visualization.ipynb"


@pytest.fixture(scope="module")
def nb():
    return load_exports(PATH)


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ---- exercise 1: the class-visualization objective ----

@pytest.mark.parametrize("l2", [0.0, 1e-3, 0.5])
def test_objective_matches_the_formula(nb, l2):
    scores = torch.randn(4, 1000, generator=gen(0))
    image = torch.randn(4, 3, 16, 16, generator=gen(1))
    target = torch.tensor([1, 130, 999, 1])
    want = sum(-float(scores[n, target[n]]) + l2 * float(torch.linalg.vector_norm(image[n])) ** 2
               for n in range(4))
    got = nb.class_visualization_objective(scores, image, target, l2)
    assert got.shape == () or got.numel() == 1
    assert abs(float(got) - want) < 1e-3 * max(1.0, abs(want))


def test_objective_with_an_int_target_and_its_gradients(nb):
    scores = torch.randn(3, 10, generator=gen(2), requires_grad=True)
    image = torch.randn(3, 3, 8, 8, generator=gen(3), requires_grad=True)
    loss = nb.class_visualization_objective(scores, image, 7, 0.05)
    assert torch.isclose(loss, -scores[:, 7].sum() + 0.05 * (image ** 2).sum())
    gs, gi = torch.autograd.grad(loss, [scores, image])
    onehot = torch.zeros(3, 10)
    onehot[:, 7] = 1
    assert torch.allclose(gs, -onehot)
    assert torch.allclose(gi, 0.1 * image.detach(), atol=1e-6)


def test_objective_raises_the_class_score_through_the_loop(nb, model):
    target = tp.class_index("goldfish")
    image = O.pixel_image((1, 3, 64, 64), sd=0.5, generator=gen(0))
    with torch.no_grad():
        before = model(image())[0].softmax(0)[target]
    result = O.optimize(image, lambda x: nb.class_visualization_objective(model(x), x, [target], 1e-3),
                        steps=15, lr=0.05)
    with torch.no_grad():
        after = model(result.image)[0].softmax(0)[target]
    assert after > 0.5 > before


# ---- exercise 2: the channel objective ----

def test_channel_objective_matches_a_loop_and_touches_only_its_channels(nb):
    a = torch.randn(3, 6, 5, 7, generator=gen(4), requires_grad=True)
    channels = [5, 0, 5]
    loss = nb.channel_objective(a, torch.tensor(channels))
    want = -sum(float(a[n, c].detach().mean()) for n, c in enumerate(channels))
    assert abs(float(loss.detach()) - want) < 1e-5
    (g,) = torch.autograd.grad(loss, a)
    mask = torch.zeros_like(g, dtype=torch.bool)
    for n, c in enumerate(channels):
        mask[n, c] = True
    assert torch.allclose(g[mask], torch.full_like(g[mask], -1 / 35))
    assert (g[~mask] == 0).all()
    assert abs(float(nb.channel_objective(a.detach(), 2)) + float(a[:, 2].detach().mean(dim=(1, 2)).sum())) < 1e-5


# ---- exercise 3: the share of high-frequency power ----

def reference_share(images, cutoff):
    x = images.numpy().astype(np.float64)
    x = x - x.mean(axis=(-2, -1), keepdims=True)
    power = (np.abs(np.fft.fft2(x)) ** 2).sum(axis=1)
    fy, fx = np.meshgrid(np.fft.fftfreq(x.shape[-2]), np.fft.fftfreq(x.shape[-1]), indexing="ij")
    high = np.hypot(fy, fx) > cutoff
    return (power * high).sum(axis=(-2, -1)) / power.sum(axis=(-2, -1))


@pytest.mark.parametrize("cutoff", [0.07, 0.13, 0.31])  # no frequency bin exactly on a cutoff
def test_high_frequency_share_matches_numpy(nb, cutoff):
    images = torch.randn(3, 3, 24, 40, generator=gen(5))
    images = tp.regularizers.blur(1.0)(images) + 0.2 * images   # something between smooth and noise
    got = nb.high_frequency_share(images, cutoff)
    assert got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), reference_share(images, cutoff), rtol=1e-4)


def test_high_frequency_share_properties(nb):
    x = torch.randn(2, 3, 32, 32, generator=gen(6))
    share = nb.high_frequency_share(x)
    assert torch.allclose(nb.high_frequency_share(3 * x + 7), share, atol=1e-5)  # scale, offset
    assert torch.allclose(nb.high_frequency_share(x, 0.0), torch.ones(2), atol=1e-5)
    assert torch.allclose(nb.high_frequency_share(x, 0.75), torch.zeros(2), atol=1e-6)
    smooth = tp.regularizers.blur(2.0, padding="circular")(x)
    assert (nb.high_frequency_share(smooth) < 0.2 * share).all()
    assert torch.isfinite(nb.high_frequency_share(torch.ones(1, 3, 8, 8))).all()  # no power at all


# ---- the self-checks of the notebook catch wrong answers ----

def self_check(source_contains):
    cells = nbformat.read(PATH, as_version=4).cells
    found = [c.source for c in cells if c.cell_type == "code" and source_contains in c.source]
    assert len(found) == 1
    return found[0]


WRONG_OBJECTIVES = {
    "sign flipped": lambda s, x, t, l: s.gather(1, torch.as_tensor(t).expand(len(s))[:, None]).sum()
    - l * x.pow(2).sum(),
    "softmax probability": lambda s, x, t, l: -s.softmax(1).gather(1, torch.as_tensor(t).expand(len(s))[:, None]).sum()
    + l * x.pow(2).sum(),
    "log-softmax": lambda s, x, t, l: -s.log_softmax(1).gather(1, torch.as_tensor(t).expand(len(s))[:, None]).sum()
    + l * x.pow(2).sum(),
    "no L2": lambda s, x, t, l: -s.gather(1, torch.as_tensor(t).expand(len(s))[:, None]).sum(),
    "L2 with the wrong sign": lambda s, x, t, l: -s.gather(1, torch.as_tensor(t).expand(len(s))[:, None]).sum()
    - l * x.pow(2).sum(),
    "L2 not squared": lambda s, x, t, l: -s.gather(1, torch.as_tensor(t).expand(len(s))[:, None]).sum()
    + l * x.norm(),
    "mean instead of sum": lambda s, x, t, l: -s.gather(1, torch.as_tensor(t).expand(len(s))[:, None]).mean()
    + l * x.pow(2).mean(),
    "first target for all": lambda s, x, t, l: -s[:, torch.as_tensor(t).flatten()[0]].sum() + l * x.pow(2).sum(),
}


@pytest.mark.parametrize("name", list(WRONG_OBJECTIVES))
def test_self_check_1_catches_wrong_objectives(nb, name):
    source = self_check("scores_toy = ")
    env = {"torch": torch, "tp": tp, "class_visualization_objective": nb.class_visualization_objective}
    exec(source, dict(env))  # the right answer passes
    with pytest.raises(AssertionError):
        exec(source, dict(env, class_visualization_objective=WRONG_OBJECTIVES[name]))


def pick(a, c):
    c = torch.as_tensor(c).expand(a.shape[0])
    return a[torch.arange(a.shape[0]), c]


WRONG_CHANNEL = {
    "sign": lambda a, c: pick(a, c).mean(dim=(1, 2)).sum(),
    "sum over positions": lambda a, c: -pick(a, c).sum(),
    "mean over the batch": lambda a, c: -pick(a, c).mean(),
    "every chosen channel for every image": lambda a, c: -a[:, torch.as_tensor(c)].mean(dim=(2, 3)).sum(),
}


@pytest.mark.parametrize("name", list(WRONG_CHANNEL))
def test_self_check_2_catches_wrong_channel_objectives(nb, name):
    source = self_check("a_toy = ")
    env = {"torch": torch, "tp": tp, "channel_objective": nb.channel_objective}
    exec(source, dict(env))
    with pytest.raises(AssertionError):
        exec(source, dict(env, channel_objective=WRONG_CHANNEL[name]))


def share_without_mean(images, cutoff=0.125):
    power = torch.fft.fft2(images).abs().pow(2).sum(dim=1)
    fy = torch.fft.fftfreq(images.shape[-2])[:, None]
    fx = torch.fft.fftfreq(images.shape[-1])[None, :]
    return (power * ((fy ** 2 + fx ** 2).sqrt() > cutoff)).sum(dim=(-2, -1)) / power.sum(dim=(-2, -1))


def share_of(condition):
    def share(images, cutoff=0.125):
        x = images - images.mean(dim=(-2, -1), keepdim=True)
        power = torch.fft.fft2(x).abs().pow(2).sum(dim=1)
        h, w = images.shape[-2:]
        high = condition(torch.fft.fftfreq(h)[:, None], torch.fft.fftfreq(w)[None, :], h, w, cutoff)
        return (power * high).sum(dim=(-2, -1)) / power.sum(dim=(-2, -1)).clamp(min=1e-12)
    return share


WRONG_SHARE = {
    "no mean removed": share_without_mean,
    "bin indices, not frequencies": share_of(
        lambda fy, fx, h, w, c: ((fy * h) ** 2 + (fx * w) ** 2).sqrt() > c),
    "fx only": share_of(lambda fy, fx, h, w, c: fx.abs().expand(h, w) > c),
    "signed frequencies": share_of(lambda fy, fx, h, w, c: (fy + fx) > c),
}


@pytest.mark.parametrize("name", list(WRONG_SHARE))
def test_self_check_3_catches_wrong_shares(nb, name):
    source = self_check("checker = ")
    env = {"torch": torch, "tp": tp, "np": np, "high_frequency_share": nb.high_frequency_share}
    exec(source, dict(env))
    with pytest.raises(AssertionError):
        exec(source, dict(env, high_frequency_share=WRONG_SHARE[name]))
