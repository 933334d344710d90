"""Notebook 03: plausible wrong answers, and hidden tests for what the self-checks cannot see.

``MUTANTS``: ``(function, what is wrong, code replacing the function's solution region)``; see
``benchmarks/mutations.py``. The ``test_*`` functions are hidden tests of ``tp grade``: cheap ones,
on toy inputs (the captum and gradient-support tests of tests/test_notebooks_01_03.py run too).
"""
from pathlib import Path

import pytest
import torch
from torch import nn

from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[2]


def _fields(update, record_first=False, prefixes='("features", "classifier")', jump="j * s"):
    """The receptive-field recursion with one step changed (to write the mutants below)."""
    record = ['name = alias.get(f"{prefix}.{i}")',
              "if name is not None:",
              "    fields[name] = (r, j, o)"]
    geometry = ["geometry = tp.patches.layer_geometry(module)",
                "if geometry is not None:",
                "    k, s, p = geometry"] + ["    " + u for u in update.replace("JUMP", jump).split("; ")]
    body = record + geometry if record_first else geometry + record
    return "\n".join(["r, j, o = 1, 1, 0.0",
                      f"for prefix in {prefixes}:",
                      "    for i, module in enumerate(getattr(model, prefix)):",
                      "        if isinstance(module, nn.AdaptiveAvgPool2d):",
                      "            continue"] + ["        " + line for line in body])


RIGHT = "r, o, j = r + (k - 1) * j, o + ((k - 1) / 2 - p) * j, JUMP"

OCCLUSION = """
    drops = []
    with torch.no_grad():
        p0 = model(x).softmax(dim=1)[0, target]
        for start in range(0, len(positions), batch_size):
            chunk = positions[start:start + batch_size]
            batch = x.repeat(len(chunk), 1, 1, 1)
            for i, (y, x0) in enumerate(chunk):
                batch[i, :, y:y + window, x0:x0 + window] = baseline
            drops.append(p0 - model(batch).softmax(dim=1)[:, target])
    drops = torch.cat(drops).cpu()
    total, count = torch.zeros(H, W), torch.zeros(H, W)
    for (y, x0), d in zip(positions, drops):
        total[y:y + window, x0:x0 + window] += d
        count[y:y + window, x0:x0 + window] += 1
    pixel_map = total / count.clamp(min=1)
    return drops.view(len(ys), len(xs)), pixel_map
"""


def _occlusion(old, new):
    assert old in OCCLUSION, old
    return OCCLUSION.replace(old, new)


MUTANTS = [
    # ---------------------------------------------------------------- receptive_fields
    ("receptive_fields", "off by one: the size grows by k * jump", _fields(
        "r, o, j = r + k * j, o + ((k - 1) / 2 - p) * j, j * s")),
    ("receptive_fields", "jump updated before the size and offset", _fields(
        "j = j * s; r, o = r + (k - 1) * j, o + ((k - 1) / 2 - p) * j")),
    ("receptive_fields", "padding ignored in the offset", _fields(
        "r, o, j = r + (k - 1) * j, o + (k - 1) / 2 * j, j * s")),
    ("receptive_fields", "offset moves the wrong way", _fields(
        "r, o, j = r + (k - 1) * j, o - ((k - 1) / 2 - p) * j, j * s")),
    ("receptive_fields", "offset step not scaled by the jump", _fields(
        "r, o, j = r + (k - 1) * j, o + ((k - 1) / 2 - p), j * s")),
    ("receptive_fields", "size step not scaled by the jump", _fields(
        "r, o, j = r + (k - 1), o + ((k - 1) / 2 - p) * j, j * s")),
    ("receptive_fields", "each layer's field recorded before its own update", _fields(RIGHT, record_first=True)),
    ("receptive_fields", "the classifier's layers ignored (no conv10)", _fields(RIGHT, prefixes='("features",)')),
    ("receptive_fields", "the layer's own stride instead of the cumulative jump", _fields(RIGHT, jump="s")),
    ("receptive_fields", "jump: stride added instead of multiplied", _fields(RIGHT, jump="j + s")),
    # ---------------------------------------------------------------- top_activations
    ("top_activations", "not one per image: the k largest values overall", """
        flat = maps.flatten().topk(k).indices
        per_image, width = maps[0].numel(), maps.shape[-1]
        return [(int(f) // per_image, int(f) % per_image // width, int(f) % width) for f in flat]
    """),
    ("top_activations", "(x, y) instead of (y, x)", """
        best, where = maps.flatten(1).max(dim=1)
        images = best.argsort(descending=True)[:k]
        width = maps.shape[-1]
        return [(int(n), int(where[n]) % width, int(where[n]) // width) for n in images]
    """),
    ("top_activations", "row and column from the height instead of the width", """
        best, where = maps.flatten(1).max(dim=1)
        images = best.argsort(descending=True)[:k]
        height = maps.shape[-2]
        return [(int(n), int(where[n]) // height, int(where[n]) % height) for n in images]
    """),
    ("top_activations", "smallest maxima first", """
        best, where = maps.flatten(1).max(dim=1)
        images = best.argsort()[:k]
        width = maps.shape[-1]
        return [(int(n), int(where[n]) // width, int(where[n]) % width) for n in images]
    """),
    ("top_activations", "k ignored: every image", """
        best, where = maps.flatten(1).max(dim=1)
        images = best.argsort(descending=True)
        width = maps.shape[-1]
        return [(int(n), int(where[n]) // width, int(where[n]) % width) for n in images]
    """),
    ("top_activations", "the rank instead of the image's index", """
        best, where = maps.flatten(1).max(dim=1)
        images = best.argsort(descending=True)[:k]
        width = maps.shape[-1]
        return [(rank, int(where[n]) // width, int(where[n]) % width) for rank, n in enumerate(images)]
    """),
    # ---------------------------------------------------------------- occlusion_map
    ("occlusion_map", "drop with the wrong sign (occluded minus original)", _occlusion(
        "drops.append(p0 - model(batch).softmax(dim=1)[:, target])",
        "drops.append(model(batch).softmax(dim=1)[:, target] - p0)")),
    ("occlusion_map", "scores instead of probabilities", _occlusion(
        "p0 = model(x).softmax(dim=1)[0, target]", "p0 = model(x)[0, target]").replace(
        "model(batch).softmax(dim=1)[:, target]", "model(batch)[:, target]")),
    ("occlusion_map", "baseline ignored: windows always set to 0", _occlusion(
        "x0:x0 + window] = baseline", "x0:x0 + window] = 0.0")),
    ("occlusion_map", "the mask's size taken from the stride", _occlusion(
        "batch[i, :, y:y + window, x0:x0 + window] = baseline", "batch[i, :, y:y + stride, x0:x0 + stride] = baseline")),
    ("occlusion_map", "pixel map: sum of the drops, not their mean", _occlusion(
        "pixel_map = total / count.clamp(min=1)", "pixel_map = total")),
    ("occlusion_map", "windows that stick out at the border skipped instead of clipped", _occlusion(
        "    drops = []\n", "    positions = [(y, x0) for y, x0 in positions if y + window <= H and x0 + window <= W]\n"
                          "    drops = []\n")),
    ("occlusion_map", "pixel map divided by the interior count (window / stride)^2, wrong at the border",
     _occlusion("pixel_map = total / count.clamp(min=1)", "pixel_map = total / (window / stride) ** 2")),
    ("occlusion_map", "y and x swapped in the mask", _occlusion(
        "batch[i, :, y:y + window, x0:x0 + window] = baseline", "batch[i, :, x0:x0 + window, y:y + window] = baseline")),
    ("occlusion_map", "only the first batch of windows", _occlusion(
        "for start in range(0, len(positions), batch_size):", "for start in range(0, batch_size, batch_size):")),
    ("occlusion_map", "1 - p(occluded) instead of the drop from p(x)", _occlusion(
        "drops.append(p0 - model(batch)", "drops.append(1 - model(batch)")),
    ("occlusion_map", "softmax over the batch axis", _occlusion(
        "p0 = model(x).softmax(dim=1)[0, target]", "p0 = model(x).softmax(dim=0)[0, target]").replace(
        "model(batch).softmax(dim=1)[:, target]", "model(batch).softmax(dim=0)[:, target]")),
    ("occlusion_map", "pixel map: mean over all the windows, not those covering the pixel", _occlusion(
        "pixel_map = total / count.clamp(min=1)", "pixel_map = total / len(positions)")),
    ("receptive_fields", "half-kernel k / 2 instead of (k - 1) / 2 in the offset", _fields(
        "r, o, j = r + (k - 1) * j, o + (k / 2 - p) * j, JUMP")),
    ("top_activations", "one per image, but in image order, not strongest first", """
        best, where = maps.flatten(1).max(dim=1)
        images = sorted(best.argsort(descending=True)[:k].tolist())
        width = maps.shape[-1]
        return [(int(n), int(where[n]) // width, int(where[n]) % width) for n in images]
    """),
    ("occlusion_map", "baseline added to the window instead of replacing it", _occlusion(
        "x0:x0 + window] = baseline", "x0:x0 + window] += baseline")),
]


@pytest.fixture(scope="module")
def nb03():
    return load_exports(ROOT / "solutions" / "03_patches_and_occlusion.ipynb")


def test_receptive_fields_after_padding_and_in_the_classifier(nb03, model):
    fields = nb03.receptive_fields(model)
    # fire2's widest branch is a 3x3 convolution with padding 1 after pool1 (11, 4, 5.0):
    # size 11 + 2 * 4, jump 4, and the padding keeps the offset where it was
    assert fields["fire2"] == (19, 4, 5.0)
    assert fields["pool4"] == (43, 8, 9.0)
    assert fields["conv10"] == fields["fire9"] == (155, 16, 17.0)  # conv10 is 1x1


def test_top_activations_on_wide_maps(nb03):
    maps = torch.zeros(4, 3, 5)            # height 3, width 5: row = index // 5
    maps[0, 2, 1], maps[0, 0, 4] = 8, 7.5  # two large values in image 0: one per image counts
    maps[1, 1, 3] = 9
    maps[3, 0, 2] = 2
    assert nb03.top_activations(maps, 3) == [(1, 1, 3), (0, 2, 1), (3, 0, 2)]


class _Linear(nn.Module):
    """Two class scores, linear in the image: occlusion drops are easy to compute by hand."""

    def __init__(self, shape):
        super().__init__()
        self.w = torch.randn((2,) + shape, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        return torch.einsum("nchw,kchw->nk", x, self.w)


@pytest.mark.parametrize("window,stride,baseline", [(4, 3, -0.5), (5, 5, 0.3)])
def test_occlusion_against_a_loop(nb03, window, stride, baseline):
    # a 3 x 9 x 11 image: windows stick out at the bottom and the right, and 5 x 4 positions
    # need several batches of 3
    x = torch.randn(1, 3, 9, 11, generator=torch.Generator().manual_seed(1))
    model = _Linear((3, 9, 11))
    drops, pixel_map = nb03.occlusion_map(model, x, 1, window=window, stride=stride, baseline=baseline,
                                          batch_size=3)
    p0 = model(x).softmax(dim=1)[0, 1]
    ys, xs = range(0, 9 - window + stride, stride), range(0, 11 - window + stride, stride)
    ref = torch.zeros(len(ys), len(xs))
    total, count = torch.zeros(9, 11), torch.zeros(9, 11)
    for a, y in enumerate(ys):
        for b, x0 in enumerate(xs):
            occluded = x.clone()
            occluded[..., y:y + window, x0:x0 + window] = baseline
            ref[a, b] = p0 - model(occluded).softmax(dim=1)[0, 1]
            total[y:y + window, x0:x0 + window] += ref[a, b]
            count[y:y + window, x0:x0 + window] += 1
    assert drops.shape == ref.shape
    assert torch.allclose(drops, ref, atol=1e-6)
    assert torch.allclose(pixel_map, total / count, atol=1e-6)
