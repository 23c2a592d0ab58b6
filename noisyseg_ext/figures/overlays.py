"""Label maps drawn as contours over their images: test predictions against the ground truth
(MCPM's Fig. 4: ground truth green, prediction red, Dice in the corner) and corrupted training
masks against the clean ones.

Volumes are shown by one slice along the last axis: the slice with the most foreground of the
reference (ground truth / clean mask); if the reference is empty in the whole volume, the slice with
the most foreground of the other map; if both are empty, the middle slice (``panels.mid_slice``'s
convention). The issue asks for the middle slice, but a structure that misses it (a small lesion,
an organ off-centre) would leave the panel blank; the slice index is in the panel's title.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from noisyseg_ext.figures._common import as_number, check_lengths, grid, save, take, to_numpy
from noisyseg_ext.metrics import dice, nanmean

GREEN = (0.0, 1.0, 0.0)
RED = (1.0, 0.0, 0.0)


def select_slice(reference: np.ndarray, other: Optional[np.ndarray] = None) -> int:
    """Index along the last axis of a (D1, D2, D3) label map pair to show: the slice with the most
    foreground (label > 0) of ``reference``, else of ``other``, else the middle one."""
    for m in (reference, other):
        if m is not None:
            counts = (m > 0).reshape(-1, m.shape[-1]).sum(0)
            if counts.max() > 0:
                return int(counts.argmax())
    return reference.shape[-1] // 2


def foreground_dice(pred, ref) -> float:
    """Mean over the foreground classes present in either map of their Dice (the library's
    :func:`noisyseg_ext.metrics.dice`, background excluded), NaN when both maps are all background.
    pred, ref: integer label maps (*spatial), tensors or arrays."""
    p = torch.as_tensor(to_numpy(pred)).long()[None]
    r = torch.as_tensor(to_numpy(ref)).long()[None]
    num_classes = int(max(p.max(), r.max())) + 1
    if num_classes < 2:
        return math.nan
    return float(nanmean(dice(p, r, num_classes=num_classes, include_background=False), dim=1)[0])


def _views(image, reference, other, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, Optional[int]]:
    """2D (H, W) views of an image (C, *spatial) or (*spatial) and two label maps (*spatial), and the
    slice index chosen for volumes (None for 2D)."""
    img, ref, oth = to_numpy(image), to_numpy(reference), to_numpy(other)
    if ref.shape != oth.shape:
        raise ValueError(f"{what}: label maps differ in shape: {ref.shape} vs {oth.shape}")
    if ref.ndim not in (2, 3):
        raise ValueError(f"{what}: label maps must be 2D or 3D (*spatial); got shape {ref.shape}")
    if img.ndim == ref.ndim + 1:
        img = img[0]  # channel 0 of (C, *spatial)
    if img.shape != ref.shape:
        raise ValueError(f"{what}: image of shape {to_numpy(image).shape} does not match label maps {ref.shape}")
    if ref.ndim == 2:
        return img.astype(np.float64), ref, oth, None
    k = select_slice(ref, oth)
    return img[..., k].astype(np.float64), ref[..., k], oth[..., k], k


def _contours(ax, labels: np.ndarray, colour, linewidth: float) -> None:
    """One contour per foreground class present in ``labels``."""
    for c in np.unique(labels):
        if c > 0:
            ax.contour((labels == c).astype(np.float32), levels=[0.5], colors=[colour], linewidths=linewidth)


def _draw(ax, image: np.ndarray, green: np.ndarray, red: np.ndarray, score: Optional[float], title: str) -> None:
    lo, hi = np.percentile(image, [0.5, 99.5]) if image.size else (0.0, 1.0)
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
    _contours(ax, green, GREEN, 1.5)
    _contours(ax, red, RED, 1.5)  # drawn last: where the outlines coincide, red shows
    text = "Dice n/a" if score is None else f"Dice {score:.2f}"
    ax.text(0.03, 0.97, text, transform=ax.transAxes, ha="left", va="top", color="white", fontsize=8,
            bbox=dict(facecolor="black", alpha=0.6, edgecolor="none", pad=1.5))
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _contour_grid(what: str, images, greens, reds, scores, path: str, names, max_images: int, legend: str) -> str:
    images, greens, reds = (take(x, max_images, what) for x in (images, greens, reds))
    n = check_lengths(what, images=images, references=greens, others=reds)
    compute = scores is None  # None: the foreground Dice of each pair, computed here
    scores = [None] * n if compute else take(scores, max_images, what)
    names = [f"#{i}" for i in range(n)] if names is None else [str(s) for s in list(names)[:max_images]]
    check_lengths(what, images=images, scores=scores, names=names)
    fig, axes = grid(n)
    for ax, image, g, r, score, name in zip(axes, images, greens, reds, scores, names):
        img2d, g2d, r2d, k = _views(image, g, r, what)
        value = as_number(foreground_dice(r, g) if compute else score)
        _draw(ax, img2d, g2d, r2d, value, name if k is None else f"{name} (slice {k})")
    fig.suptitle(legend, fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def plot_overlays(images, preds, gts, dices, path: str, *, names: Optional[Sequence[str]] = None,
                  max_images: int = 8) -> str:
    """Test images with the ground truth as a green contour and the prediction red, "Dice 0.93" in
    the corner; writes a PNG to ``path`` and returns it.

    Args:
        images: list or batch of (C, *spatial) float images (channel 0 drawn grey, window 0.5-99.5 %).
        preds, gts: lists or batches of (*spatial) integer label maps (0 = background); multi-class
            maps get a contour per foreground class.
        dices: one score per image as written in the corner (NaN / None -> "Dice n/a"), or None to
            compute the foreground Dice of each pair here.
        names: panel titles (default "#0", "#1", ...).
        max_images: at most this many panels (the first ones), four per row.
    2D or 3D (a slice, chosen as the module docstring says). Raises ValueError for mismatched
    lengths or shapes, or no images.
    """
    return _contour_grid("plot_overlays", images, gts, preds, dices, path, names, max_images,
                         "green: ground truth, red: prediction")


def plot_corruption(images, clean, noisy, path: str, *, names: Optional[Sequence[str]] = None,
                    max_images: int = 8) -> str:
    """Training images with the clean mask as a green contour and the corrupted (noisy) mask red,
    Dice(noisy, clean) of the foreground in the corner; writes a PNG to ``path`` and returns it.
    Inputs as :func:`plot_overlays` (``clean`` and ``noisy`` are (*spatial) label maps)."""
    return _contour_grid("plot_corruption", images, clean, noisy, None, path, names, max_images,
                         "green: clean mask, red: corrupted mask")


__all__ = ["plot_overlays", "plot_corruption", "select_slice", "foreground_dice"]
