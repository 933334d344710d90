"""Style transfer's run time: the course's loop against a plain PyTorch loop, same network, same size.

    python benchmarks/style_transfer.py [--net vgg19|squeezenet] [--size 512] [--steps 300] [--device cuda]

Gatys et al.'s setting: VGG-19 to relu5_1 (Gram matrices at relu1_1 ... relu5_1, content at
relu4_2), a 512 px image (512 x 384, the Tübingen photo's shape), Adam. Both loops compute the
same loss on the same network and take the same steps:

- "plain": a hand-written loop over ``vgg.features`` that keeps the outputs it needs and stops at
  relu5_1, then ``loss.backward()``, ``opt.step()``, ``x.clamp_()``;
- "course": notebook 11's way, ``tp.models.feature_extractor`` (hooks, stops at the deepest layer)
  and ``tp.optimize.optimize`` with a pixel image and the ``clamp_pixels`` callback.

The ratio course / plain should be close to 1 (the course's loop adds hooks and bookkeeping, no
extra pass). The timing does not depend on the weights: VGG-19's pretrained weights are used when
torchvision has them cached, random ones otherwise (the output says which). Reference measured on
an H100: the plain loop takes 1.6-1.8 s for 300 steps at 512 px with PyTorch's
defaults. On a laptop CPU use ``--size 128 --steps 10``.
"""
import argparse
import os
import time

import torch

os.environ.setdefault("TQDM_DISABLE", "1")
import tp_utils as tp  # noqa: E402
from tp_utils.optimize import clamp_pixels, optimize, pixel_image  # noqa: E402

VGG_STYLE = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
VGG_CONTENT = "relu4_2"
SQUEEZE_STYLE = ["relu1", "fire2", "fire3", "fire5", "fire7", "fire9"]
SQUEEZE_CONTENT = "fire5"


def gram(f):
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def network(name, device):
    if name == "squeezenet":
        from tp_utils import style
        return style.loss_network(device=device), SQUEEZE_STYLE, SQUEEZE_CONTENT, "pretrained"
    try:
        net = tp.load_model("vgg19", device=device)
        weights = "pretrained"
    except tp.WeightsUnavailableError:
        net = tp.load_model("vgg19", pretrained=False, device=device)
        weights = "random weights (timing only)"
    return net, VGG_STYLE, VGG_CONTENT, weights


def loss_of(feats, targets, content_layer, style_layers, beta=20.0):
    # notebook 11's loss without TV: relative content error + beta * mean relative Gram error
    content, grams = targets
    c = content[content_layer]
    loss = (feats[content_layer] - c).pow(2).sum() / c.pow(2).sum()
    for layer in style_layers:
        a = grams[layer]
        loss = loss + beta / len(style_layers) * (gram(feats[layer]) - a).pow(2).sum() / a.pow(2).sum()
    return loss


def plain_features(net, x, wanted):
    """A forward pass over ``net.features`` by hand: the outputs of the wanted modules, stopping at
    the deepest of them."""
    aliases = tp.models.layer_names(net)
    index = {int(aliases[w].split(".")[1]): w for w in wanted}
    out = {}
    for i, module in enumerate(net.features):
        x = module(x)
        if i in index:
            out[index[i]] = x
            if len(out) == len(index):
                break
    return out


def run(args):
    device = torch.device(args.device) if args.device else tp.get_device()
    net, style_layers, content_layer, weights = network(args.net, device)
    layers = [content_layer] + style_layers
    photo = tp.preprocess("tubingen", size=round(args.size * 3 / 4), crop=False).to(device)
    painting = tp.preprocess("starry_night", size=round(args.size * 3 / 4), crop=False).to(device)
    with torch.no_grad():
        fp, fs = plain_features(net, photo, layers), plain_features(net, painting, layers)
    targets = ({content_layer: fp[content_layer]}, {l: gram(fs[l]) for l in style_layers})

    def plain():
        x = photo.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=args.lr)
        low, high = tp.clamp_normalized(torch.full_like(x, -1e9)), tp.clamp_normalized(torch.full_like(x, 1e9))
        for _ in range(args.steps):
            opt.zero_grad(set_to_none=True)
            loss = loss_of(plain_features(net, x, layers), targets, content_layer, style_layers)
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.copy_(torch.maximum(torch.minimum(x, high), low))
        return float(loss.detach())

    def course():
        with tp.models.feature_extractor(net, layers) as features:
            result = optimize(pixel_image(init=photo), lambda x: loss_of(features(x), targets, content_layer,
                                                                          style_layers),
                              steps=args.steps, lr=args.lr, callbacks=[clamp_pixels()], desc="course loop")
        return float(result.losses[-1])

    print(f"{args.net} ({weights}) on {device.type}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f", {torch.get_num_threads()} threads")
          + f", torch {torch.__version__}: image {photo.shape[-1]} x {photo.shape[-2]} px, {args.steps} Adam steps")
    plain_steps, args.steps = args.steps, 3
    plain(), course()  # warm-up (cuDNN algorithm choice, allocator)
    args.steps = plain_steps
    times = {"plain": [], "course": []}
    for _ in range(args.rounds):
        for name, fn in (("plain", plain), ("course", course)):
            sync(device)
            start = time.perf_counter()
            final = fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
            print(f"  {name:6s} {times[name][-1]:7.2f} s   final loss {final:.4g}")
    best = {k: min(v) for k, v in times.items()}
    print(f"best of {args.rounds}: plain {best['plain']:.2f} s, course {best['course']:.2f} s, "
          f"ratio course / plain {best['course'] / best['plain']:.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--net", choices=["vgg19", "squeezenet"], default="vgg19")
    p.add_argument("--size", type=int, default=512, help="the image's longer side (the shorter is 3/4 of it)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--device", default=None)
    run(p.parse_args())


if __name__ == "__main__":
    main()
