"""HC18 fetal-head ultrasound: load images and masks from a folder, split by subject.

Folder layout (as ../shared/data/hc18): ``images/NAME.png`` (8-bit grey) and ``masks/NAME.png``
(0 = background, 255 = head). ``NNN_HC``, ``NNN_2HC``, ``NNN_3HC`` are one subject NNN: the split
is by subject (the leading number of the file name), never by file, so no subject is in two splits.

Example::

    train = load_hc18("../shared/data/hc18", "train", size=(108, 160), pad_multiple=16)
    train.images  # (N, 1, 112, 160) float32 in [0, 1]
    train.masks   # (N, 112, 160) uint8 class indices {0, 1}
    loader = torch.utils.data.DataLoader(HC18Dataset(train), batch_size=16, shuffle=True)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)


def subject_of(name: str) -> int:
    """The subject of a file name: its leading number (``"012_2HC.png"`` -> 12)."""
    m = re.match(r"\d+", os.path.basename(name))
    if m is None:
        raise ValueError(f"hc18: file name {name!r} does not start with a subject number")
    return int(m.group())


def list_names(root: str) -> list[str]:
    """Sorted file names (with extension) present in both ``root/images`` and ``root/masks``."""
    images, masks = os.path.join(root, "images"), os.path.join(root, "masks")
    if not (os.path.isdir(images) and os.path.isdir(masks)):
        raise FileNotFoundError(f"hc18: expected {images} and {masks}")
    names = sorted(set(os.listdir(images)) & set(os.listdir(masks)))
    return [n for n in names if n.lower().endswith(".png")]


def split_names(names: Sequence[str], fractions: Sequence[float] = DEFAULT_FRACTIONS,
                seed: int = 0) -> dict[str, list[str]]:
    """Deterministic split by subject: the sorted subjects are shuffled with ``torch.Generator``
    seeded by ``seed`` and cut into train / val / test by ``fractions`` of the SUBJECTS (so the image
    counts only approximate the fractions). Returns {split: sorted names}.

    On the shared copy (999 files, 806 subjects) the defaults (0.7, 0.1, 0.2), seed 0 give
    705 / 100 / 194 images."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"hc18: fractions must be three non-negative numbers summing to 1; got {fractions}")
    subjects = sorted({subject_of(n) for n in names})
    perm = torch.randperm(len(subjects), generator=torch.Generator().manual_seed(seed)).tolist()
    n_train = round(fractions[0] * len(subjects))
    n_val = round(fractions[1] * len(subjects))
    cut = {"train": perm[:n_train], "val": perm[n_train:n_train + n_val], "test": perm[n_train + n_val:]}
    which = {subjects[i]: split for split, ids in cut.items() for i in ids}
    return {split: sorted(n for n in names if which[subject_of(n)] == split) for split in SPLITS}


@dataclass
class HC18Data:
    """images (N, 1, H, W) float32 in [0, 1]; masks (N, H, W) uint8 in {0, 1}; names (N,) file names."""

    images: Tensor
    masks: Tensor
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)


def _load_png(path: str, size: Optional[tuple[int, int]], resample) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("L")
        if size is not None:
            im = im.resize((size[1], size[0]), resample)  # PIL takes (width, height)
        return np.asarray(im)


def load_hc18(root: str, split: Optional[str] = None, *, size: Optional[tuple[int, int]] = None,
              pad_multiple: int = 1, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0,
              limit: Optional[int] = None) -> HC18Data:
    """Loads HC18 images and masks.

    Args:
        root: folder with ``images/`` and ``masks/``.
        split: ``"train"``, ``"val"``, ``"test"`` (see :func:`split_names`) or None for every file.
        size: (height, width) to resize to (images bilinear, masks nearest), or None (as stored,
            216 x 320 for the shared copy).
        pad_multiple: pad bottom/right with zeros so H and W are multiples of this (e.g. 16 for a
            4-level U-Net: 108 x 160 -> 112 x 160).
        fractions, seed: the subject split.
        limit: keep only the first ``limit`` files of the split (quick tests).
    """
    names = list_names(root)
    if split is not None:
        if split not in SPLITS:
            raise ValueError(f"hc18: split must be one of {list(SPLITS)} or None; got {split!r}")
        names = split_names(names, fractions, seed)[split]
    if limit is not None:
        names = names[:limit]
    images = np.stack([_load_png(os.path.join(root, "images", n), size, Image.BILINEAR) for n in names]) \
        if names else np.zeros((0, 1, 1), np.uint8)
    masks = np.stack([_load_png(os.path.join(root, "masks", n), size, Image.NEAREST) for n in names]) \
        if names else np.zeros((0, 1, 1), np.uint8)
    img = torch.from_numpy(images).float().div_(255.0)[:, None]
    msk = torch.from_numpy((masks > 127).astype(np.uint8))
    if pad_multiple > 1:
        H, W = msk.shape[-2:]
        ph, pw = (-H) % pad_multiple, (-W) % pad_multiple
        img = torch.nn.functional.pad(img, (0, pw, 0, ph))
        msk = torch.nn.functional.pad(msk, (0, pw, 0, ph))
    return HC18Data(img.contiguous(), msk.contiguous(), list(names))


class HC18Dataset(Dataset):
    """Map-style dataset over an :class:`HC18Data`: item i = (image (1, H, W), mask (H, W))."""

    def __init__(self, data: HC18Data):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        return self.data.images[i], self.data.masks[i]
