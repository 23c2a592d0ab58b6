"""Dice between noisy and clean masks, per sample (how strong a noise protocol is)."""

from __future__ import annotations

import torch
from torch import Tensor


def dice_per_sample(a: Tensor, b: Tensor) -> Tensor:
    """Foreground Dice 2|A∩B| / (|A| + |B|) of each sample, foreground = label != 0.

    a, b: (N, *spatial) bool or integer masks of one shape. Returns (N,) float64; NaN where both
    masks are empty (as METHODS.md §6), 0 where exactly one is.
    """
    if a.shape != b.shape:
        raise ValueError(f"dice_per_sample: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    fa, fb = (a != 0).flatten(1), (b != 0).flatten(1)
    inter = (fa & fb).sum(1, dtype=torch.float64)
    total = fa.sum(1, dtype=torch.float64) + fb.sum(1, dtype=torch.float64)
    return torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.full_like(total, float("nan")))
