"""Supervised segmentation losses shared by the methods."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from noisyseg_ext.ops import weighted_ce

LOSSES = ("ce", "ce+dice")


def soft_dice_loss(logits: Tensor, target: Tensor, *, eps: float = 1e-5) -> Tensor:
    """1 - mean over foreground classes of the batch soft Dice (nnU-Net's "batch Dice").

    logits (N, C, *spatial) float; target (N, *spatial) int64 in [0, C). Computed in float32; with
    C = 1 the single channel is treated as foreground.
    """
    probs = torch.softmax(logits.float(), dim=1)
    C = logits.shape[1]
    onehot = torch.nn.functional.one_hot(target.long(), C).movedim(-1, 1).to(probs.dtype)
    dims = (0, *range(2, logits.dim()))
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + eps) / (denom + eps)
    fg = dice[1:] if C > 1 else dice
    return 1.0 - fg.mean()


def segmentation_loss(logits: Tensor, target: Tensor, weight: Optional[Tensor] = None, *, kind: str = "ce") -> Tensor:
    """The supervised loss of ``--loss``.

    ``ce``: the papers' pixel-weighted CE, ``sum(w * CE) / (N * V)`` through the fused ``weighted_ce``
    (``weight`` None for 1). ``ce+dice``: that plus :func:`soft_dice_loss` (unweighted).
    logits (N, C, *spatial); target (N, *spatial) integer; weight (N, *spatial) or None. Returns a
    0-dim tensor of logits' dtype (float32 for ce+dice).
    """
    loss = weighted_ce(logits, target, weight)
    if kind == "ce":
        return loss
    if kind == "ce+dice":
        return loss.float() + soft_dice_loss(logits, target)
    raise ValueError(f"segmentation_loss: kind must be one of {LOSSES}; got {kind!r}")
