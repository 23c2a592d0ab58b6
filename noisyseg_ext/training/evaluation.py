"""Evaluation on clean reference labels with ``noisyseg_ext.metrics`` (METHODS.md §6).

Per image (foreground classes averaged, background excluded, unless stated):

* ``dice``, ``iou``: overlap of each foreground class, then their mean;
* ``miou``: mean IoU over ALL classes, background included (the MCPM paper's mIoU);
* ``hd95``: 95th-percentile Hausdorff distance (the larger of the two directed 95th percentiles);
* ``asd``: average surface distance prediction -> reference (directed, medpy's ``asd``);
* ``assd``: average symmetric surface distance (both directions pooled).

Surface distances are in physical units (the images' spacing, 1 per pixel for PNGs). When exactly one
of prediction and reference is empty, a surface distance is the image diagonal (a finite penalty, so
means stay finite); both empty gives NaN, excluded from the means. Means and standard deviations over
images ignore NaN.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from noisyseg_ext import metrics

METRIC_KEYS = ("dice", "iou", "miou", "hd95", "asd", "assd")
SURFACE_KEYS = ("hd95", "asd", "assd")


@dataclass
class EvalResult:
    """rows: one dict per image (``name`` and :data:`METRIC_KEYS`); mean / std: NaN-aware over images;
    predictions: the predicted label maps (*spatial) int64 on the CPU, kept when asked."""

    rows: list[dict]
    mean: dict[str, float]
    std: dict[str, float]
    predictions: list[Tensor] = field(default_factory=list)


def _nan_stats(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, math.nan
    m = sum(finite) / len(finite)
    var = sum((v - m) ** 2 for v in finite) / len(finite)
    return m, math.sqrt(var)


def summarize(rows: list[dict], keys=METRIC_KEYS) -> tuple[dict[str, float], dict[str, float]]:
    """(means, population stds) of each key over rows, NaN-aware."""
    mean, std = {}, {}
    for k in keys:
        mean[k], std[k] = _nan_stats([float(r[k]) for r in rows if k in r])
    return mean, std


def image_metrics(pred: Tensor, ref: Tensor, num_classes: int, spacing, *, surface: bool = True) -> list[dict]:
    """Metrics of a batch of same-shaped label maps pred, ref (N, *spatial) integer: one dict per image
    with :data:`METRIC_KEYS` (surface keys only when ``surface``)."""
    fg = {"num_classes": num_classes, "include_background": False}
    d = metrics.nanmean(metrics.dice(pred, ref, **fg), dim=1)
    j = metrics.nanmean(metrics.iou(pred, ref, **fg), dim=1)
    mi = metrics.mean_iou(pred, ref, num_classes=num_classes, include_background=True)
    cols = {"dice": d, "iou": j, "miou": mi}
    if surface:
        s = {"spacing": spacing, "empty_penalty": "diagonal", **fg}
        cols["hd95"] = metrics.nanmean(metrics.hausdorff(pred, ref, percentile=95, **s), dim=1)
        cols["asd"] = metrics.nanmean(metrics.average_surface_distance(pred, ref, **s), dim=1)
        cols["assd"] = metrics.nanmean(metrics.average_surface_distance(pred, ref, symmetric=True, **s), dim=1)
    lists = {k: v.float().cpu().tolist() for k, v in cols.items()}
    return [{k: lists[k][i] for k in lists} for i in range(pred.shape[0])]


class _EvalMode:
    """Puts every module of ``net`` in eval mode and restores each one's own mode afterwards."""

    def __init__(self, net: nn.Module):
        self.net = net

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.net.modules()]
        self.net.eval()

    def __exit__(self, *exc):
        for m, mode in self.modes:
            m.training = mode


@torch.no_grad()
def predict_labels(net: nn.Module, images: list[Tensor], *, device: torch.device, multiple: int = 1,
                   patch: Optional[tuple[int, ...]] = None, overlap: float = 0.5, batch: int = 8,
                   autocast: Optional[Callable] = None) -> list[Tensor]:
    """Label maps (*spatial) int64 (CPU) of ``images`` (each (C, *spatial) float), argmax of the logits:
    same-shaped images are batched (whole-image mode), volumes with ``patch`` go by sliding windows."""
    from noisyseg_ext.training.inference import predict_batch, predict_logits

    out: list[Optional[Tensor]] = [None] * len(images)
    with _EvalMode(net):
        if patch is not None:
            for i, im in enumerate(images):
                logits = predict_logits(net, im.to(device), multiple=multiple, patch=patch, overlap=overlap,
                                        batch=batch, autocast=autocast)
                out[i] = logits.argmax(0).cpu()
        else:
            groups: dict[tuple, list[int]] = defaultdict(list)
            for i, im in enumerate(images):
                groups[tuple(im.shape)].append(i)
            for idx in groups.values():
                for start in range(0, len(idx), batch):
                    chunk = idx[start:start + batch]
                    x = torch.stack([images[i] for i in chunk]).to(device)
                    logits = predict_batch(net, x, multiple=multiple, batch=batch, autocast=autocast)
                    for i, lab in zip(chunk, logits.argmax(1).cpu()):
                        out[i] = lab
    return out  # type: ignore[return-value]


def evaluate(net: nn.Module, data, *, device: torch.device, multiple: int = 1,
             patch: Optional[tuple[int, ...]] = None, overlap: float = 0.5, batch: int = 8,
             autocast: Optional[Callable] = None, surface: bool = True, keep_predictions: bool = False) -> EvalResult:
    """Evaluates ``net`` on every image of ``data`` (a SegmentationSet) against its clean ``masks``.

    Args:
        net: the network (its modules' train / eval modes are restored afterwards).
        data: images (C, *spatial) and masks (*spatial), ``num_classes``, ``spacings``, ``names``.
        device: where inference runs; metrics are computed there too.
        multiple: the network's size multiple (images are padded to it, predictions cropped back).
        patch, overlap: sliding-window inference for volumes (None: whole images).
        batch: images (or windows) per forward.
        surface: compute HD95 / ASD / ASSD (the slower part).
        keep_predictions: keep the predicted label maps in the result (for figures, ``predict``).
    """
    preds = predict_labels(net, list(data.images), device=device, multiple=multiple, patch=patch, overlap=overlap,
                           batch=batch, autocast=autocast)
    rows: list[Optional[dict]] = [None] * len(preds)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, p in enumerate(preds):
        groups[(tuple(p.shape), tuple(data.spacings[i]))].append(i)
    for (_, spacing), idx in groups.items():
        p = torch.stack([preds[i] for i in idx]).to(device)
        r = torch.stack([data.masks[i].long() for i in idx]).to(device)
        for i, row in zip(idx, image_metrics(p, r, data.num_classes, list(spacing), surface=surface)):
            rows[i] = {"name": data.names[i], **row}
    keys = METRIC_KEYS if surface else tuple(k for k in METRIC_KEYS if k not in SURFACE_KEYS)
    mean, std = summarize(rows, keys)  # type: ignore[arg-type]
    return EvalResult(rows, mean, std, preds if keep_predictions else [])  # type: ignore[arg-type]
