"""Properties of the regularizers (tp_utils.regularizers)."""
import pytest
import torch

from tp_utils import regularizers as R


@pytest.fixture
def img():
    return torch.randn(2, 3, 32, 40, generator=torch.Generator().manual_seed(0))


def test_roll_is_undone_by_the_opposite_roll(img):
    assert torch.equal(R.roll(R.roll(img, 5, -3), -5, 3), img)
    assert not torch.equal(R.roll(img, 5, -3), img)


def test_jitter_is_a_cyclic_shift_of_at_most_d(img):
    d = 4
    jit = R.jitter(d, generator=torch.Generator().manual_seed(1))
    shifts = set()
    for _ in range(20):
        out = jit(img)
        matches = [(dx, dy) for dx in range(-d, d + 1) for dy in range(-d, d + 1)
                   if torch.equal(R.roll(out, -dx, -dy), img)]
        assert len(matches) == 1  # undone by exactly one opposite shift within range
        shifts.add(matches[0])
    assert len(shifts) > 5  # and it does move


def test_jitter_is_reproducible_with_a_generator(img):
    a = R.jitter(8, torch.Generator().manual_seed(7))(img)
    b = R.jitter(8, torch.Generator().manual_seed(7))(img)
    assert torch.equal(a, b)


def test_blur_keeps_constants_and_the_mean(img):
    const = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(R.blur(1.5)(const), const, atol=1e-6)
    out = R.blur(2.0, padding="circular")(img)
    assert out.shape == img.shape
    assert torch.allclose(out.mean(dim=(2, 3)), img.mean(dim=(2, 3)), atol=1e-5)
    assert out.std() < 0.5 * img.std()  # it smooths
    assert torch.allclose(R.blur(1.0, padding="reflect")(img).mean(), img.mean(), atol=0.05)


def test_blur_is_the_gaussian():
    k = R.gaussian_kernel(1.0)
    assert k.numel() == 7 and torch.isclose(k.sum(), torch.tensor(1.0))
    delta = torch.zeros(1, 1, 15, 15)
    delta[0, 0, 7, 7] = 1
    out = R.blur(1.0)(delta)[0, 0]
    assert torch.allclose(out, torch.outer(k, k).new_zeros(15, 15).index_put_(
        (torch.arange(4, 11)[:, None], torch.arange(4, 11)[None]), torch.outer(k, k)), atol=1e-7)


def test_clip_small_values(img):
    out = R.clip_small_values(25)(img)
    zero = (out == 0).all(dim=1)
    assert 0.2 < zero.float().mean() < 0.3
    norms = img.norm(dim=1)
    for i in range(len(img)):  # the threshold is per image
        assert norms[i][zero[i]].max() <= norms[i][~zero[i]].min()
        assert torch.equal(out[i][:, ~zero[i]], img[i][:, ~zero[i]])


def test_clip_small_grads_is_identity_forward_and_sparsifies_backward(img):
    x = img.clone().requires_grad_(True)
    y = R.clip_small_grads(50)(x)
    assert torch.equal(y, img)
    weights = torch.randn_like(img)
    (y * weights).sum().backward()
    kept = (x.grad != 0).any(dim=1)
    assert 0.45 < kept.float().mean() < 0.55
    for i in range(len(img)):
        assert torch.equal(x.grad[i][:, kept[i]], weights[i][:, kept[i]])


def test_compose_applies_in_order(img):
    f = R.compose([lambda t: t + 1, lambda t: t * 2])
    assert torch.equal(f(img), (img + 1) * 2)
    g = R.compose([R.jitter(0), R.blur(0)])
    assert torch.equal(g(img), img)
