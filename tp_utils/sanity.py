"""The model-randomization sanity check (Adebayo et al. 2018), used by notebooks 04 and 05.

``cascading_randomization`` re-initializes a model's parameter layers from the top down and
compares the maps an attribution method gives before and after, by rank correlation. The
attribution methods themselves are the notebooks' exercises.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from .models import get_layer, layer_names, load_model
from .progress import progress


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two maps; 0 when one of them is constant (it ranks nothing)."""
    from scipy.stats import spearmanr

    a, b = a.detach().flatten().cpu(), b.detach().flatten().cpu()
    if a.min() == a.max() or b.min() == b.max():
        return 0.0
    return float(spearmanr(a, b)[0])


def parameter_layers(model: nn.Module) -> list[str]:
    """The readable names of the layers that hold weights, from the input to the output."""
    return [name for name in layer_names(model)
            if any(True for _ in get_layer(model, name).parameters())]


def randomize_top(model: nn.Module, n: int, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose top ``n`` parameter layers are re-initialized the way
    torchvision initializes them before training (the original model is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = load_model(model.name, pretrained=False)
    copied = copy.deepcopy(model)
    for name in parameter_layers(model)[::-1][:n]:
        get_layer(copied, name).load_state_dict(get_layer(fresh, name).state_dict())
    return copied


def cascading_randomization(model: nn.Module, maps_fn: Callable[[nn.Module], dict],
                            reduce: Callable = lambda m: m):
    """The maps of ``model`` and of its copies randomized from the top down, and their rank
    correlations.

    ``maps_fn(net) -> {name: map}``; ``reduce`` turns a map into what is ranked. Returns
    ``(layers, original, stages, correlations)``: ``stages[k]`` and ``correlations[name][k]`` are
    for ``layers[:k + 1]`` randomized.
    """
    layers = parameter_layers(model)[::-1]
    original = maps_fn(model)
    stages = [maps_fn(randomize_top(model, n))
              for n in progress(range(1, len(layers) + 1), desc="randomizing")]
    correlations = {k: [rank_correlation(reduce(original[k]), reduce(s[k])) for s in stages]
                    for k in original}
    return layers, original, stages, correlations
