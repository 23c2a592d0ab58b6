"""Training progress from metrics.csv rows, in the layout of nnU-Net's progress.png
(``nnunetv2/training/logging/nnunet_logger.py``): losses with the validation Dice and its moving
average on top, the learning rate below, then any other numeric columns (a method's diagnostics)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from noisyseg_ext.figures._common import as_number, plt, save  # plt with the Agg backend

X_KEYS = ("step", "epoch")
LOSS_KEY, DICE_KEY, LR_KEY = "train_loss", "val_dice", "lr"
# Timing columns grow without bound and are not diagnostics of the method: left out of the plot.
_SKIPPED_SUFFIXES = ("_seconds", "_time")
_SKIPPED = {"time", "seconds"}


def moving_average(values: Sequence[float], keep: float = 0.9) -> list[float]:
    """Exponential moving average ``m <- keep * m + (1 - keep) * v``, starting at the first value:
    nnU-Net's "pseudo dice (mov. avg.)" (``ema_fg_dice``, updated in ``nnUNetLogger.log``)."""
    out: list[float] = []
    for v in values:
        out.append(v if not out else keep * out[-1] + (1 - keep) * v)
    return out


def _series(rows: Sequence[dict], key: str, x_key: Optional[str]) -> tuple[list[float], list[float]]:
    """(x, y) of the rows where ``key`` holds a finite number (x: ``x_key``'s value or the row index)."""
    xs, ys = [], []
    for i, row in enumerate(rows):
        y = as_number(row.get(key))
        x = as_number(row.get(x_key)) if x_key else float(i)
        if y is not None and x is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


def _numeric_columns(rows: Sequence[dict]) -> list[str]:
    """Keys holding a finite number in at least one row, in first-seen order."""
    keys: list[str] = []
    for row in rows:
        for k, v in row.items():
            if k not in keys and as_number(v) is not None:
                keys.append(k)
    return keys


def _plot_diagnostics(ax, series: dict[str, tuple[list[float], list[float]]], x_label: str) -> None:
    """Columns within [-1.5, 1.5] (fractions, AUROC, mean weights) on the left axis, larger ones
    (distances, losses) on a right axis, so neither flattens the other; labels carry last values."""
    small = {k: v for k, v in series.items() if max(abs(y) for y in v[1]) <= 1.5}
    large = {k: v for k, v in series.items() if k not in small}
    groups = [(ax, small or large, "diagnostics")]
    if small and large:
        groups.append((ax.twinx(), large, "diagnostics (> 1.5)"))
    handles, colours = [], iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10)
    for axis, group, label in groups:
        for k, (xs, ys) in group.items():
            handles += axis.plot(xs, ys, color=next(colours), marker="o", markersize=2, linewidth=1.2,
                                 label=f"{k} (last {ys[-1]:.4g})")
        axis.set_ylabel(label)
    ax.set_xlabel(x_label)
    ax.legend(handles=handles, fontsize=7, loc="best", ncol=2)
    ax.grid(alpha=0.3)


def plot_progress(rows: list[dict[str, Any]], path: str) -> str:
    """Writes the progress figure of a run to ``path`` (PNG) and returns it.

    rows: metrics.csv rows (dicts; values numbers or numeric strings; empty / missing / NaN cells are
        skipped), with an x column ``step`` (or ``epoch``; else the row index) and any of
        ``train_loss``, ``val_dice``, ``lr`` and other numeric columns.
    Panels: (1) train loss (left axis) and val Dice with its moving average (right axis); (2) the
    learning rate, when logged; (3) every other numeric column (timing columns such as
    ``train_seconds`` excepted), when there are any: columns within [-1.5, 1.5] on the left axis,
    larger ones on the right, each labelled with its last value.
    Raises ValueError when ``rows`` is empty (a run that has not evaluated yet has no figure).
    """
    if not rows:
        raise ValueError("plot_progress: no rows (metrics.csv is empty)")
    x_key = next((k for k in X_KEYS if any(as_number(r.get(k)) is not None for r in rows)), None)
    columns = _numeric_columns(rows)
    extra = [k for k in columns if k not in (x_key, LOSS_KEY, DICE_KEY, LR_KEY) and k not in _SKIPPED
             and not k.endswith(_SKIPPED_SUFFIXES)]
    has_lr = LR_KEY in columns
    n_panels = 1 + has_lr + bool(extra)
    fig, axes = plt.subplots(n_panels, 1, figsize=(10, 3.2 * n_panels), squeeze=False)
    axes = [a[0] for a in axes]
    x_label = x_key or "evaluation"

    ax = axes[0]
    handles = []
    xs, ys = _series(rows, LOSS_KEY, x_key)
    if xs:
        handles += ax.plot(xs, ys, color="b", linewidth=2, label="train loss")
    ax.set_ylabel("loss")
    ax.set_xlabel(x_label)
    twin = ax.twinx()
    xs, ys = _series(rows, DICE_KEY, x_key)
    if xs:
        handles += twin.plot(xs, ys, color="g", linestyle="dotted", marker="o", markersize=3, linewidth=1,
                             label="val Dice")
        handles += twin.plot(xs, moving_average(ys), color="g", linewidth=2, label="val Dice (mov. avg.)")
    twin.set_ylabel("Dice")
    if handles:
        ax.legend(handles=handles, loc="center right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no train_loss or val_dice logged", transform=ax.transAxes, ha="center")
    ax.grid(alpha=0.3)

    i = 1
    if has_lr:
        ax = axes[i]
        i += 1
        ax.plot(*_series(rows, LR_KEY, x_key), color="b", linewidth=2)
        ax.set_ylabel("learning rate")
        ax.set_xlabel(x_label)
        ax.grid(alpha=0.3)
    if extra:
        _plot_diagnostics(axes[i], {k: _series(rows, k, x_key) for k in extra}, x_label)
    fig.tight_layout()
    return save(fig, path)
