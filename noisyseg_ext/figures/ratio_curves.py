"""Dice (or another metric) against the noise ratio, one line per method: MCPM's Table 2 as a
figure (``noisyseg compare``)."""

from __future__ import annotations

from typing import Any

from noisyseg_ext.figures._common import as_number, plt, save  # plt with the Agg backend


def plot_ratio_curves(rows: list[dict[str, Any]], path: str, *, metric: str = "dice") -> str:
    """Writes the metric-against-noise-ratio plot to ``path`` (PNG) and returns it.

    rows: dicts with ``method``, ``ratio`` and ``<metric>_mean`` (optionally ``<metric>_std``, drawn
        as error bars; NaN / missing -> none), numbers or numeric strings. One line per method, in
        the order methods first appear, points sorted by ratio; rows whose ratio or mean is missing
        or not finite are skipped. A ``noise`` column with a single value goes into the title.
    Raises ValueError when ``rows`` is empty or no row has a finite ``<metric>_mean``.
    """
    if not rows:
        raise ValueError("plot_ratio_curves: no rows")
    mean_key, std_key = f"{metric}_mean", f"{metric}_std"
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for row in rows:
        ratio, mean = as_number(row.get("ratio")), as_number(row.get(mean_key))
        if ratio is None or mean is None:
            continue
        std = as_number(row.get(std_key))
        lines.setdefault(str(row.get("method", "?")), []).append((ratio, mean, 0.0 if std is None else std))
    if not lines:
        keys = sorted({k for r in rows for k in r})
        raise ValueError(f"plot_ratio_curves: no row has a finite {mean_key!r} and 'ratio' (keys: {', '.join(keys)})")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method, points in lines.items():
        points.sort()
        xs, ys, es = zip(*points)
        ax.errorbar(xs, ys, yerr=es, marker="o", markersize=4, capsize=3, linewidth=1.5, label=method)
    ratios = sorted({x for pts in lines.values() for x, _, _ in pts})
    ax.set_xticks(ratios)
    ax.set_xlabel("noise ratio (fraction of training masks corrupted)")
    label = {"dice": "Dice", "iou": "IoU", "miou": "mIoU"}.get(metric, metric)
    ax.set_ylabel(label)
    noises = {str(r["noise"]) for r in rows if r.get("noise") not in (None, "")}
    title = f"{label} against the noise ratio" + (f" ({noises.pop()} noise)" if len(noises) == 1 else "")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)
