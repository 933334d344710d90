"""Occlusion speed: many occluded copies per forward pass vs one forward pass per window.

    python benchmarks/occlusion.py [--window 48] [--stride 16]

Prints the time for several numbers of occluded copies per forward pass (1 = one pass per
window), the same with a channels_last model, and the largest difference to captum's Occlusion.
"""
import argparse
import time
from pathlib import Path

import torch

import tp_utils as tp
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=48)
    parser.add_argument("--stride", type=int, default=16)
    args = parser.parse_args()

    nb = load_exports(ROOT / "solutions" / "03_patches_and_occlusion.ipynb")
    model = tp.load_model()
    x = tp.preprocess("chelsea")
    target = tp.class_index("Egyptian cat")
    nb.occlusion_map(model, x, target, args.window, args.stride, batch_size=8)  # warm-up
    n = len(range(0, 224 - args.window + args.stride, args.stride)) ** 2
    print(f"{n} windows of {args.window} px, stride {args.stride}, {torch.get_num_threads()} threads")
    timings = {}
    for batch_size in [1, 4, 16, 64]:
        start = time.perf_counter()
        drops, pixel_map = nb.occlusion_map(model, x, target, args.window, args.stride, batch_size=batch_size)
        timings[batch_size] = time.perf_counter() - start
        print(f"  {batch_size:3d} occluded copies per forward pass: {timings[batch_size]:6.2f} s "
              f"({1000 * timings[batch_size] / n:5.1f} ms per window, "
              f"{timings[1] / timings[batch_size]:.2f}x one pass per window)")
    fast = tp.load_model().to(memory_format=torch.channels_last)
    start = time.perf_counter()
    nb.occlusion_map(fast, x, target, args.window, args.stride, batch_size=4)
    seconds = time.perf_counter() - start
    print(f"  channels_last model, 4 per pass:    {seconds:6.2f} s ({timings[1] / seconds:.2f}x one pass per window)")

    from captum.attr import Occlusion

    start = time.perf_counter()
    ref = Occlusion(lambda inp: model(inp).softmax(dim=1)).attribute(
        x, sliding_window_shapes=(3, args.window, args.window), strides=(3, args.stride, args.stride),
        baselines=0.0, target=target, perturbations_per_eval=16)
    print(f"  captum Occlusion {time.perf_counter() - start:6.2f} s; largest difference to it: "
          f"{(pixel_map - ref[0, 0]).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
