"""The two offline ImageNet networks: forward and forward+backward cost at 224 px (CPU or GPU).

    python benchmarks/models.py [--batch 1 8] [--repeats 5]

Prints the median time of each, and EfficientNet-Lite0's cost against SqueezeNet's.
"""
import argparse
import statistics
import time

import torch

import tp_utils as tp


def timed(fn, repeats, device):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = tp.get_device()
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for batch in args.batch:
        x = torch.randn(batch, 3, 224, 224, device=device)
        cost = {}
        for name in ["squeezenet1_0", "efficientnet_lite0"]:
            model = tp.load_model(name, device=device)

            def forward():
                with torch.no_grad():
                    model(x)

            def backward():
                xi = x.clone().requires_grad_(True)
                model(xi).max(dim=1).values.sum().backward()

            cost[name] = timed(forward, args.repeats, device), timed(backward, args.repeats, device)
            print(f"batch {batch:2d}  {name:18s} forward {1000 * cost[name][0]:7.1f} ms   "
                  f"forward+backward (to the pixels) {1000 * cost[name][1]:7.1f} ms")
        ratio = [e / s for e, s in zip(cost["efficientnet_lite0"], cost["squeezenet1_0"])]
        print(f"batch {batch:2d}  EfficientNet-Lite0 / SqueezeNet: forward x{ratio[0]:.1f}, "
              f"forward+backward x{ratio[1]:.1f}")


if __name__ == "__main__":
    main()
