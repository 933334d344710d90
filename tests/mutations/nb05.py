"""Notebook 05: plausible wrong answers, and hidden tests for what the self-check cannot see.

``MUTANTS``: ``(function, what is wrong, code replacing the function's solution region)``; see
``benchmarks/mutations.py``. The ``test_*`` functions are hidden tests of ``tp grade``: cheap ones,
on tiny networks (the captum comparisons of tests/test_notebooks_04_05.py run too).
"""
from pathlib import Path

import pytest
import torch
from torch import nn

from tp_tools.mutants import edit
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[2]

UNIT_GRADIENT = """
    def positive_part(module, grad_input, grad_output):
        return (grad_input[0].clamp(min=0),)

    try:
        if guided:
            for module in model.modules():
                if isinstance(module, nn.ReLU):
                    handles.append(module.register_full_backward_hook(positive_part))
        if layer is None:
            out = model(x)
        else:
            with tp.capture_activations(model, layer, detach=False) as acts:
                model(x)
            out = acts[layer]
        out[(slice(None),) + tuple(unit)].sum().backward()
    finally:
        for handle in handles:
            handle.remove()
"""


def _edit(*pairs):
    return edit(UNIT_GRADIENT, *pairs)


MUTANTS = [
    ("unit_gradient", "guided rule keeps the negative gradients (no clamp)", _edit(
        ("return (grad_input[0].clamp(min=0),)", "return (grad_input[0],)"))),
    ("unit_gradient", "deconvnet rule: the ReLU's output gradient clamped, its mask dropped", _edit(
        ("return (grad_input[0].clamp(min=0),)", "return (grad_output[0].clamp(min=0),)"))),
    ("unit_gradient", "hooks not removed when the backward pass fails (no try/finally)", """
        def positive_part(module, grad_input, grad_output):
            return (grad_input[0].clamp(min=0),)

        if guided:
            for module in model.modules():
                if isinstance(module, nn.ReLU):
                    handles.append(module.register_full_backward_hook(positive_part))
        if layer is None:
            out = model(x)
        else:
            with tp.capture_activations(model, layer, detach=False) as acts:
                model(x)
            out = acts[layer]
        out[(slice(None),) + tuple(unit)].sum().backward()
        for handle in handles:
            handle.remove()
    """),
    ("unit_gradient", "hooks never removed", _edit(
        ("        for handle in handles:\n            handle.remove()", "        pass"))),
    ("unit_gradient", "abs instead of clamp in the guided rule", _edit(
        ("return (grad_input[0].clamp(min=0),)", "return (grad_input[0].abs(),)"))),
    ("unit_gradient", "only the first image's unit", _edit(
        ("out[(slice(None),) + tuple(unit)].sum().backward()", "out[(0,) + tuple(unit)].backward()"))),
    ("unit_gradient", "the unit tuple used as a list of channels", _edit(
        ("out[(slice(None),) + tuple(unit)].sum().backward()", "out[:, list(unit)].sum().backward()"))),
    ("unit_gradient", "guided rule applied even when guided=False", _edit(
        ("        if guided:\n", "        if True:\n"))),
    ("unit_gradient", "the whole layer's sum instead of the unit", _edit(
        ("out[(slice(None),) + tuple(unit)].sum().backward()", "out.sum().backward()"))),
    ("unit_gradient", "guided rule hooked on every module, not only on the ReLUs", _edit(
        ("                if isinstance(module, nn.ReLU):\n                    handles.append(",
         "                if True:\n                    handles.append("))),
    ("unit_gradient", "mean over the batch instead of the sum", _edit(
        ("out[(slice(None),) + tuple(unit)].sum().backward()", "out[(slice(None),) + tuple(unit)].mean().backward()"))),
    ("unit_gradient", "unit indexed without the batch dimension", _edit(
        ("out[(slice(None),) + tuple(unit)].sum().backward()", "out[tuple(unit)].sum().backward()"))),
    ("unit_gradient", "activations captured detached: no gradient reaches the input", _edit(
        ("tp.capture_activations(model, layer, detach=False)", "tp.capture_activations(model, layer)"))),
]


@pytest.fixture(scope="module")
def nb05():
    return load_exports(ROOT / "solutions" / "05_guided_backprop.ipynb")


def _tiny(w1, w2):
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False)).requires_grad_(False)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(w1))
        net[2].weight.copy_(torch.tensor(w2))
    return net


def test_guided_keeps_the_relu_mask_and_negative_input_gradients(nb05):
    # x = (1, -1): the second hidden unit is off; the output's gradient reaches it positive
    net = _tiny([[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0]])
    x = torch.tensor([[1.0, -1.0]])
    assert nb05.unit_gradient(net, x, None, (0,), guided=True).tolist() == [[1.0, 0.0]]  # not deconvnet's [1, 1]
    # a linear layer before the ReLU may turn positive gradients negative: guided backprop keeps that
    net = _tiny([[1.0, -2.0], [0.0, 1.0]], [[1.0, 1.0]])
    x = torch.tensor([[3.0, 1.0]])
    assert nb05.unit_gradient(net, x, None, (0,), guided=True).tolist() == [[1.0, -1.0]]


def test_unit_gradient_of_a_feature_map_unit_for_each_image(nb05):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1)).requires_grad_(False)
    x = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    ours = nb05.unit_gradient(net, x, "2", (1, 2, 3))
    ref = x.clone().requires_grad_(True)
    net(ref)[:, 1, 2, 3].sum().backward()
    assert ours.shape == x.shape
    assert torch.allclose(ours, ref.grad, atol=1e-6)
    assert ours[1].abs().sum() > 0  # the second image has its own gradient


def test_hooks_removed_after_an_error(nb05):
    net = _tiny([[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0]])
    with pytest.raises(IndexError):
        nb05.unit_gradient(net, torch.ones(1, 2), None, (5,), guided=True)
    assert sum(len(m._backward_hooks) + len(m._forward_hooks) for m in net.modules()) == 0
