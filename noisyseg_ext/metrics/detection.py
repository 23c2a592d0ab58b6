"""How well a per-pixel score singles out corrupted labels: the evidence that a method finds them.

``corrupted`` masks come from the noise records (``label != clean`` of a training batch). Used by
the methods' diagnostics (MCPM's weights, PINT's uncertainty) in ``metrics.csv``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def auroc(scores: Tensor, positives: Tensor) -> float:
    """Area under the ROC curve of ``scores`` as a detector of ``positives`` (higher score = more
    likely positive); ties count one half (the Mann-Whitney U statistic). NaN when either class is
    empty.

    scores: any shape, floating; positives: same shape, bool. Computed on the CPU in float64 by one
    sort (O(n log n)); fine for a few million pixels.
    """
    s = scores.detach().reshape(-1).double().cpu()
    p = positives.detach().reshape(-1).bool().cpu()
    n_pos = int(p.sum())
    n_neg = p.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = torch.argsort(s)
    s_sorted = s[order]
    # Average ranks over ties (1-based): each run of equal scores gets the mean of its ranks.
    _, inverse, counts = torch.unique_consecutive(s_sorted, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    mean_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(s)
    ranks[order] = mean_rank[inverse]
    u = ranks[p].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def masked_means(values: Tensor, corrupted: Tensor) -> tuple[float, float]:
    """(mean of ``values`` where ``corrupted``, mean where not); NaN for an empty side.
    values and corrupted of one shape (corrupted bool)."""
    v = values.detach().double()
    c = corrupted.bool()
    on = v[c]
    off = v[~c]
    return (float(on.mean()) if on.numel() else math.nan, float(off.mean()) if off.numel() else math.nan)
