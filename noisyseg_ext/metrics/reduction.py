"""NaN-aware reductions of (N, C) metric tables: NaN marks "undefined" (e.g. both masks empty)
and is excluded from means and sums but counted; +inf (one mask empty) is kept and propagates."""

from __future__ import annotations

import torch
from torch import Tensor

REDUCTIONS = ("none", "mean", "sum", "mean_batch", "sum_batch", "mean_channel", "sum_channel")


def nanmean(values: Tensor, dim=None) -> Tensor:
    """Mean over the non-NaN entries (over ``dim``, or all); NaN where every entry is NaN.
    Computed in float64, returned in ``values``' dtype."""
    x = values.to(torch.float64)
    valid = ~torch.isnan(x)
    total = torch.where(valid, x, torch.zeros_like(x))
    if dim is None:
        s, n = total.sum(), valid.sum()
    else:
        s, n = total.sum(dim), valid.sum(dim)
    return torch.where(n > 0, s / n.clamp(min=1), torch.full_like(s, float("nan"))).to(values.dtype)


def reduce_metric(values: Tensor, reduction: str = "mean") -> tuple[Tensor, Tensor]:
    """Reduce an (N, C) table of per-image, per-class scores, skipping NaN.

    reduction:
        ``"none"``: the table itself; ``"mean"`` / ``"sum"``: over every non-NaN entry (0-dim);
        ``"mean_batch"`` / ``"sum_batch"``: over images, one value per class (C,);
        ``"mean_channel"`` / ``"sum_channel"``: over classes, one value per image (N,).
    Means of all-NaN groups are NaN, sums are 0.

    Returns:
        (reduced values in ``values``' dtype, number of non-NaN entries behind each value as int64).
    """
    if values.dim() != 2:
        raise ValueError(f"reduce_metric: values must be (N, C); got shape {tuple(values.shape)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduce_metric: reduction must be one of {list(REDUCTIONS)}; got {reduction!r}")
    valid = ~torch.isnan(values)
    if reduction == "none":
        return values, valid.to(torch.int64)
    dim = {"mean": None, "sum": None, "mean_batch": 0, "sum_batch": 0, "mean_channel": 1, "sum_channel": 1}[reduction]
    count = valid.sum() if dim is None else valid.sum(dim)
    if reduction.startswith("mean"):
        return nanmean(values, dim), count
    x = torch.where(valid, values.to(torch.float64), torch.zeros((), dtype=torch.float64, device=values.device))
    return (x.sum() if dim is None else x.sum(dim)).to(values.dtype), count
