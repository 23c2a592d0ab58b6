"""Pure-torch reference implementations of every fused op.

They define what the kernels compute: the tests compare the kernels against them, and the ops
fall back to them (with a one-time warning) where no compiled kernel exists for the device.
They are written for clarity, differentiable to any order, and make no attempt at speed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from noisyseg_ext.ops._kernels import acc_dtype


def weighted_ce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *,
                ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """Reference of :func:`noisyseg_ext.weighted_ce`: ``w * F.cross_entropy(..., reduction="none")``.

    logits (N, C, *spatial) floating, target (N, *spatial) integer, weight (N, *spatial) or None.
    Computes in float32 (float64 for float64 input); returns the input dtype.
    """
    acc = acc_dtype(logits.dtype)
    t = target.long()
    valid = t != ignore_index
    C = logits.shape[1]
    bad = valid & ((t < 0) | (t >= C))
    if bool(bad.any()):
        raise ValueError(f"weighted_ce: target holds {int(t[bad][0])}, outside [0, {C}) "
                         f"and not ignore_index={ignore_index}")
    ce = F.cross_entropy(logits.to(acc), t, reduction="none", ignore_index=ignore_index)
    w = torch.ones_like(ce) if weight is None else weight.to(acc)
    loss = torch.where(valid, w * ce, torch.zeros_like(ce))
    if reduction == "none":
        return loss.to(logits.dtype)
    total = loss.sum()
    if reduction == "sum":
        out = total
    elif reduction == "mean":
        out = total / valid.sum()
    elif reduction == "weighted_mean":
        wsum = torch.where(valid, w, torch.zeros_like(w)).sum()
        safe = torch.where(wsum != 0, wsum, torch.ones_like(wsum))
        out = torch.where(wsum != 0, total / safe, torch.zeros_like(total))
    else:
        raise ValueError(f"weighted_ce: unknown reduction {reduction!r}")
    return out.to(logits.dtype)
