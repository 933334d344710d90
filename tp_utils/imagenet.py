"""The labelled ImageNet photos: 198 classes in ten groups, one photo per class.

The photos (22 MB) are an asset like the paintings: downloaded on first use into
the user cache, or read from ``$TP_DATA_DIR/imagenet-samples/`` (see
:mod:`tp_utils.assets`). Only the notebooks that call :func:`labelled_set` fetch them::

    photos = labelled_set()                 # all 198, as a (198, 3, 224, 224) tensor
    dogs = labelled_set(groups=["dog"])
    photos.images, photos.labels, photos.names, photos.groups
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .assets import IMAGENET_FOLDER, fetch, imagenet_manifest
from .images import load_image, preprocess

GROUPS = ("fish", "bird", "snake", "insect", "dog", "feline", "primate", "road vehicle",
          "musical instrument", "food")


@dataclass
class LabelledSet:
    """Photos with their ImageNet class index, class name and group (same order everywhere).

    ``images`` is a normalized ``(N, 3, size, size)`` tensor (see :func:`tp_utils.preprocess`),
    or, with ``tensors=False``, a list of RGB PIL images at their original size.
    """

    images: torch.Tensor | list
    labels: list[int]
    names: list[str]
    groups: list[str]
    files: list[str] = field(repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def group_ids(self) -> torch.Tensor:
        """``(N,)`` index of each photo's group in :data:`GROUPS` (for colours and same-group rates)."""
        return torch.tensor([GROUPS.index(g) for g in self.groups])

    def subset(self, indices) -> "LabelledSet":
        """The photos at ``indices`` (a list of ints or a boolean mask), in that order."""
        if isinstance(indices, torch.Tensor) and indices.dtype == torch.bool:
            indices = indices.nonzero().flatten().tolist()
        indices = [int(i) for i in indices]
        images = (self.images[indices] if isinstance(self.images, torch.Tensor)
                  else [self.images[i] for i in indices])
        pick = lambda seq: [seq[i] for i in indices]
        return LabelledSet(images, pick(self.labels), pick(self.names), pick(self.groups),
                           pick(self.files))


def labelled_set(groups=None, size: int | None = 224, tensors: bool = True,
                 per_group: int | None = None) -> LabelledSet:
    """The labelled ImageNet photos, in class-index order.

    ``groups``: names from :data:`GROUPS` (default: all ten); ``per_group``: keep only the first
    ``per_group`` photos of each group (a smaller set for quick figures). With ``tensors=True``
    the photos are preprocessed like a classifier expects them (resize the shorter side to
    ``size * 256 / 224``, centre crop ``size``, ImageNet normalization) and stacked.
    """
    groups = list(GROUPS) if groups is None else [groups] if isinstance(groups, str) else list(groups)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown group(s) {unknown}; the groups are: {', '.join(GROUPS)}")
    rows, taken = [], {g: 0 for g in groups}
    for row in imagenet_manifest():
        if row["group"] in taken and (per_group is None or taken[row["group"]] < per_group):
            taken[row["group"]] += 1
            rows.append(row)
    pictures = [load_image(fetch(f"{IMAGENET_FOLDER}/{row['file']}")) for row in rows]
    images = torch.cat([preprocess(p, size=size) for p in pictures]) if tensors else pictures
    return LabelledSet(images, [r["class_index"] for r in rows], [r["class_name"] for r in rows],
                       [r["group"] for r in rows], [r["file"] for r in rows])
