"""The 1000 ImageNet class names (torchvision's list): index -> name and name -> index."""
from __future__ import annotations

import difflib
from functools import lru_cache

from torchvision.models import SqueezeNet1_0_Weights


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The class names, in the order of the models' 1000 outputs."""
    return tuple(SqueezeNet1_0_Weights.IMAGENET1K_V1.meta["categories"])


def class_name(index: int) -> str:
    """Name of ImageNet class ``index`` (0..999)."""
    names = imagenet_classes()
    if isinstance(index, bool) or not isinstance(index, int) and not hasattr(index, "__index__"):
        raise TypeError(f"a class index must be an integer, got {type(index).__name__}")
    index = int(index)
    if not 0 <= index < len(names):
        raise IndexError(f"class index {index} is out of range: ImageNet has classes 0..{len(names) - 1}")
    return names[index]


def class_index(name: str | int) -> int:
    """Index of an ImageNet class from its name or index.

    Names are matched exactly, then case-insensitively (one pair differs only by
    case: "Cardigan", the dog, 264, and "cardigan", the sweater, 474). An unknown
    name raises ``KeyError`` listing the closest names.
    """
    if not isinstance(name, str):
        class_name(name)  # validates type and range
        return int(name)
    names = imagenet_classes()
    key = " ".join(name.replace("_", " ").split())
    if key in names:  # exact match first: "Cardigan" (the dog) vs "cardigan" (the sweater)
        return names.index(key)
    matches = [i for i, n in enumerate(names) if n.lower() == key.lower()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise KeyError(f"{name!r} is ambiguous: " + ", ".join(f"{names[i]!r} = {i}" for i in matches)
                       + "; write the name with its exact case, or pass the index")
    lookup = {n.lower(): i for i, n in enumerate(names)}
    key = key.lower()
    close = difflib.get_close_matches(key, lookup, n=5, cutoff=0.6)
    close += [n for n in lookup if key and key in n and n not in close][: 5 - len(close)]
    hint = f"; did you mean {', '.join(repr(names[lookup[c]]) for c in close)}?" if close else ""
    raise KeyError(f"{name!r} is not an ImageNet class name{hint} "
                   "(see tp_utils.imagenet_classes() for the full list)")
