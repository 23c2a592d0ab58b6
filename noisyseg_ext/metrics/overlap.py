"""Overlap metrics per image and class: Dice, IoU, mean IoU (METHODS.md section 6)."""

from __future__ import annotations

import torch
from torch import Tensor

from noisyseg_ext.metrics._inputs import binary_masks
from noisyseg_ext.metrics.reduction import nanmean


def _counts(p: Tensor, g: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """|P & G|, |P|, |G| per (image, class) as float64 (N, C)."""
    inter = (p & g).flatten(2).sum(-1, dtype=torch.float64)
    return inter, p.flatten(2).sum(-1, dtype=torch.float64), g.flatten(2).sum(-1, dtype=torch.float64)


def _finish(num: Tensor, den: Tensor, empty_score: float) -> Tensor:
    both_empty = den == 0
    score = num / torch.where(both_empty, torch.ones_like(den), den)
    return torch.where(both_empty, torch.full_like(score, float(empty_score)), score).to(torch.float32)


def dice(pred: Tensor, ref: Tensor, *, num_classes: int | None = None, include_background: bool = True,
         empty_score: float = float("nan")) -> Tensor:
    """Dice = 2|P & G| / (|P| + |G|) per image and class.

    Args:
        pred, ref: label maps (N, *spatial) integer class indices when ``num_classes`` is given,
            else one-hot / binary masks (N, C, *spatial) holding only 0 and 1 (any dtype);
            1 to 3 spatial dims; same shape and device.
        num_classes: number of classes of the label maps (class 0 = background).
        include_background: keep class 0 (default True for overlap metrics).
        empty_score: the score when P and G are both empty (default NaN: excluded by the NaN-aware
            reductions and counted; MONAI's ``ignore_empty=False`` uses 1).
    Returns:
        float32 (N, C) on the input's device (C - 1 columns without background).
    """
    p, g = binary_masks(pred, ref, num_classes=num_classes, include_background=include_background, op="dice")
    inter, np_, ng = _counts(p, g)
    return _finish(2 * inter, np_ + ng, empty_score)


def iou(pred: Tensor, ref: Tensor, *, num_classes: int | None = None, include_background: bool = True,
        empty_score: float = float("nan")) -> Tensor:
    """IoU (Jaccard) = |P & G| / |P | G| per image and class; arguments and conventions as
    :func:`dice`. Returns float32 (N, C)."""
    p, g = binary_masks(pred, ref, num_classes=num_classes, include_background=include_background, op="iou")
    inter, np_, ng = _counts(p, g)
    return _finish(inter, np_ + ng - inter, empty_score)


def mean_iou(pred: Tensor, ref: Tensor, *, num_classes: int | None = None, include_background: bool = True,
             empty_score: float = float("nan")) -> Tensor:
    """mIoU per image: the NaN-aware mean over classes of :func:`iou` (background included by
    default, as METHODS.md reports it; classes empty in both masks are skipped).

    Returns float32 (N,): NaN for an image where every class is empty in both masks.
    """
    return nanmean(iou(pred, ref, num_classes=num_classes, include_background=include_background,
                       empty_score=empty_score), dim=1)
