"""Attribution methods of notebooks 04-05 against captum: largest relative difference and time.

    python benchmarks/attribution.py

For the default SqueezeNet (224 px, chelsea and coffee) and VGG16 with random
weights (64 px: the real-size VGG16 is 15 GFLOPs a pass on a CPU), prints for
each method max |ours - captum| / max |captum| and the seconds each took.
Needs the dev extra (captum).
"""
import time
from pathlib import Path

import torch
from captum import attr

import tp_utils as tp
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[1]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main():
    nb04 = load_exports(ROOT / "solutions" / "04_saliency.ipynb")
    nb05 = load_exports(ROOT / "solutions" / "05_guided_backprop.ipynb")
    torch.manual_seed(0)
    cases = [
        (tp.load_model(), ["chelsea", "coffee"], 224, "fire9", 32),
        (tp.load_model("vgg16", pretrained=False), ["chelsea", "rocket"], 64, "relu5_3", 8),
    ]
    print(f"{'model':14s} {'method, image':30s} {'max rel. diff':>13s} {'ours (s)':>9s} {'captum (s)':>10s}")
    for model, names, size, layer, steps in cases:
        for name in names:
            x = tp.preprocess(name, size=size)
            with torch.no_grad():
                c = int(model(x).argmax())
            xr = x.clone().requires_grad_()
            pairs = {
                "gradient": (lambda: nb04.class_gradient(model, x, c),
                             lambda: attr.Saliency(model).attribute(xr, target=c, abs=False)),
                "guided backprop": (lambda: nb05.unit_gradient(model, x, None, (c,), guided=True),
                                    lambda: attr.GuidedBackprop(model).attribute(xr, target=c)),
                "Integrated Gradients": (lambda: nb04.integrated_gradients(model, x, c, steps=steps),
                                         lambda: attr.IntegratedGradients(model).attribute(
                                             x, target=c, n_steps=steps, method="riemann_middle")),
                "Grad-CAM": (lambda: nb04.grad_cam(model, x, c, layer),
                             lambda: attr.LayerGradCam(model, tp.get_layer(model, layer)).attribute(
                                 xr, target=c, relu_attributions=True)[:, 0]),
            }
            for method, (ours_fn, ref_fn) in pairs.items():
                ours, t_ours = timed(ours_fn)
                ref, t_ref = timed(ref_fn)
                diff = float((ours - ref.detach()).abs().max() / ref.detach().abs().max())
                print(f"{model.name:14s} {method + ', ' + name:30s} {diff:13.2e} {t_ours:9.3f} {t_ref:10.3f}")


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    main()
