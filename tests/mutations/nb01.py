"""Notebook 01: plausible wrong answers, and hidden tests for what the self-checks cannot see.

``MUTANTS``: ``(function, what is wrong, code replacing the function's solution region)``; see
``benchmarks/mutations.py``. The ``test_*`` functions are hidden tests of ``tp grade``.
"""
from pathlib import Path

import pytest
import torch

import tp_utils as tp
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[2]

MUTANTS = [
    # ---------------------------------------------------------------- normalize_per_filter
    ("normalize_per_filter", "one min and max for the whole bank, not per filter", """
        return (w - w.min()) / (w.max() - w.min())
    """),
    ("normalize_per_filter", "per (filter, input channel) instead of per filter", """
        lo = w.amin(dim=(2, 3), keepdim=True)
        hi = w.amax(dim=(2, 3), keepdim=True)
        return (w - lo) / (hi - lo + 1e-12)
    """),
    ("normalize_per_filter", "divided by the maximum, minimum not subtracted", """
        return w / w.amax(dim=(1, 2, 3), keepdim=True)
    """),
    ("normalize_per_filter", "minimum subtracted, then divided by the maximum (not the range)", """
        lo = w.amin(dim=(1, 2, 3), keepdim=True)
        hi = w.amax(dim=(1, 2, 3), keepdim=True)
        return (w - lo) / (hi + 1e-12)
    """),
    ("normalize_per_filter", "standardized (mean 0, std 1) instead of scaled to [0, 1]", """
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        std = w.std(dim=(1, 2, 3), keepdim=True)
        return (w - mean) / std
    """),
    ("normalize_per_filter", "normalized in place: the model's weights change", """
        lo = w.amin(dim=(1, 2, 3), keepdim=True)
        hi = w.amax(dim=(1, 2, 3), keepdim=True)
        return w.sub_(lo).div_(hi - lo + 1e-12)
    """),
    ("normalize_per_filter", "wrong axis: min and max over the filters (dim=0)", """
        lo = w.amin(dim=0, keepdim=True)
        hi = w.amax(dim=0, keepdim=True)
        return (w - lo) / (hi - lo + 1e-12)
    """),
    ("normalize_per_filter", "keepdim forgotten: (96,) does not broadcast against (96, 3, 7, 7)", """
        lo = w.amin(dim=(1, 2, 3))
        hi = w.amax(dim=(1, 2, 3))
        return (w - lo) / (hi - lo + 1e-12)
    """),
    # ---------------------------------------------------------------- channel_means
    ("channel_means", "maximum of each map instead of its mean", """
        means, handles = {}, []

        def make_hook(name):
            def hook(module, inputs, output):
                means[name] = output.detach().amax(dim=(2, 3))
            return hook

        try:
            for name in names:
                handles.append(tp.get_layer(model, name).register_forward_hook(make_hook(name)))
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
        return means
    """),
    ("channel_means", "mean over the channels (dim=1) instead of the positions", """
        means, handles = {}, []

        def make_hook(name):
            def hook(module, inputs, output):
                means[name] = output.detach().mean(dim=1)
            return hook

        try:
            for name in names:
                handles.append(tp.get_layer(model, name).register_forward_hook(make_hook(name)))
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
        return means
    """),
    ("channel_means", "sum over the positions instead of the mean", """
        means, handles = {}, []

        def make_hook(name):
            def hook(module, inputs, output):
                means[name] = output.detach().sum(dim=(2, 3))
            return hook

        try:
            for name in names:
                handles.append(tp.get_layer(model, name).register_forward_hook(make_hook(name)))
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
        return means
    """),
    ("channel_means", "the layer's input instead of its output", """
        means, handles = {}, []

        def make_hook(name):
            def hook(module, inputs, output):
                means[name] = inputs[0].detach().mean(dim=(2, 3))
            return hook

        try:
            for name in names:
                handles.append(tp.get_layer(model, name).register_forward_hook(make_hook(name)))
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
        return means
    """),
    ("channel_means", "hooks not removed when the forward pass fails (no try/finally)", """
        means, handles = {}, []

        def make_hook(name):
            def hook(module, inputs, output):
                means[name] = output.detach().mean(dim=(2, 3))
            return hook

        for name in names:
            handles.append(tp.get_layer(model, name).register_forward_hook(make_hook(name)))
        with torch.no_grad():
            model(x)
        for h in handles:
            h.remove()
        return means
    """),
    ("channel_means", "hooks never removed", """
        means = {}

        def make_hook(name):
            def hook(module, inputs, output):
                means[name] = output.detach().mean(dim=(2, 3))
            return hook

        for name in names:
            tp.get_layer(model, name).register_forward_hook(make_hook(name))
        with torch.no_grad():
            model(x)
        return means
    """),
    ("channel_means", "late-binding closure: every hook writes under the last name", """
        means, handles = {}, []
        try:
            for name in names:
                handles.append(tp.get_layer(model, name).register_forward_hook(
                    lambda module, inputs, output: means.__setitem__(name, output.detach().mean(dim=(2, 3)))))
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
        return means
    """),
    ("channel_means", "mean over the batch too: one vector per layer", """
        means, handles = {}, []

        def make_hook(name):
            def hook(module, inputs, output):
                means[name] = output.detach().mean(dim=(0, 2, 3))
            return hook

        try:
            for name in names:
                handles.append(tp.get_layer(model, name).register_forward_hook(make_hook(name)))
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
        return means
    """),
    # ---------------------------------------------------------------- zero_fraction
    ("zero_fraction", "counts the values <= 0", """
        return (a <= 0).float().mean().item()
    """),
    ("zero_fraction", "the number of zeros, not their fraction", """
        return int((a == 0).sum())
    """),
    ("zero_fraction", "fraction of the non-zero entries", """
        return (a != 0).float().mean().item()
    """),
    ("zero_fraction", "near-zero values counted as zeros (|a| < 1e-3)", """
        return (a.abs() < 1e-3).float().mean().item()
    """),
    ("zero_fraction", "the first image only", """
        return (a[0] == 0).float().mean().item()
    """),
    ("zero_fraction", "mean over the first axis only (a tensor, not a number)", """
        return (a == 0).float().mean(dim=0)
    """),
    ("normalize_per_filter", "per-filter minimum, but divided by the whole layer's range", """
        lo = w.amin(dim=(1, 2, 3), keepdim=True)
        return (w - lo) / (w.max() - w.min() + 1e-12)
    """),
    ("channel_means", "mean over the width only (dim=3): one value per row", """
        means, handles = {}, []

        def make_hook(name):
            def hook(module, inputs, output):
                means[name] = output.detach().mean(dim=3)
            return hook

        try:
            for name in names:
                handles.append(tp.get_layer(model, name).register_forward_hook(make_hook(name)))
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
        return means
    """),
    ("zero_fraction", "integer division: 0 unless every entry is zero", """
        return int((a == 0).sum()) // a.numel()
    """),
]


@pytest.fixture(scope="module")
def nb01():
    return load_exports(ROOT / "solutions" / "01_filters_and_activations.ipynb")


def test_normalize_leaves_its_input_alone(nb01):
    w = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    before = w.clone()
    out = nb01.normalize_per_filter(w)
    assert torch.equal(w, before), "normalize_per_filter changed its input (in place): the model's weights"
    assert out.data_ptr() != w.data_ptr()
    ref = torch.stack([(f - f.min()) / (f.max() - f.min()) for f in before])
    assert torch.allclose(out, ref, atol=1e-6)


def test_channel_means_of_a_batch_of_two(nb01, model):
    x = torch.cat([tp.preprocess("coffee", size=96), tp.preprocess("rocket", size=96)])
    means = nb01.channel_means(model, x, ["fire2", "relu1"])
    with torch.no_grad(), tp.capture_activations(model, ["fire2", "relu1"]) as ref:
        model(x)
    assert set(means) == {"fire2", "relu1"}
    for name in ref:
        assert means[name].shape == ref[name].shape[:2]
        assert torch.allclose(means[name], ref[name].mean(dim=(2, 3)), atol=1e-5)


def test_zero_fraction_is_a_float_of_the_whole_tensor(nb01):
    a = torch.zeros(2, 3, 4, 4)
    a[1, :, :2] = 1.0
    value = nb01.zero_fraction(a)
    assert isinstance(value, float) and value == pytest.approx(0.75)
    assert nb01.zero_fraction(torch.tensor([1e-4, 0.0, -1e-4, 2.0])) == pytest.approx(0.25)
