"""The shared image-optimization loop (tp_utils.optimize) and the robustness transforms."""
import math
from typing import Callable, Sequence

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tp_utils as tp
from tp_utils import optimize as O
from tp_utils import regularizers as R
from tp_utils.images import IMAGENET_MEAN, IMAGENET_STD


# ---- Lucid's chain of transforms (pad, jitter, scale, rotate, crop back): the reference that
# R.random_affine is checked against (no notebook uses it: it lives here, not in tp_utils)

def pad(width: int, value: float = 0.0) -> Callable:
    """Pad every side with ``width`` pixels of the constant ``value`` (0 = the mean colour
    of a normalized image), so that later jitter, scaling and rotation do not wrap the image."""
    def inner(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (width, width, width, width), mode="constant", value=value)
    return inner


def random_scale(scales: Sequence[float], generator: torch.Generator | None = None) -> Callable:
    """Resize by a factor drawn from ``scales`` (bilinear; a new factor at every call)."""
    scales = list(scales)
    if not scales or min(scales) <= 0:
        raise ValueError(f"random_scale needs positive factors, got {scales}")

    def inner(x: torch.Tensor) -> torch.Tensor:
        s = R._pick(scales, generator)
        if s == 1.0:
            return x
        size = [max(1, round(n * s)) for n in x.shape[-2:]]
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return inner


def random_rotate(degrees: Sequence[float], generator: torch.Generator | None = None) -> Callable:
    """Rotate about the centre by an angle (in degrees) drawn from ``degrees``; the corners
    that come from outside the image are 0 (the mean colour of a normalized image)."""
    degrees = list(degrees)
    if not degrees:
        raise ValueError("random_rotate needs at least one angle")

    def inner(x: torch.Tensor) -> torch.Tensor:
        a = math.radians(R._pick(degrees, generator))
        if a == 0.0:
            return x
        h, w = x.shape[-2:]
        cos, sin = math.cos(a), math.sin(a)
        # affine_grid works in [-1, 1] coordinates: correct the aspect ratio of non-square images
        theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]],
                             dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return inner


def standard_transforms(generator: torch.Generator | None = None) -> list[R.Transform]:
    """Lucid's ``transforms.standard_transforms``: pad 12, jitter 8, scale by 0.9 to 1.1,
    rotate by -10 to 10 degrees, jitter 4 (sizes for a 224-pixel image). The output is larger
    than the input (about 248 pixels for 224); wrap the list in :func:`keep_size` to keep 224."""
    return [pad(12), R.jitter(8, generator),
            random_scale([1 + (i - 5) / 50 for i in range(11)], generator),
            random_rotate(list(range(-10, 11)) + 5 * [0], generator), R.jitter(4, generator)]


def center_crop_or_pad(x: torch.Tensor, size: Sequence[int], value: float = 0.0) -> torch.Tensor:
    """Cut ``x`` to ``size = (H, W)`` about its centre, padding with ``value`` where it is smaller."""
    out = x
    for dim, want in ((-2, size[0]), (-1, size[1])):
        have = out.shape[dim]
        if have > want:
            out = out.narrow(dim, (have - want) // 2, want)
        elif have < want:
            before = (want - have) // 2
            widths = [0, 0, 0, 0]
            widths[0 if dim == -1 else 2], widths[1 if dim == -1 else 3] = before, want - have - before
            out = F.pad(out, widths, mode="constant", value=value)
    return out


def keep_size(transforms: Sequence[Callable]) -> Callable:
    """Apply ``transforms`` in order, then cut or pad the result back to the input's size, so
    that the model always sees images of one size (and costs the same at every step)."""
    inner_transform = R.compose(list(transforms))

    def inner(x: torch.Tensor) -> torch.Tensor:
        return center_crop_or_pad(inner_transform(x), x.shape[-2:])
    return inner

LOW = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]).view(1, 3, 1, 1)
HIGH = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]).view(1, 3, 1, 1)


def quadratic(target):
    """The squared distance to ``target``: minimized by the image ``target`` itself."""
    return lambda x: ((x - target) ** 2).sum()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.1), ("sgd", 0.1), ("lbfgs", 1.0)])
def test_the_loop_minimizes_a_quadratic(optimizer, lr):
    target = torch.randn(1, 3, 8, 8, generator=gen(1)) * 0.5
    image = O.pixel_image((1, 3, 8, 8), sd=1.0, generator=gen(0))
    result = O.optimize(image, quadratic(target), steps=150 if optimizer == "adam" else 40,
                        lr=lr, optimizer=optimizer)
    assert len(result.losses) == (150 if optimizer == "adam" else 40)
    assert result.losses[-1] < 1e-3 * result.losses[0]
    assert torch.allclose(result.image, target, atol=0.02)
    assert result.evaluations >= len(result.losses)


def test_lbfgs_reaches_the_minimum_in_a_few_steps():
    target = torch.randn(1, 3, 6, 6, generator=gen(2))
    result = O.optimize(O.pixel_image((1, 3, 6, 6), generator=gen(0)), quadratic(target),
                        steps=3, lr=1.0, optimizer="lbfgs")
    assert result.losses[-1] < 1e-6 and torch.allclose(result.image, target, atol=1e-4)


def test_the_loop_maximizes_a_class_score_of_the_model(model):
    target = tp.class_index("goldfish")
    image = O.pixel_image((1, 3, 64, 64), sd=0.1, generator=gen(0))
    with torch.no_grad():
        before = model(image())[0, target]
    result = O.optimize(image, lambda x: -model(x)[0, target], steps=10, lr=0.05)
    with torch.no_grad():
        after = model(result.image)[0, target]
    assert after > before + 5
    assert result.losses[-1] < result.losses[0]


def test_a_factory_gives_the_optimizer():
    made = []

    def factory(params):
        made.append(torch.optim.SGD(params, lr=0.5))
        return made[-1]

    target = torch.ones(1, 3, 4, 4)
    result = O.optimize(O.pixel_image((1, 3, 4, 4)), quadratic(target), steps=20, optimizer=factory)
    assert len(made) == 1 and result.losses[-1] < 1e-6


def run_jittered(seed, parameterization):
    g = gen(seed)
    image = parameterization((2, 3, 16, 16), generator=g)
    target = torch.linspace(-1, 1, 16).expand(2, 3, 16, 16)
    return O.optimize(image, quadratic(target), steps=15, lr=0.05,
                      transforms=[R.jitter(3, g), R.clip_small_grads(20)],
                      callbacks=[O.every(5, O.blur_image(0.5))] if parameterization is O.pixel_image else [],
                      snapshot_every=5)


@pytest.mark.parametrize("parameterization", [O.pixel_image, O.fourier_image])
def test_seeded_runs_are_identical(parameterization):
    a, b, c = run_jittered(3, parameterization), run_jittered(3, parameterization), run_jittered(4, parameterization)
    assert torch.equal(a.image, b.image) and a.losses == b.losses
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a.snapshots, b.snapshots))
    assert not torch.equal(a.image, c.image)


def test_callbacks_run_after_every_step_in_order_without_gradients():
    calls = []

    def record(name):
        def callback(step, image):
            calls.append((name, step, torch.is_grad_enabled(), image.pixels.grad is not None))
        return callback

    O.optimize(O.pixel_image((1, 3, 4, 4)), quadratic(torch.ones(1, 3, 4, 4)), steps=6,
               callbacks=[record("a"), O.every(3, record("b"))])
    assert [(n, s) for n, s, _, _ in calls] == [("a", 1), ("a", 2), ("a", 3), ("b", 3), ("a", 4),
                                                ("a", 5), ("a", 6), ("b", 6)]
    assert not any(grad_on for _, _, grad_on, _ in calls)
    assert all(has_grad for _, _, _, has_grad in calls)  # after the step, before the next one


def test_snapshots_and_result_are_copies():
    image = O.pixel_image((1, 3, 4, 4))
    result = O.optimize(image, quadratic(torch.ones(1, 3, 4, 4)), steps=7, lr=0.1, snapshot_every=3)
    assert [s for s, _ in result.snapshots] == [3, 6, 7]
    assert torch.equal(result.snapshots[-1][1], result.image)
    with torch.no_grad():
        image.pixels.zero_()
    assert result.image.abs().sum() > 0  # the result does not share the parameter's memory
    assert result.seconds > 0


def test_clamp_keeps_the_image_in_the_valid_range():
    # an objective that pushes every pixel far out of range, in both directions
    push = torch.tensor([1.0, -1.0, 1.0]).view(1, 3, 1, 1)
    image = O.pixel_image((1, 3, 8, 8), sd=1.0, generator=gen(0))
    result = O.optimize(image, lambda x: -(x * push).sum(), steps=30, lr=0.5,
                        callbacks=[O.clamp_pixels()])
    rgb = tp.deprocess(result.image[0])
    assert rgb.min() >= -1e-6 and rgb.max() <= 1 + 1e-6
    assert torch.allclose(result.image[:, 0], HIGH[:, 0].expand(1, 8, 8), atol=1e-6)
    assert torch.allclose(result.image[:, 1], LOW[:, 1].expand(1, 8, 8), atol=1e-6)
    unclamped = O.optimize(O.pixel_image((1, 3, 8, 8), sd=1.0, generator=gen(0)),
                           lambda x: -(x * push).sum(), steps=30, lr=0.5)
    assert (unclamped.image > HIGH + 1).any()  # without the callback it leaves the range


def test_apply_to_pixels_and_blur_image():
    image = O.pixel_image(init=torch.randn(1, 3, 16, 16, generator=gen(0)))
    before = image.pixels.detach().clone()
    with torch.no_grad():
        O.blur_image(1.0)(1, image)
    assert torch.allclose(image.pixels, R.blur(1.0)(before))
    with torch.no_grad():
        O.apply_to_pixels(R.clip_small_values(50))(1, image)
    zero = image.pixels.norm(dim=1) == 0
    assert 0.45 < zero.float().mean() < 0.55


def test_fourier_image_is_always_in_range_and_starts_grey():
    image = O.fourier_image((2, 3, 32, 48), generator=gen(0))
    start = tp.deprocess(image()[0])
    assert start.std() < 0.05  # Lucid's start: nearly uniform grey
    assert abs(start.mean() - 0.5) < 0.05
    push = torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1)  # far out of range if it could
    result = O.optimize(image, lambda x: -(x * push).sum(), steps=60, lr=0.2, snapshot_every=10)
    for x in [result.image, *[s for _, s in result.snapshots]]:
        assert x.shape == (2, 3, 32, 48)
        assert (x >= LOW - 1e-5).all() and (x <= HIGH + 1e-5).all()
    rgb = tp.deprocess(result.image[0])
    assert rgb[..., 0].mean() > rgb[..., 1].mean() + 0.4  # it does move


def test_fourier_image_has_more_low_frequencies_than_pixel_noise():
    def high_share(x):
        power = torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs() ** 2
        f = torch.fft.fftfreq(x.shape[-1]).abs()
        return float(power[..., f[:, None].maximum(f[None, :]) > 0.25].sum() / power.sum())

    fourier = O.fourier_image((1, 3, 64, 64), generator=gen(0))().detach()
    pixels = O.pixel_image((1, 3, 64, 64), sd=1.0, generator=gen(0))().detach()
    assert high_share(fourier) < 0.25 < 0.6 < high_share(pixels)


def test_fourier_callbacks_that_edit_pixels_refuse():
    with pytest.raises(TypeError, match="Fourier image is always in range"):
        O.optimize(O.fourier_image((1, 3, 8, 8)), lambda x: x.sum(), steps=1,
                   callbacks=[O.clamp_pixels()])


@pytest.mark.parametrize("objective, error, message", [
    (lambda x: x.sum(dim=1), TypeError, "scalar tensor"),
    (lambda x: 3.0, TypeError, "scalar tensor"),
    (lambda x: x.sum().detach(), RuntimeError, "does not depend on the image"),
    (lambda x: x.sum() * float("nan"), FloatingPointError, "at step 1"),
])
def test_bad_objectives_give_clear_errors(objective, error, message):
    with pytest.raises(error, match=message):
        O.optimize(O.pixel_image((1, 3, 4, 4)), objective, steps=3)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(steps=-1), ValueError, "steps"),
    (dict(steps=2.5), ValueError, "steps"),
    (dict(lr=0), ValueError, "lr"),
    (dict(optimizer="adamw"), ValueError, "unknown optimizer"),
    (dict(optimizer=lambda params: None), TypeError, "not a torch.optim.Optimizer"),
    (dict(snapshot_every=0), ValueError, "snapshot_every"),
])
def test_bad_arguments_give_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        O.optimize(O.pixel_image((1, 3, 4, 4)), lambda x: x.sum(), **kwargs)


def test_a_tensor_or_a_frozen_image_is_refused():
    with pytest.raises(TypeError, match="pixel_image\\(init=tensor\\)"):
        O.optimize(torch.zeros(1, 3, 4, 4), lambda x: x.sum())
    frozen = O.pixel_image((1, 3, 4, 4)).requires_grad_(False)
    with pytest.raises(ValueError, match="no parameter"):
        O.optimize(frozen, lambda x: x.sum())
    with pytest.raises(ValueError, match="n >= 1"):
        O.every(0, O.clamp_pixels())


def hooks(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_feature_extractor_hooks_are_removed_after_the_loop_also_on_error(model):
    before = hooks(model)
    with tp.models.feature_extractor(model, ["fire3", "fire5"]) as features:
        assert hooks(model) > before
        result = O.optimize(O.pixel_image((1, 3, 64, 64), generator=gen(0)),
                            lambda x: -features(x)["fire5"][:, 7].mean(), steps=3, lr=0.05)
    assert hooks(model) == before and result.losses[-1] < result.losses[0]

    def failing(x):
        features(x)
        raise ZeroDivisionError("a bug in the objective")

    with pytest.raises(ZeroDivisionError):
        with tp.models.feature_extractor(model, "fire5") as features:
            O.optimize(O.pixel_image((1, 3, 64, 64)), failing, steps=3)
    assert hooks(model) == before
    with pytest.raises(KeyError):  # an unknown layer: nothing registered at all
        with tp.models.feature_extractor(model, ["fire5", "fire55"]):
            pass
    assert hooks(model) == before
    with torch.no_grad():  # the model still runs to its end
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


# ---- transformation robustness ----

def test_random_scale_and_rotate():
    x = torch.randn(2, 3, 20, 30, generator=gen(0))
    assert random_scale([1.5])(x).shape == (2, 3, 30, 45)
    assert torch.equal(random_scale([1.0])(x), x)
    assert torch.equal(random_rotate([0])(x), x)
    dot = torch.zeros(1, 1, 9, 9)
    dot[0, 0, 4, 6] = 1.0
    assert random_rotate([90])(dot)[0, 0].nonzero().tolist() == [[2, 4]]  # counterclockwise
    assert torch.allclose(random_rotate([180])(random_rotate([180])(x)), x, atol=1e-5)
    a = R.compose(standard_transforms(gen(5)))
    b = R.compose(standard_transforms(gen(5)))
    y = torch.randn(1, 3, 64, 64, generator=gen(1), requires_grad=True)
    out = a(y)
    assert torch.equal(out, b(y))
    out.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0  # differentiable
    assert pad(3)(x).shape == (2, 3, 26, 36) and pad(3)(x)[..., 0, 0].abs().sum() == 0
    with pytest.raises(ValueError):
        random_scale([0.0])
    with pytest.raises(ValueError):
        random_rotate([])


def test_random_transforms_draw_several_values():
    g = gen(0)
    scale = random_scale([0.5, 1.0, 2.0], g)
    sizes = {scale(torch.zeros(1, 1, 8, 8)).shape[-1] for _ in range(30)}
    assert sizes == {4, 8, 16}
    assert not math.isnan(float(random_rotate(range(-10, 11), g)(torch.ones(1, 1, 8, 8)).sum()))


def test_random_affine_is_the_chain_of_transforms_in_one_resampling():
    x = torch.randn(2, 3, 20, 30, generator=gen(0))
    moved = R.random_affine(shift=3, generator=gen(1))(x)
    matches = [(dx, dy) for dx in range(-3, 4) for dy in range(-3, 4)
               if torch.allclose(center_crop_or_pad(R.roll(pad(3)(x), dx, dy), (20, 30)), moved, atol=1e-5)]
    assert len(matches) == 1  # a translation with grey filling
    assert torch.allclose(R.random_affine(scales=[2.0])(x), keep_size([random_scale([2.0])])(x), atol=1e-4)
    assert torch.allclose(R.random_affine(degrees=[30])(x), random_rotate([30])(x), atol=1e-5)
    assert torch.equal(R.random_affine()(x), x)
    a = R.random_affine([0.9, 1.1], [-10, 10], 8, gen(2))
    b = R.random_affine([0.9, 1.1], [-10, 10], 8, gen(2))
    assert all(torch.equal(a(x), b(x)) for _ in range(3))
    with pytest.raises(ValueError):
        R.random_affine(scales=[])
