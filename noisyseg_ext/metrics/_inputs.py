"""Turns the metrics' inputs (label maps or one-hot masks) into per-class binary masks, with
clear errors for bad input."""

from __future__ import annotations

import torch
from torch import Tensor

from noisyseg_ext.ops import _checks
from noisyseg_ext.ops.distance_transform import check_binary


def binary_masks(pred: Tensor, ref: Tensor, *, num_classes: int | None, include_background: bool,
                 op: str) -> tuple[Tensor, Tensor]:
    """(pred, ref) as bool (N, C', *spatial) per-class masks, C' = C or C - 1 without background.

    With ``num_classes`` the inputs are label maps (N, *spatial) of integer (or bool) class
    indices in [0, num_classes); without it they are one-hot / binary masks (N, C, *spatial)
    holding only 0 and 1 (any dtype). 1 to 3 spatial dims. Class 0 is the background.
    """
    _checks.check_tensor("pred", pred, op)
    _checks.check_tensor("ref", ref, op)
    if pred.shape != ref.shape:
        raise ValueError(f"{op}: pred and ref must have the same shape; got {tuple(pred.shape)} and {tuple(ref.shape)}")
    _checks.check_same_device(op, pred=pred, ref=ref)
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"{op}: num_classes must be a positive int; got {num_classes!r}")
        if pred.dim() < 2 or pred.dim() > 4:
            raise ValueError(f"{op}: label maps must be (N, *spatial) with 1 to 3 spatial dims; got shape "
                             f"{tuple(pred.shape)} (for one-hot (N, C, *spatial) input, leave num_classes=None)")
        for name, t in (("pred", pred), ("ref", ref)):
            if t.is_floating_point() or t.is_complex():
                raise TypeError(f"{op}: with num_classes, {name} must hold integer class indices; got {t.dtype} "
                                "(for one-hot input leave num_classes=None)")
            if t.numel() and t.dtype != torch.bool:
                lo, hi = int(t.min()), int(t.max())
                if lo < 0 or hi >= num_classes:
                    bad = lo if lo < 0 else hi
                    raise ValueError(f"{op}: {name} holds class {bad}, outside [0, {num_classes})")
        first = 0 if include_background else 1
        classes = torch.arange(first, num_classes, device=pred.device)
        classes = classes.view(1, -1, *([1] * (pred.dim() - 1)))
        return pred.unsqueeze(1) == classes, ref.unsqueeze(1) == classes
    if pred.dim() < 3 or pred.dim() > 5:
        raise ValueError(f"{op}: one-hot masks must be (N, C, *spatial) with 1 to 3 spatial dims; got shape "
                         f"{tuple(pred.shape)} (for label maps (N, *spatial) pass num_classes)")
    p, g = check_binary("pred", pred, op), check_binary("ref", ref, op)
    if not include_background:
        p, g = p[:, 1:], g[:, 1:]
    return p, g
