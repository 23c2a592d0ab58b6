"""Turns the metrics' inputs (label maps or one-hot masks) into per-class binary masks, with
clear errors for bad input."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from noisyseg_ext.ops import _checks
from noisyseg_ext.ops.distance_transform import BOX_CLASSES, LABEL_SOURCE_DTYPES, PLANE_SOURCE_DTYPES, check_binary


def _check_pair(pred, ref, num_classes, op: str, check_range: bool = True) -> None:
    _checks.check_tensor("pred", pred, op)
    _checks.check_tensor("ref", ref, op)
    if pred.shape != ref.shape:
        raise ValueError(f"{op}: pred and ref must have the same shape; got {tuple(pred.shape)} and {tuple(ref.shape)}")
    _checks.check_same_device(op, pred=pred, ref=ref)
    if num_classes is None:
        if pred.dim() < 3 or pred.dim() > 5:
            raise ValueError(f"{op}: one-hot masks must be (N, C, *spatial) with 1 to 3 spatial dims; got shape "
                             f"{tuple(pred.shape)} (for label maps (N, *spatial) pass num_classes)")
        return
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{op}: num_classes must be a positive int; got {num_classes!r}")
    if pred.dim() < 2 or pred.dim() > 4:
        raise ValueError(f"{op}: label maps must be (N, *spatial) with 1 to 3 spatial dims; got shape "
                         f"{tuple(pred.shape)} (for one-hot (N, C, *spatial) input, leave num_classes=None)")
    for name, t in (("pred", pred), ("ref", ref)):
        if t.is_floating_point() or t.is_complex():
            raise TypeError(f"{op}: with num_classes, {name} must hold integer class indices; got {t.dtype} "
                            "(for one-hot input leave num_classes=None)")
        if check_range and t.numel() and t.dtype != torch.bool:
            lo, hi = (int(v) for v in torch.aminmax(t))
            if lo < 0 or hi >= num_classes:
                bad = lo if lo < 0 else hi
                raise ValueError(f"{op}: {name} holds class {bad}, outside [0, {num_classes})")


def binary_masks(pred: Tensor, ref: Tensor, *, num_classes: int | None, include_background: bool,
                 op: str) -> tuple[Tensor, Tensor]:
    """(pred, ref) as bool (N, C', *spatial) per-class masks, C' = C or C - 1 without background.

    With ``num_classes`` the inputs are label maps (N, *spatial) of integer (or bool) class
    indices in [0, num_classes); without it they are one-hot / binary masks (N, C, *spatial)
    holding only 0 and 1 (any dtype). 1 to 3 spatial dims. Class 0 is the background.
    """
    _check_pair(pred, ref, num_classes, op)
    if num_classes is not None:
        first = 0 if include_background else 1
        classes = torch.arange(first, num_classes, device=pred.device)
        classes = classes.view(1, -1, *([1] * (pred.dim() - 1)))
        return pred.unsqueeze(1) == classes, ref.unsqueeze(1) == classes
    p, g = check_binary("pred", pred, op), check_binary("ref", ref, op)
    if not include_background:
        p, g = p[:, 1:], g[:, 1:]
    return p, g


def check_label_range(t: Tensor, name: str, num_classes: int, op: str) -> None:
    if t.numel() and t.dtype != torch.bool:
        lo, hi = (int(v) for v in torch.aminmax(t))
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{op}: {name} holds class {lo if lo < 0 else hi}, outside [0, {num_classes})")


@dataclass
class MaskSources:
    """Per-class masks described in place, for the kernels.

    Mask b (of B = N * C, image-major) of the prediction is the voxels s with
    ``pred.flatten()[offsets[b] + s] == classes[b]`` (likewise for ``ref``). ``box_rows`` is the
    scan table of ``noisyseg::mask_boxes``: boxes 0..B-1 are the prediction's masks, B..2B-1 the
    reference's. Label values must lie in [0, num_values) (checked by the kernel)."""

    pred: Tensor        # contiguous label maps (N, *spatial) or 0/1 planes (N, C_all, *spatial)
    ref: Tensor
    offsets: Tensor     # int64 (B,)
    classes: Tensor     # int64 (B,)
    box_rows: Tensor    # int64 (R, 5)
    num_values: int
    N: int
    C: int
    spatial: tuple[int, ...]
    op: str
    label_maps: bool


def mask_sources(pred: Tensor, ref: Tensor, *, num_classes: int | None, include_background: bool,
                 op: str) -> MaskSources:
    """Like :func:`binary_masks`, without building the (N, C, *spatial) masks: the kernels read
    the label maps (or one-hot planes) directly. Label ranges are checked by the kernel."""
    _check_pair(pred, ref, num_classes, op, check_range=False)
    first = 0 if include_background else 1
    if num_classes is not None:
        N, spatial = pred.shape[0], tuple(pred.shape[1:])
        C = num_classes - first
        if pred.dtype not in LABEL_SOURCE_DTYPES or ref.dtype != pred.dtype:
            pred, ref = pred.to(torch.int32), ref.to(torch.int32)
        S = math.prod(spatial)
        offsets = torch.arange(N).repeat_interleave(C) * S
        classes = torch.arange(first, num_classes).repeat(N)
        # one scan per (source, image, chunk of up to BOX_CLASSES classes)
        chunk = torch.arange(0, C, BOX_CLASSES)
        which, n, k = (x.reshape(-1) for x in torch.meshgrid(torch.arange(2), torch.arange(N), chunk, indexing="ij"))
        rows = torch.stack([which, n * S, first + k, (C - k).clamp(max=BOX_CLASSES), (which * N + n) * C + k], 1)
        num_values = num_classes
    else:
        if pred.dtype not in PLANE_SOURCE_DTYPES or ref.dtype != pred.dtype:
            pred, ref = check_binary("pred", pred, op), check_binary("ref", ref, op)
        # else read as they are: the box kernel checks that every value is 0 or 1
        N, C_all, spatial = pred.shape[0], pred.shape[1], tuple(pred.shape[2:])
        C = max(C_all - first, 0)
        S = math.prod(spatial)
        n = torch.arange(N).repeat_interleave(C)
        c = torch.arange(first, C_all).repeat(N)
        offsets = (n * C_all + c) * S
        classes = torch.ones_like(offsets)
        B = N * C
        which = torch.arange(2).repeat_interleave(B)
        rows = torch.stack([which, offsets.repeat(2), torch.ones(2 * B, dtype=torch.int64),
                            torch.ones(2 * B, dtype=torch.int64), torch.arange(2 * B)], 1)
        num_values = 2
    dev = pred.device
    return MaskSources(pred.contiguous(), ref.contiguous(), offsets.to(dev), classes.to(dev),
                       rows.reshape(-1, 5).to(dev), num_values, N, C, spatial, op,
                       num_classes is not None)
