"""Plain-text tables of results: the one printed at the end of a run (and by ``noisyseg eval``)."""

from __future__ import annotations

import math
from typing import Any

from noisyseg_ext.training.evaluation import METRIC_KEYS

LABELS = {"dice": "Dice", "iou": "IoU", "miou": "mIoU (incl. background)", "hd95": "HD95", "asd": "ASD",
          "assd": "ASSD"}


def _num(v: Any, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, str):
        return v
    return f"{v:.{digits}f}"


def format_results_table(results: dict[str, Any], *, title: str = "") -> str:
    """A Markdown table of the metrics' mean ± std over images, from a results dict (keys ``dice``,
    ``dice_std``, ...); overlap metrics with 4 decimals, distances with 2 (in the spacing's units)."""
    lines = [f"\n{title}" if title else "", "", "| metric | mean ± std |", "| --- | --- |"]
    for k in METRIC_KEYS:
        if k in results:
            digits = 4 if k in ("dice", "iou", "miou") else 2
            lines.append(f"| {LABELS[k]} | {_num(results[k], digits)} ± {_num(results.get(k + '_std'), digits)} |")
    extra = []
    if "steps" in results:
        extra.append(f"steps {results['steps']}")
    if "train_seconds" in results:
        extra.append(f"training time {results['train_seconds']:.1f} s")
    if results.get("best_step") is not None:
        extra.append(f"best val Dice {results['best_val_dice']:.4f} at step {results['best_step']}")
    if extra:
        lines += ["", "; ".join(extra)]
    return "\n".join(lines).lstrip("\n") + "\n"
