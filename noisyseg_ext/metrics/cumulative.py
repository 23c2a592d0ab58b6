"""A metric accumulator for evaluation loops: update per batch, aggregate, reset."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from noisyseg_ext.metrics.overlap import dice, iou
from noisyseg_ext.metrics.reduction import REDUCTIONS, reduce_metric
from noisyseg_ext.metrics.surface import average_surface_distance, hausdorff

METRICS: dict[str, Callable[..., Tensor]] = {
    "dice": dice,
    "iou": iou,
    "hausdorff": hausdorff,
    "hd95": functools.partial(hausdorff, percentile=95),
    "asd": average_surface_distance,
    "assd": functools.partial(average_surface_distance, symmetric=True),
}


class CumulativeMetric:
    """Collects per-image, per-class scores over batches and reduces them NaN-aware.

    >>> hd95 = CumulativeMetric("hd95", num_classes=3, spacing=(1.0, 0.8, 0.8))
    >>> for pred, ref in loader:
    ...     hd95.update(pred, ref)          # (N, C) scores of this batch
    >>> hd95.aggregate()                    # mean over every non-NaN (image, class)
    >>> hd95.aggregate("mean_batch")        # per class, (C,)
    >>> hd95.reset()

    Args:
        metric: ``"dice"``, ``"iou"``, ``"hausdorff"``, ``"hd95"``, ``"asd"``, ``"assd"``, or any
            callable ``f(pred, ref, **kwargs) -> (N, C) tensor``.
        reduction: default reduction of :meth:`aggregate` (see
            :func:`noisyseg_ext.metrics.reduce_metric`).
        **kwargs: passed to the metric at every update (num_classes, include_background,
            spacing, empty_penalty, ...).
    """

    def __init__(self, metric: str | Callable[..., Tensor] = "dice", *, reduction: str = "mean", **kwargs):
        if isinstance(metric, str):
            if metric not in METRICS:
                raise ValueError(f"CumulativeMetric: unknown metric {metric!r}; choose one of {list(METRICS)} "
                                 "or pass a callable")
            metric = METRICS[metric]
        if not callable(metric):
            raise TypeError(f"CumulativeMetric: metric must be a name or a callable; got {type(metric).__name__}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"CumulativeMetric: reduction must be one of {list(REDUCTIONS)}; got {reduction!r}")
        self.metric = metric
        self.reduction = reduction
        self.kwargs = kwargs
        self._batches: list[Tensor] = []

    def update(self, pred: Tensor, ref: Tensor) -> Tensor:
        """Scores one batch, keeps them, and returns them ((N, C), on the inputs' device)."""
        scores = self.metric(pred, ref, **self.kwargs)
        if scores.dim() != 2:
            raise ValueError(f"CumulativeMetric: the metric must return (N, C) scores; got shape {tuple(scores.shape)}")
        if self._batches and scores.shape[1] != self._batches[0].shape[1]:
            raise ValueError(f"CumulativeMetric: this batch has {scores.shape[1]} classes, earlier ones "
                             f"{self._batches[0].shape[1]}")
        self._batches.append(scores.detach())
        return scores

    __call__ = update

    def __len__(self) -> int:
        """Number of images scored since the last reset."""
        return sum(b.shape[0] for b in self._batches)

    def get_buffer(self) -> Tensor:
        """Every score so far, (images, C); (0, 0) before the first update."""
        if not self._batches:
            return torch.empty((0, 0))
        device = self._batches[0].device
        return torch.cat([b.to(device) for b in self._batches])

    def aggregate(self, reduction: str | None = None, *, return_counts: bool = False):
        """NaN-aware reduction of every score so far (``reduction`` defaults to the one given at
        construction). With ``return_counts``, also the number of non-NaN scores behind each value
        (NaN = both masks empty: excluded, but counted here)."""
        value, count = reduce_metric(self.get_buffer(), reduction or self.reduction)
        return (value, count) if return_counts else value

    def reset(self) -> None:
        """Forgets every score."""
        self._batches = []
