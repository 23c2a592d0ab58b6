"""The mask rule: which stored values a mask may hold, and the class map they become.

Per mask (:func:`mask_to_classes`):

* values exactly {0, 255}, or {255} alone: a binary mask, 255 -> class 1;
* otherwise every value must be an integer >= 0 (class indices, so {0, 1} is binary too);
  255 together with values other than 0 is refused (e.g. {0, 128, 255}: a grey-level picture,
  not a class map); bool arrays are {0, 1}; floats must hold whole numbers.

Over a dataset (:func:`dataset_classes`): C = the largest class + 1 (at least 2), unless the
number of classes is declared (nnU-Net's dataset.json ``labels``, or ``num_classes``), in which
case every value must be below it. Without a declaration every class 1..C-1 must occur in some
mask (so {0, 128} is refused rather than read as 129 classes), and 0/255 masks may not be mixed
with masks holding classes above 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from noisyseg_ext.errors import DataError


def _first(values, k: int = 6) -> str:
    values = [v.item() if hasattr(v, "item") else v for v in values]
    shown = ", ".join(repr(v) for v in values[:k])
    return f"[{shown}{', ...' if len(values) > k else ''}]"


def distinct_values(array: np.ndarray) -> np.ndarray:
    """Sorted distinct values; a bincount for 8/16-bit data (much faster than a sort)."""
    if array.dtype in (np.uint8, np.uint16):
        counts = np.bincount(array.ravel(), minlength=1)
        return np.flatnonzero(counts).astype(array.dtype)
    return np.unique(array)


@dataclass
class MaskClasses:
    """A mask as classes: labels (*spatial) uint8, or int64 when a class exceeds 255;
    values: its distinct classes (sorted ints); binary_255: whether it was stored as 0/255."""

    labels: np.ndarray
    values: list[int]
    binary_255: bool


def mask_to_classes(array: np.ndarray, where: str) -> MaskClasses:
    """Applies the per-mask rule (module docstring) to ``array`` (*spatial); ``where`` names the
    file (or tensor) in the DataError raised for any other value."""
    if array.dtype == bool:
        return MaskClasses(array.astype(np.uint8), [int(v) for v in distinct_values(array.astype(np.uint8))], False)
    if array.dtype.kind not in "uif":
        raise DataError(f"mask {where} has dtype {array.dtype}: expected integer class values")
    values = distinct_values(array)
    if array.dtype.kind == "f":
        bad = values[~np.isfinite(values) | (values != np.round(values))]
        if bad.size:
            raise DataError(f"mask {where} holds non-integer values {_first(bad)}: masks must be 0/255, 0/1 "
                            "or classes 0..C-1")
    negative = values[values < 0]
    if negative.size:
        raise DataError(f"mask {where} holds negative values {_first(negative)}: masks must be 0/255, 0/1 "
                        "or classes 0..C-1")
    ints = [int(v) for v in values]
    if 255 in ints:
        if set(ints) <= {0, 255}:
            return MaskClasses((array == 255).astype(np.uint8), [v // 255 for v in ints], True)
        raise DataError(f"mask {where} holds values {_first(ints)}: 255 is allowed only in 0/255 binary masks; "
                        "masks must be 0/255, 0/1 or classes 0..C-1")
    top = ints[-1] if ints else 0
    labels = array.astype(np.uint8 if top <= 255 else np.int64, copy=False)
    return MaskClasses(labels, ints, False)


def dataset_classes(masks: Sequence[MaskClasses], wheres: Sequence[str],
                    declared: Optional[int] = None, declared_by: str = "num_classes") -> int:
    """The number of classes C of a dataset whose masks went through :func:`mask_to_classes`
    (``wheres`` names them); checks the dataset rule of the module docstring, raising DataError
    naming a file and the offending values."""
    if declared is not None:
        for m, where in zip(masks, wheres):
            over = [v for v in m.values if v >= declared]
            if over:
                raise DataError(f"mask {where} holds values {_first(over)} but {declared_by} declares "
                                f"{declared} classes (0..{declared - 1})")
        return declared
    seen: set[int] = set()
    for m in masks:
        seen.update(m.values)
    top = max(seen, default=0)
    classes = max(2, top + 1)
    missing = [k for k in range(1, top) if k not in seen]
    if missing:
        holder = next(where for m, where in zip(masks, wheres) if top in m.values)
        raise DataError(f"masks hold classes {_first(sorted(seen), 8)} (e.g. {top} in {holder}) but never "
                        f"{_first(missing)}: masks must be 0/255, 0/1 or classes 0..C-1 with every class present")
    if top > 1:
        binary = next((where for m, where in zip(masks, wheres) if m.binary_255), None)
        if binary is not None:
            multi = next(where for m, where in zip(masks, wheres) if m.values and m.values[-1] > 1)
            raise DataError(f"masks mix 0/255 binary masks ({binary}) with multi-class masks ({multi}, classes "
                            f"up to {top}): use one convention")
    return classes
