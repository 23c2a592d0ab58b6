"""Rows of image panels (image, noisy label, clean label, a weight or uncertainty map, ...): the
layout of MCPM's Fig. 3 and PINT's Fig. 2. Volumes are shown by their middle slice along the last
axis."""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
import torch

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def mid_slice(a) -> np.ndarray:
    """A 2D view of ``a`` (tensor or array): (H, W) as is; (1, H, W) or (C, D1, D2, D3) -> channel 0;
    (D1, D2, D3) -> the middle slice of the last axis. Returns a float64 NumPy array."""
    x = a.detach().float().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)
    if x.ndim == 4 or (x.ndim == 3 and x.shape[0] == 1):  # channels first
        x = x[0]
    if x.ndim == 3:
        x = x[..., x.shape[-1] // 2]
    if x.ndim != 2:
        raise ValueError(f"mid_slice: expected a 2D or 3D array, got shape {x.shape}")
    return x.astype(np.float64)


# How each kind of panel is drawn: (colour map, fixed value range or None for the data's range).
KINDS = {"image": ("gray", None), "label": ("viridis", None), "map": ("magma", (0.0, 1.0)),
         "uncertainty": ("inferno", None), "gate": ("gray", (0.0, 1.0))}


def plot_panels(rows: Sequence[Sequence[tuple[str, object, str]]], path: str, *,
                title: Optional[str] = None, panel_size: float = 2.2) -> str:
    """Writes a grid of panels to ``path`` (PNG) and returns the path.

    rows: one row per sample; each panel is ``(title, 2D/3D tensor or array, kind)`` with kind in
    :data:`KINDS` (``image`` grey, ``label`` class colours, ``map`` a [0, 1] weight map with a colour
    bar, ``uncertainty`` its own range with a colour bar, ``gate`` black/white).
    """
    n_rows = len(rows)
    n_cols = max((len(r) for r in rows), default=0)
    if n_rows == 0 or n_cols == 0:
        raise ValueError("plot_panels: nothing to draw")
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(panel_size * n_cols, panel_size * n_rows), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.axis("off")
            if j >= len(row):
                continue
            name, data, kind = row[j]
            if kind not in KINDS:
                raise ValueError(f"plot_panels: kind must be one of {sorted(KINDS)}; got {kind!r}")
            cmap, vrange = KINDS[kind]
            img = mid_slice(data)
            vmin, vmax = vrange if vrange else (float(np.nanmin(img)), float(np.nanmax(img)))
            im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1, interpolation="nearest")
            ax.set_title(name, fontsize=8)
            if kind == "gate":  # an all-trusted gate is plain white: keep a frame so the panel shows
                ax.axis("on")
                ax.set_xticks([])
                ax.set_yticks([])
            if kind in ("map", "uncertainty"):
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
