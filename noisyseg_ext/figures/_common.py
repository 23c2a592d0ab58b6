"""Helpers the figure modules share: conversion to NumPy, numbers from CSV cells, grids, saving."""

from __future__ import annotations

import math
import os
from typing import Any, Optional, Sequence

import numpy as np
import torch

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def to_numpy(a) -> np.ndarray:
    """A tensor (any device / dtype) or array-like as a NumPy array (floats as float64)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        a = a.double() if a.is_floating_point() else a
        return a.numpy()
    return np.asarray(a)


def as_number(v: Any) -> Optional[float]:
    """A finite float from a metrics cell (number, numeric string, 0-dim tensor), else None (empty,
    missing, NaN, inf, text)."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            return None
        v = v.item()
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def take(items, max_items: int, what: str) -> list:
    """The first ``max_items`` entries of a list or of a batch (tensor / array: along axis 0)."""
    if items is None:
        raise ValueError(f"{what}: got None")
    seq = list(items[:max_items]) if isinstance(items, (torch.Tensor, np.ndarray)) else list(items)[:max_items]
    return seq


def grid(n: int, *, max_cols: int = 4, panel_size: float = 2.6):
    """A figure with ``n`` axes in rows of ``max_cols`` (spare axes hidden): (fig, list of n axes)."""
    cols = max(1, min(n, max_cols))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size * cols, panel_size * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def save(fig, path: str, *, dpi: int = 100) -> str:
    """Saves ``fig`` as PNG to ``path`` (creating its folder), closes it, returns ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return path


def check_lengths(what: str, **seqs: Sequence) -> int:
    """The common length of the named sequences, else ValueError naming them."""
    lengths = {k: len(v) for k, v in seqs.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{what}: inputs differ in length: {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError(f"{what}: nothing to draw (no images)")
    return n
