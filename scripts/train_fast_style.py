"""Train notebook 12's fast style-transfer network: one transformer network (Johnson et al. 2016)
for the three paintings, with conditional instance normalization (Dumoulin et al. 2017).

    python scripts/train_fast_style.py                 # the network in tp_utils/data/fast_style/

The defaults are the shipped network's: 12 channels, 3 residual blocks, 4000 steps of 12 crops of
256 px; 217 s on an H100. On a 2-core CPU that run would take about a day; a CPU budget version,
``--steps 1500 --batch 3 --size 128 --photo-size 160`` (43 minutes), paints blobs rather than
strokes (12 · Q5). Where the 22 MB of labelled photos cannot go (a GPU machine reached by
copying a few MB), ``--export-photos FOLDER`` writes the training photos as JPEG files first and
``--photos FOLDER`` trains on them (that is how the shipped network was trained; its record says so).

It trains with notebook 12's own definitions, read from the solution notebook's export cells (the
conditional instance normalization, the perceptual loss and its layers and weights: notebook 11's
losses), and notebook 10's Gram matrix and notebook 09's TV loss through the door (`tp_utils.answers`). The network's
architecture is `tp_utils.transformer_net`. Data: random crops of the labelled ImageNet photos
(every tenth photo held out) and of the sample photos; the content photos for style transfer
(tubingen, golden_gate, hoovertowernight) are never seen. It writes the state dict (``.pt``, load
it with ``torch.load(..., weights_only=True)``) and a record (``.json``): configuration, data,
seed, steps, the exact command, its run time, the final losses and the network's output for a
fixed input (``tests/test_notebook12.py`` checks the stored network against it).
Needs TP_DATA_DIR (or a network) for the photos, the paintings and SqueezeNet.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tp_utils as tp  # noqa: E402
from tp_utils import transformer_net  # noqa: E402
from tp_utils.answers import earlier  # noqa: E402
from tp_utils.notebook import load_exports  # noqa: E402

NOTEBOOK = ROOT / "solutions" / "12_fast_style_transfer.ipynb"
SAMPLE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "grace_hopper", "china",
                 "flower")
HELD_OUT_EVERY = 10  # labelled photos 0, 10, 20, ... are never used for training


def notebook12():
    """Notebook 12's export cells, with what its door gives it: notebook 10's Gram matrix and
    notebook 09's TV loss (all from solutions/)."""
    nb = load_exports(NOTEBOOK)
    nb.gram_matrix = earlier("gram_matrix", folder=ROOT / "solutions")
    nb.tv_loss = earlier("tv_loss", folder=ROOT / "solutions")
    return nb


def export_photos(folder: Path, size: int) -> None:
    """Write the training photos, resized and cropped to ``size``, as JPEG files (quality 95) in ``folder`` with a
    ``photos.json`` list (names, held-out photos): ``--photos folder`` trains on them where the
    labelled photos cannot go (a GPU machine that takes a few MB of data, not the 22 MB of photos)."""
    photos, names, held_out = training_photos(size)
    folder.mkdir(parents=True, exist_ok=True)
    for i, photo in enumerate(photos):
        Image.fromarray((tp.deprocess(photo) * 255).round().astype("uint8")).save(folder / f"{i:03d}.jpg", quality=95)
    (folder / "photos.json").write_text(json.dumps({"size": size, "names": names, "held out": held_out}))
    print(f"wrote {len(photos)} photos of {size} px to {folder}")


def exported_photos(folder: Path, size: int) -> tuple[torch.Tensor, list[str], list[str]]:
    """What :func:`training_photos` gives, read back from :func:`export_photos`'s folder (JPEG at
    quality 95: the same photos up to a compression error of a few grey levels per pixel)."""
    manifest = json.loads((folder / "photos.json").read_text())
    if manifest["size"] != size:
        raise SystemExit(f"{folder} holds photos of {manifest['size']} px, not --photo-size {size}")
    photos = torch.cat([tp.preprocess(folder / f"{i:03d}.jpg", size=None) for i in range(len(manifest["names"]))])
    return photos, manifest["names"], manifest["held out"]


def training_photos(size: int) -> tuple[torch.Tensor, list[str], list[str]]:
    """(photos (P, 3, size, size), their names, the held-out labelled photos' names)."""
    labelled = tp.labelled_set(size=size)
    keep = [i for i in range(len(labelled)) if i % HELD_OUT_EVERY != 0]
    held_out = [labelled.files[i] for i in range(len(labelled)) if i % HELD_OUT_EVERY == 0]
    samples = torch.cat([tp.preprocess(name, size=size) for name in SAMPLE_PHOTOS])
    photos = torch.cat([labelled.images[keep], samples])
    return photos, [labelled.files[i] for i in keep] + list(SAMPLE_PHOTOS), held_out


def style_grams(nb, model, layers, size: int, device=None) -> dict[str, torch.Tensor]:
    """{layer: (S, C, C)}: the Gram matrices of the paintings, longer side resized to ``size``."""
    grams = {layer: [] for layer in layers}
    with torch.no_grad(), tp.models.feature_extractor(model, layers) as features:
        for painting in tp.PAINTINGS:
            f = features(nb.load_style(painting, longer=size).to(device))
            for layer in layers:
                grams[layer].append(nb.gram_matrix(f[layer])[0])
    return {layer: torch.stack(g) for layer, g in grams.items()}


def check_values(net, n_styles: int) -> dict:
    """The network's output for a fixed input: chelsea at 64 px, each style; mean and standard
    deviation per colour channel, and the output average-pooled to 4 x 4."""
    x = tp.preprocess("chelsea", size=64)
    out = {"input": "tp.preprocess('chelsea', size=64)", "mean": [], "std": [], "pooled": []}
    with torch.no_grad():
        for s in range(n_styles):
            y = net(x, s)[0].double()
            out["mean"].append(y.mean(dim=(1, 2)).tolist())
            out["std"].append(y.std(dim=(1, 2)).tolist())
            out["pooled"].append(torch.nn.functional.adaptive_avg_pool2d(y, 4).flatten().tolist())
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=12, help="crops per step (a multiple of 3: the styles in equal shares)")
    p.add_argument("--size", type=int, default=256, help="side of the training crops")
    p.add_argument("--photo-size", type=int, default=256, help="side the photos are resized and cropped to before cropping")
    p.add_argument("--style-size", type=int, default=256, help="longer side of the paintings for their Gram matrices")
    p.add_argument("--channels", type=int, default=12)
    p.add_argument("--residual", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-end", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's)")
    p.add_argument("--out", type=Path, default=ROOT / "tp_utils" / "data" / "fast_style" / "cin_3styles.pt")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if there is one)")
    p.add_argument("--photos", type=Path, default=None,
                   help="train on the photos that --export-photos wrote to this folder")
    p.add_argument("--export-photos", type=Path, default=None, metavar="FOLDER",
                   help="write the training photos at --photo-size to FOLDER and stop")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.export_photos:
        export_photos(args.export_photos, args.photo_size)
        return 0
    device = torch.device(args.device) if args.device else tp.get_device()

    generator = tp.seed_everything(args.seed)
    nb = notebook12()
    weights = nb.LOSS_WEIGHTS
    layers = list(dict.fromkeys([*weights["content"], *weights["style"]]))
    model = tp.style.loss_network(device=device)  # SqueezeNet with average pooling, as in notebooks 10-11
    if args.photos:
        photos, names, held_out = exported_photos(args.photos, args.photo_size)
    else:
        photos, names, held_out = training_photos(args.photo_size)
    photos = photos.to(device)
    grams = style_grams(nb, model, list(weights["style"]), args.style_size, device)
    n_styles = len(tp.PAINTINGS)
    net = transformer_net.TransformerNet(nb.conditional_instance_norm, n_styles=n_styles,
                                         channels=args.channels, n_residual=args.residual).to(device)
    sample = transformer_net.CropSampler(photos, size=args.size, batch=args.batch, n_styles=n_styles,
                                         generator=generator)
    print(f"{len(photos)} training photos, {transformer_net.n_parameters(net):,} parameters, "
          f"{args.steps} steps of {args.batch} crops of {args.size} px, on {device.type}, {torch.get_num_threads()} threads")
    start = time.perf_counter()
    with tp.models.feature_extractor(model, layers) as features:
        def loss_fn(outputs, contents, style):
            return nb.perceptual_loss(features, outputs, contents, grams,
                                      transformer_net.style_weights(style, len(style), n_styles), weights)

        def log(step, net, losses):
            if (step + 1) % 100 == 0 or step == 0:
                print(f"step {step + 1:5d}  " + "  ".join(f"{k} {v:8.3f}" for k, v in losses.items())
                      + f"  ({time.perf_counter() - start:.0f} s)", flush=True)

        history = transformer_net.train(net, loss_fn, sample, args.steps, lr=args.lr, lr_end=args.lr_end,
                                        callback=log, desc="train")
    seconds = time.perf_counter() - start
    net.eval().cpu()

    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(buffer.getvalue())
    last = history[-100:]
    command = "python scripts/train_fast_style.py" + "".join(
        " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    record = {
        "what": "notebook 12's fast style-transfer network: tp_utils.transformer_net.TransformerNet "
                "with conditional instance normalization, one network for the three paintings",
        "styles": list(tp.PAINTINGS),
        "config": net.config,
        "parameters": transformer_net.n_parameters(net),
        "bytes": len(buffer.getvalue()),
        "loss": {"layers and weights": weights, "style image longer side": args.style_size,
                 "loss network": "tp.style.loss_network(): squeezenet1_0 with average pooling"},
        "training": {
            "command": command, "seed": args.seed, "steps": args.steps, "batch": args.batch,
            "crop size": args.size, "photo size": args.photo_size, "lr": args.lr, "lr_end": args.lr_end,
            "optimizer": "Adam, cosine decay from lr to lr_end",
            "photos": f"{len(photos)}: the labelled ImageNet photos but every {HELD_OUT_EVERY}th "
                      f"({len(photos) - len(SAMPLE_PHOTOS)}) and the sample photos {', '.join(SAMPLE_PHOTOS)}",
            "held out": held_out,
            "photos folder": (f"written by `python scripts/train_fast_style.py --export-photos FOLDER "
                              f"--photo-size {args.photo_size}` (JPEG, quality 95)" if args.photos else None),
            "seconds": round(seconds, 1),
            "machine": (f"{torch.cuda.get_device_name(device)}, " if device.type == "cuda" else "")
                       + f"{platform.machine()}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} "
                       f"torch threads, torch {torch.__version__}",
            "final losses (mean of the last 100 steps)": {k: sum(h[k] for h in last) / len(last) for k in last[0]},
            "first losses": history[0],
        },
        "check": check_values(net, n_styles),
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out} ({record['bytes']:,} bytes) and its record; training took {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
