"""Notebook 06: plausible wrong answers, and hidden tests for what the self-checks cannot see.

``MUTANTS``: ``(function, what is wrong, code replacing the function's solution region)``; see
``benchmarks/mutations.py``. The ``test_*`` functions are hidden tests of ``tp grade``.
"""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tp_tools.mutants import edit
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[2]

FOOL = """
    for i in range(max_iter + 1):
        xr = x_fool[running].clone().requires_grad_(True)
        scores = model(xr)
        going = scores.argmax(dim=1) != target[running]
        if i == max_iter or not going.any():
            break
        (g,) = torch.autograd.grad(scores.gather(1, target[running][:, None]).sum(), xr)
        g = g[going]
        g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        running = running[going]
        x_fool[running] = tp.clamp_normalized(xr.detach()[going] + eta * g)
        steps[running] += 1
"""
PROJECT = """
    delta = torch.max(torch.min(x_adv - x, eps / std), -eps / std)
    return torch.max(torch.min(x + delta, (1 - mean) / std), -mean / std)
"""
FGSM = """
    loss = F.cross_entropy(model(xg), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, xg)
    _, std = channel_stats(norm, x)
    sign = -1.0 if targeted else 1.0
    return project_linf(x + sign * eps / std * g.sign(), x, eps, norm)
"""
PGD = """
    _, std = channel_stats(norm, x)
    sign = -1.0 if targeted else 1.0
    for _ in range(steps):
        xr = x_adv[running].clone().requires_grad_(True)
        logits = model(xr)
        if early_stop:
            on_y = logits.argmax(dim=1) == y[running]
            going = ~on_y if targeted else on_y
            if not going.any():
                break
        else:
            going = torch.ones(len(running), dtype=torch.bool, device=x.device)
        (g,) = torch.autograd.grad(F.cross_entropy(logits, y[running], reduction="sum"), xr)
        stepped = project_linf(xr.detach() + sign * alpha / std * g.sign(), x[running], eps, norm)
        running = running[going]
        x_adv[running] = stepped[going]
"""


MUTANTS = [
    # ---------------------------------------------------------------- make_fooling_image
    ("make_fooling_image", "gradient not normalized: x + eta * g", edit(
        FOOL, ("        g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)\n", ""))),
    ("make_fooling_image", "normalized by max |g| (L-infinity) instead of the L2 norm", edit(
        FOOL, ("g.flatten(1).norm(dim=1)", "g.flatten(1).abs().amax(dim=1)"))),
    ("make_fooling_image", "one norm for the whole batch", edit(
        FOOL, ("g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)", "g = g / g.norm().clamp_min(1e-12)"))),
    ("make_fooling_image", "gradient of the softmax probability instead of the score", edit(
        FOOL, ("scores.gather(1, target[running][:, None]).sum()", "scores.softmax(dim=1).gather(1, target[running][:, None]).sum()"))),
    ("make_fooling_image", "the attack's sign: it descends the target's score", edit(
        FOOL, ("xr.detach()[going] + eta * g", "xr.detach()[going] - eta * g"))),
    ("make_fooling_image", "no clamp to the valid pixel range", edit(
        FOOL, ("tp.clamp_normalized(xr.detach()[going] + eta * g)", "xr.detach()[going] + eta * g"))),
    ("make_fooling_image", "does not stop once the target is reached", edit(
        FOOL, ("going = scores.argmax(dim=1) != target[running]", "going = torch.ones(len(xr), dtype=torch.bool, device=xr.device)"),
        ("if i == max_iter or not going.any():", "if i == max_iter:"))),
    ("make_fooling_image", "steps counted for the finished images too", edit(
        FOOL, ("        running = running[going]\n        x_fool[running]", "        steps[running] += 1\n        running = running[going]\n        x_fool[running]"),
        ("        steps[running] += 1\n", "", ))),
    ("make_fooling_image", "descends the cross-entropy towards the target instead of ascending its score", edit(
        FOOL, ("(g,) = torch.autograd.grad(scores.gather(1, target[running][:, None]).sum(), xr)",
               "(g,) = torch.autograd.grad(-F.cross_entropy(scores, target[running], reduction='sum'), xr)"))),
    ("make_fooling_image", "one step too many: max_iter + 1 updates", edit(
        FOOL, ("for i in range(max_iter + 1):", "for i in range(max_iter + 2):"), ("if i == max_iter or", "if i == max_iter + 1 or"))),
    # ---------------------------------------------------------------- project_linf, fgsm, pgd
    ("project_linf", "eps not divided by std: normalized units taken for pixels", edit(
        PROJECT, ("torch.min(x_adv - x, eps / std), -eps / std)", "torch.min(x_adv - x, torch.full_like(std, eps)), -torch.full_like(std, eps))"))),
    ("project_linf", "no clip to the valid range", edit(
        PROJECT, ("return torch.max(torch.min(x + delta, (1 - mean) / std), -mean / std)", "return x + delta"))),
    ("project_linf", "eps multiplied by std instead of divided", edit(
        PROJECT, ("eps / std), -eps / std)", "eps * std), -eps * std)"))),
    ("project_linf", "valid range [0, 1] applied to the normalized values", edit(
        PROJECT, ("return torch.max(torch.min(x + delta, (1 - mean) / std), -mean / std)", "return (x + delta).clamp(0, 1)"))),
    ("project_linf", "L2 ball instead of the L-infinity box", """
        d = (x_adv - x) * std
        scale = (eps / d.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp(max=1.0).view(-1, 1, 1, 1)
        return torch.max(torch.min(x + d * scale / std, (1 - mean) / std), -mean / std)
    """),
    ("fgsm", "targeted attack with the untargeted sign", edit(
        FGSM, ("sign = -1.0 if targeted else 1.0", "sign = 1.0"))),
    ("fgsm", "the gradient itself instead of its sign", edit(
        FGSM, ("g.sign()", "g"))),
    ("fgsm", "step eps not divided by std", edit(
        FGSM, ("sign * eps / std * g.sign()", "sign * eps * g.sign()"))),
    ("fgsm", "no projection: the step may leave [0, 1]", edit(
        FGSM, ("return project_linf(x + sign * eps / std * g.sign(), x, eps, norm)", "return (x + sign * eps / std * g.sign()).detach()"))),
    ("fgsm", "mean cross-entropy: fine for the sign, but the wrong class's loss (argmax, not y)", edit(
        FGSM, ('loss = F.cross_entropy(model(xg), y, reduction="sum")',
               'out = model(xg)\n    loss = F.cross_entropy(out, out.argmax(dim=1), reduction="sum")'))),
    ("pgd", "no projection onto the eps-ball, only the valid range", edit(
        PGD, ("stepped = project_linf(xr.detach() + sign * alpha / std * g.sign(), x[running], eps, norm)",
              "stepped = project_linf(xr.detach() + sign * alpha / std * g.sign(), x[running], 1.0, norm)"))),
    ("pgd", "projection around the current iterate instead of the original image", edit(
        PGD, ("g.sign(), x[running], eps, norm)", "g.sign(), xr.detach(), eps, norm)"))),
    ("pgd", "early_stop ignored", edit(
        PGD, ("        if early_stop:\n", "        if False:\n"))),
    ("pgd", "targeted attack with the untargeted sign", edit(
        PGD, ("sign = -1.0 if targeted else 1.0", "sign = 1.0"))),
    ("pgd", "early stop test inverted for targeted attacks", edit(
        PGD, ("going = ~on_y if targeted else on_y", "going = on_y if targeted else ~on_y"))),
    ("pgd", "step alpha not divided by std", edit(
        PGD, ("sign * alpha / std * g.sign()", "sign * alpha * g.sign()"))),
]


@pytest.fixture(scope="module")
def nb06():
    return load_exports(ROOT / "solutions" / "06_adversarial_examples.ipynb")


def test_fooling_stops_after_max_iter_steps(nb06):
    toy = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 5)).requires_grad_(False)
    with torch.no_grad():
        toy[1].weight.copy_(torch.randn(5, 48, generator=torch.Generator().manual_seed(4)))
        toy[1].bias.copy_(torch.tensor([50.0, 0.0, 0.0, 0.0, 0.0]))  # far from the targets: max_iter binds
    x, target = torch.zeros(2, 3, 4, 4), torch.tensor([3, 4])
    x_fool, steps = nb06.make_fooling_image(toy, x, target, eta=0.01, max_iter=3)
    assert steps.tolist() == [3, 3]
    u = toy[1].weight[target] / toy[1].weight[target].norm(dim=1, keepdim=True)
    assert torch.allclose(x_fool.flatten(1), 3 * 0.01 * u, atol=1e-6), "not exactly max_iter steps of eta"


def test_fgsm_and_pgd_on_a_batch_with_a_targeted_toy(nb06):
    toy = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 5)).requires_grad_(False)
    with torch.no_grad():
        toy[1].weight.copy_(torch.randn(5, 48, generator=torch.Generator().manual_seed(5)))
    x = torch.randn(3, 3, 4, 4, generator=torch.Generator().manual_seed(6)) * 0.2
    y = torch.tensor([1, 2, 3])
    _, std = nb06.channel_stats(nb06.IMAGENET, x)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(toy(xg), y, reduction="sum"), xg)
    want = nb06.project_linf(x - 2 / 255 / std * g.sign(), x, 2 / 255)
    assert torch.allclose(nb06.fgsm(toy, x, y, 2 / 255, targeted=True), want, atol=1e-6)
    assert torch.allclose(nb06.pgd(toy, x, y, 2 / 255, 2 / 255, 1, targeted=True), want, atol=1e-6)
