"""Cost of the shared image-optimization loop against a bare forward+backward pass.

    python benchmarks/optimize.py [--size 224] [--steps 8] [--rounds 5] [--threads N] [--device cpu]

For a typical loop of each of notebooks 07, 08 and 09 (class visualization with the pixel and
with the Fourier parameterization, DeepDream at a layer, feature inversion at a layer) it prints
the time per iteration of ``tp.optimize.optimize`` (parameterization, transforms, optimizer step,
callbacks, bookkeeping, and the network), the time of a bare forward+backward pass of the same
network (truncated at the same layer) on an image of the same size, and their ratio. The course's
budget (CONTRIBUTING.md section 8) is a ratio of at most 1.15.

The two are timed in alternation, ``--steps`` iterations at a time, for ``--rounds`` rounds, and
the ratio is the median of the rounds' ratios: on a machine that other jobs also load, what
changes during a run affects both sides alike. "alone" is the loop with an objective that skips
the network (the image's mean): the loop's own cost per iteration, which gives a second estimate
of the ratio, 1 + alone / bare, less noisy than the first when the bare time is small. With ``--threads 1 --clock cpu`` the times suffer
least from other jobs on the machine.
"""
import argparse
import statistics
import time

import torch

import tp_utils as tp
from tp_utils import optimize as O
from tp_utils import regularizers as R


CLOCK = time.perf_counter


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_seconds(loss_fn, x, steps, device):
    """Seconds per forward+backward of ``loss_fn`` on the leaf tensor ``x``."""
    sync(device)
    start = CLOCK()
    for _ in range(steps):
        x.grad = None
        loss_fn(x).backward()
    sync(device)
    return (CLOCK() - start) / steps


def loop_seconds(make_image, objective, steps, device, **kwargs):
    image = make_image()
    sync(device)
    start = CLOCK()
    O.optimize(image, objective, steps=steps, desc="benchmark", **kwargs)
    sync(device)
    return (CLOCK() - start) / steps


def normalized_gradient():
    """Identity forward; backward, the gradient divided by its mean absolute value (08's steps)."""
    def inner(x):
        if not x.requires_grad:
            return x
        y = x.view_as(x)
        y.register_hook(lambda g: g / (g.abs().mean() + 1e-8))
        return y
    return inner


def cases(model, size, device, generator):
    """name -> (bare loss on x, image factory, objective, optimize's keyword arguments)."""
    shape = (1, 3, size, size)
    goldfish = tp.class_index("goldfish")
    score = lambda x: model(x)[0, goldfish]
    photo = tp.preprocess("grace_hopper", size=size).to(device)
    out = {}

    out["07 class visualization, pixels"] = (
        lambda x: -score(x),
        lambda: O.pixel_image(shape, sd=0.5, generator=generator, device=device),
        lambda x: -score(x) + 1e-3 * (x ** 2).sum(),
        dict(lr=0.1, transforms=[R.jitter(16, generator)],
             callbacks=[O.clamp_pixels(), O.every(10, O.blur_image(0.5))]))
    robust = R.random_affine([1 + (i - 5) / 50 for i in range(11)], list(range(-10, 11)) + 5 * [0],
                             12, generator)  # notebook 07's transformation robustness
    out["07 class visualization, Fourier"] = (
        lambda x: -score(x),
        lambda: O.fourier_image(shape, generator=generator, device=device),
        lambda x: -score(x),
        dict(lr=0.05, transforms=[robust]))
    return out, photo


def layer_cases(model, features, layer, photo, size, device, generator):
    with torch.no_grad():
        f0 = features(photo)[layer]
    dream = lambda x: -0.5 * features(x)[layer].pow(2).sum()
    invert = lambda x: (features(x)[layer] - f0).pow(2).sum()
    return {
        f"08 DeepDream at {layer}": (
            dream, lambda: O.pixel_image(init=photo),
            dream, dict(lr=0.02, optimizer="sgd",
                        transforms=[R.jitter(16, generator), normalized_gradient()],
                        callbacks=[O.clamp_pixels()])),
        f"09 feature inversion at {layer}": (
            invert, lambda: O.pixel_image(photo.shape, sd=0.1, generator=generator, device=device),
            invert, dict(lr=0.1, callbacks=[O.clamp_pixels()])),
    }


def measure(name, bare, make_image, objective, kwargs, args, device):
    x = torch.randn(1, 3, args.size, args.size, device=device, requires_grad=True)
    bare_seconds(bare, x, 2, device)  # warm-up of both
    loop_seconds(make_image, objective, 2, device, **kwargs)
    ratios, b_all, l_all, f_all = [], [], [], []
    for _ in range(args.rounds):
        b = bare_seconds(bare, x, args.steps, device)
        l = loop_seconds(make_image, objective, args.steps, device, **kwargs)
        f = loop_seconds(make_image, lambda img: img.mean(), args.steps, device, **kwargs)  # no network
        ratios.append(l / b)
        b_all.append(b)
        l_all.append(l)
        f_all.append(f)
    ratio, bare_ms, free_ms = (statistics.median(ratios), 1000 * statistics.median(b_all),
                               1000 * statistics.median(f_all))
    print(f"{name:38s} {1000 * statistics.median(l_all):9.1f} {bare_ms:9.1f} {ratio:7.3f} "
          f"{free_ms:9.1f} {1 + free_ms / bare_ms:9.3f}  {'ok' if ratio <= 1.15 else 'OVER 1.15'}",
          flush=True)
    return ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=8, help="iterations per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: tp.get_device())")
    parser.add_argument("--layers", nargs="+", default=["fire8", "fire5"],
                        help="layer of the DeepDream and inversion loops")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: this process's CPU time (with --threads 1, the least sensitive to "
                             "other jobs on the machine)")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    device = tp.get_device(args.device)
    generator = torch.Generator().manual_seed(0)
    model = tp.load_model(device=device)
    if args.clock == "cpu" and device.type != "cpu":
        parser.error("--clock cpu measures CPU time: use it on the CPU only")
    print(f"device {device}, {torch.get_num_threads()} CPU threads, {args.size} px, {args.clock} clock, "
          f"{args.rounds} rounds of {args.steps} iterations, median ratio")
    print(f"{'loop':38s} {'loop ms':>9s} {'bare ms':>9s} {'ratio':>7s} {'alone ms':>9s} {'1+alone/bare':>9s}")
    all_cases, photo = cases(model, args.size, device, generator)
    for name, case in all_cases.items():
        measure(name, *case, args, device)
    for layer in args.layers:
        with tp.models.feature_extractor(model, layer) as features:
            for name, case in layer_cases(model, features, layer, photo, args.size, device,
                                          generator).items():
                measure(name, *case, args, device)


if __name__ == "__main__":
    main()
