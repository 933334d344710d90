"""Notebook 11's style transfer measured against the reference pictures, with and without jitter.

    TP_ANSWERS_DIR=solutions python benchmarks/style_reference.py [--anchors ../shared/anchors]
        [--height 192] [--steps 100] [--jitter 0 2]

Runs notebook 11's recipe (its exported loss, the loss network with average pooling, Adam from the
photo, pixels clamped; alpha 1, beta 20, gamma 1) on Tübingen in the three styles, once per jitter
setting (``--jitter 2``: before each step the image and the photo's content target are shifted by the
same random offset of up to 2 px, so that no pattern aligned with the network's stride grid is
rewarded), and prints, for each result, for the reference picture of jcjohnson/neural-style (VGG-19,
512 px, L-BFGS 1000 iterations; not part of the course, see ``../shared/anchors/README.md``) and for
the photo:

- **grid**: the power of the grey image's spectrum at the stride frequencies (1/4 and 1/8 cycle per
  pixel, horizontal and vertical) over the median power of the ring of frequencies around each, in dB
  (the largest of the four): about 0 dB for an image without a grid;
- **sky**: the top third's mean colour in CIELAB (scikit-image), its distance (Delta E 1976) to the
  reference's top third and to the photo's: a repainted sky is closer to the reference;
- **layout**: the correlation of the Sobel edge maps (scikit-image) with the photo's, all at the
  result's size; and notebook 11's content error (the loss's content term, alpha = 1).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("TQDM_DISABLE", "1")
import tp_utils as tp  # noqa: E402
from tp_utils import style  # noqa: E402
from tp_utils.notebook import load_exports  # noqa: E402
from tp_utils.optimize import clamp_pixels, optimize, pixel_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAINTINGS = {"starry_night": "starry", "the_scream": "scream", "shipwreck": "shipwreck"}
CONTENT_LAYER = "fire5"
STYLE_LAYERS = ["relu1", "fire2", "fire3", "fire5", "fire7", "fire9"]
ALPHA, BETA, GAMMA, LR = 1.0, 20.0, 1.0, 0.08


def grey(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].mean(axis=-1)


def grid_db(rgb: np.ndarray) -> float:
    """Largest power at the stride frequencies (1/4, 1/8 cycle per pixel) over its ring, in dB."""
    g = grey(rgb)
    g = g - g.mean()
    power = np.abs(np.fft.fft2(g * np.outer(np.hanning(g.shape[0]), np.hanning(g.shape[1])))) ** 2
    fy = np.fft.fftfreq(g.shape[0])[:, None]
    fx = np.fft.fftfreq(g.shape[1])[None, :]
    worst = -np.inf
    for f0 in (0.25, 0.125):
        for ax, ay in ((f0, 0.0), (0.0, f0)):
            d = np.hypot(np.abs(fx) - ax, np.abs(fy) - ay)
            peak = power[d <= 1.0 / min(g.shape)].max()
            ring = power[(d > 2.0 / min(g.shape)) & (d <= 6.0 / min(g.shape))]
            worst = max(worst, 10 * np.log10(peak / np.median(ring)))
    return float(worst)


def sky_lab(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    top = rgb[: rgb.shape[0] // 3, :, :3]
    return rgb2lab(top).reshape(-1, 3).mean(axis=0)


def edges(rgb: np.ndarray, shape) -> np.ndarray:
    from skimage.filters import sobel
    from skimage.transform import resize

    return sobel(resize(grey(rgb), shape, anti_aliasing=True))


def load_png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255


def run(nb, net, photo, paintings, steps, jitter, device):
    """Notebook 11's three transfers as one batch; jitter: random common shift of image and target."""
    grams = {}
    with torch.no_grad(), tp.models.feature_extractor(net, STYLE_LAYERS) as features:
        per = [{l: nb.gram_matrix(f) for l, f in features(p).items()} for p in paintings]
    grams = {l: torch.cat([g[l] for g in per]) for l in STYLE_LAYERS}
    weights = {"content": ALPHA, "tv": GAMMA,
               "style": {l: BETA / (len(STYLE_LAYERS) * a.pow(2).sum(dim=(1, 2))) for l, a in grams.items()}}
    generator = torch.Generator().manual_seed(0)
    n = len(paintings)
    with tp.models.feature_extractor(net, [CONTENT_LAYER] + STYLE_LAYERS) as features:
        shifts = [(dx, dy) for dx in range(-jitter, jitter + 1) for dy in range(-jitter, jitter + 1)]
        with torch.no_grad():
            content = {s: features(tp.regularizers.roll(photo, *s))[CONTENT_LAYER] for s in shifts}

        def objective(x):
            s = shifts[int(torch.randint(len(shifts), (1,), generator=generator))]
            x = tp.regularizers.roll(x, *s)
            targets = {"content": {CONTENT_LAYER: content[s]}, "style": grams}
            return nb.style_transfer_loss(x, features(x), targets, weights)["total"].sum()

        start = time.perf_counter()
        result = optimize(pixel_image(init=photo.repeat(n, 1, 1, 1)), objective, steps=steps, lr=LR,
                          callbacks=[clamp_pixels()])
        seconds = time.perf_counter() - start
        with torch.no_grad():
            f = features(result.image)
            targets = {"content": {CONTENT_LAYER: content[(0, 0)]}, "style": grams}
            reached = nb.style_transfer_loss(result.image, f, targets, weights)
    return result.image, reached, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--anchors", default=str(ROOT.parent / "shared" / "anchors"))
    parser.add_argument("--height", type=int, default=192, help="the photo's shorter side (notebook 11: 192 on a CPU)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--jitter", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()

    device = tp.get_device()
    tp.seed_everything(0)
    nb = load_exports(ROOT / "solutions" / "11_style_transfer.ipynb")
    nb.gram_matrix = tp.answers.earlier("gram_matrix", folder=ROOT / "solutions")
    nb.tv_loss = tp.answers.earlier("tv_loss", folder=ROOT / "solutions")
    net = style.loss_network(device=device)
    photo = tp.preprocess("tubingen", size=args.height, crop=False).to(device)
    paintings = []
    for name in PAINTINGS:
        img = tp.load_image(name)
        shorter = round(photo.shape[-1] * min(img.size) / max(img.size))
        paintings.append(tp.preprocess(img, size=shorter, crop=False).to(device))

    photo_rgb = tp.deprocess(photo[0]).astype(np.float64)
    shape = photo_rgb.shape[:2]
    anchors = {name: load_png(Path(args.anchors) / f"neural-style_tubingen_{short}.png")
               for name, short in PAINTINGS.items()}
    photo_edges = edges(photo_rgb, shape).ravel()
    print(f"{device.type}, Tübingen at {photo.shape[-1]} x {photo.shape[-2]} px, {args.steps} Adam steps")
    print(f"photo: grid {grid_db(photo_rgb):5.1f} dB")
    header = f"{'painting':13s} {'picture':18s} {'grid dB':>7s} {'sky→ref':>8s} {'sky→photo':>9s} {'edge r':>7s} {'content':>8s}"
    print(header)
    for name, rgb in anchors.items():
        sky = sky_lab(rgb)
        r = np.corrcoef(edges(rgb, shape).ravel(), photo_edges)[0, 1]
        print(f"{name:13s} {'reference':18s} {grid_db(rgb):7.1f} {0.0:8.1f} "
              f"{np.linalg.norm(sky - sky_lab(photo_rgb)):9.1f} {r:7.2f} {'':>8s}")
    for jitter in args.jitter:
        images, reached, seconds = run(nb, net, photo, paintings, args.steps, jitter, device)
        for i, name in enumerate(PAINTINGS):
            rgb = tp.deprocess(images[i]).astype(np.float64)
            sky = sky_lab(rgb)
            r = np.corrcoef(edges(rgb, shape).ravel(), photo_edges)[0, 1]
            print(f"{name:13s} {f'course, jitter {jitter}':18s} {grid_db(rgb):7.1f} "
                  f"{np.linalg.norm(sky - sky_lab(anchors[name])):8.1f} "
                  f"{np.linalg.norm(sky - sky_lab(photo_rgb)):9.1f} {r:7.2f} {float(reached['content'][i]):8.2f}")
        print(f"  (jitter {jitter}: {seconds:.1f} s for the three images)")


if __name__ == "__main__":
    main()
