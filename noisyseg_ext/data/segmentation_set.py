"""A loaded segmentation dataset: per-item images, clean masks, optional real noisy masks, metadata."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

import numpy as np
from torch import Tensor

from noisyseg_ext.errors import DataError


class LazyImages(Sequence):
    """A sequence of images read on access: item i is ``load(keys[i])``, nothing kept.

    The path for datasets too large to hold in memory (``load_dataset(..., lazy_images=True)``):
    masks are always in memory (they are small and their values must be checked up front), images
    are read, resized and normalised each time they are indexed, e.g. in DataLoader workers.
    """

    def __init__(self, load: Callable[[object], Tensor], keys: Sequence[object]):
        self.load, self.keys = load, list(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return LazyImages(self.load, self.keys[i])
        return self.load(self.keys[i])

    def subset(self, indices: Sequence[int]) -> "LazyImages":
        return LazyImages(self.load, [self.keys[i] for i in indices])


@dataclass
class SegmentationSet:
    """N items of one dataset, in a fixed order (sorted by name for folders).

    images: N tensors (C_in, *spatial) float32, normalised per image and channel (a list, or a
        :class:`LazyImages` that reads them on access);
    masks: N tensors (*spatial) uint8 (int64 when C > 256), classes 0..C-1: the clean / reference masks;
    noisy_masks: N real noisy training masks of the same shapes and dtype (``--noisy-masks``), else None;
    names: file names (folders: the image file name; nnU-Net: the case identifier); subjects: the
        subject of each item (splits never separate one subject's items);
    spacings: per item, one spacing per spatial axis in tensor order (1.0 where the file has none),
        scaled by any resize; affines: NIfTI 4 x 4 affines of the original files (None otherwise);
    original_shapes: spatial shape of each item before ``size`` resizing (predict resizes back);
    sources: the image file each item came from ("" for tensors and the embedded sample);
    num_classes: C (background included); dims: 2 or 3; in_channels: C_in;
    subject_regex: the pattern that grouped the subjects (None: one subject per file).
    """

    images: Sequence[Tensor]
    masks: list[Tensor]
    noisy_masks: Optional[list[Tensor]]
    names: list[str]
    subjects: list[str]
    spacings: list[tuple[float, ...]]
    affines: list[Optional[np.ndarray]]
    original_shapes: list[tuple[int, ...]]
    sources: list[str]
    num_classes: int
    dims: int
    in_channels: int
    subject_regex: Optional[str] = None
    description: str = field(default="", compare=False)  # where it came from, for messages and logs

    def __post_init__(self):
        n = len(self.masks)
        lengths = {"images": len(self.images), "names": len(self.names), "subjects": len(self.subjects),
                   "spacings": len(self.spacings), "affines": len(self.affines),
                   "original_shapes": len(self.original_shapes), "sources": len(self.sources)}
        if self.noisy_masks is not None:
            lengths["noisy_masks"] = len(self.noisy_masks)
        wrong = {k: v for k, v in lengths.items() if v != n}
        if wrong:
            raise ValueError(f"SegmentationSet: {n} masks but {wrong}")

    def __len__(self) -> int:
        return len(self.masks)

    def subset(self, indices: Sequence[int]) -> "SegmentationSet":
        """The items ``indices`` (in that order), sharing the tensors (no copy)."""
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < len(self)]
        if bad:
            raise IndexError(f"SegmentationSet.subset: indices {bad[:5]} outside 0..{len(self) - 1}")
        pick = lambda seq: [seq[i] for i in idx]  # noqa: E731
        images = self.images.subset(idx) if isinstance(self.images, LazyImages) else pick(self.images)
        return replace(self, images=images, masks=pick(self.masks),
                       noisy_masks=None if self.noisy_masks is None else pick(self.noisy_masks),
                       names=pick(self.names), subjects=pick(self.subjects), spacings=pick(self.spacings),
                       affines=pick(self.affines), original_shapes=pick(self.original_shapes),
                       sources=pick(self.sources))

    def shapes(self) -> list[tuple[int, ...]]:
        """The spatial shape of each item (as stored now, i.e. after any resize)."""
        return [tuple(m.shape) for m in self.masks]

    def require_same_size(self, hint: str = "pass --size to resize every image") -> tuple[int, ...]:
        """The common spatial shape of the items; DataError naming two files of different sizes
        (whole-image training and batched evaluation need one size)."""
        shapes = self.shapes()
        if not shapes:
            raise DataError(f"{self.description or 'the dataset'} is empty")
        for name, shape in zip(self.names, shapes):
            if shape != shapes[0]:
                fmt = lambda s: "x".join(map(str, s))  # noqa: E731
                raise DataError(f"images differ in size ({self.names[0]} {fmt(shapes[0])}, {name} {fmt(shape)}): "
                                f"{hint}")
        return shapes[0]
