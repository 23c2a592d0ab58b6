"""The run folder, laid out as nnU-Net's (what users know):

    <out>/config.json        every option and the package version
    <out>/splits.json        the subject split (reusable with --splits)
    <out>/metrics.csv        a row per evaluation (step, losses, validation metrics, method diagnostics)
    <out>/results.json       test metrics of the final network (means, stds, per-image rows, steps, train_seconds)
    <out>/checkpoints/       last.pt (every --checkpoint-every steps and at the end), best.pt (best val Dice)
    <out>/figures/           progress.png, test overlays, clean vs corrupted masks, method figures
    <out>/tensorboard/       TensorBoard events (when tensorboard is installed)

Every file is written atomically (temporary file + rename).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from typing import Any, Optional

from noisyseg_ext.errors import ConfigError, RunFolderError
from noisyseg_ext.training.checkpoint import atomic_write_text

# What a run writes; --overwrite removes exactly these (never other files of the folder).
RUN_FILES = ("config.json", "splits.json", "metrics.csv", "results.json", "table.md")
RUN_DIRS = ("checkpoints", "figures", "tensorboard")


def checkpoint_path(out: str, which: str = "last") -> str:
    return os.path.join(out, "checkpoints", f"{which}.pt")


def is_run(out: str) -> bool:
    return os.path.isfile(os.path.join(out, "config.json"))


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value):
    """JSON has no NaN / Infinity: NaN -> None (null), +-inf -> "inf" / "-inf" strings."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: str, data: Any) -> None:
    """Writes ``data`` as indented JSON, atomically (NaN as null, inf as "inf")."""
    atomic_write_text(path, json.dumps(_finite(data), indent=2, default=_json_default) + "\n")


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def prepare(out: str, config_dict: dict[str, Any], *, resume: bool, overwrite: bool, differences) -> None:
    """Checks and prepares ``out`` for a run.

    * ``resume``: ``out`` must hold a run whose config.json agrees with this one except for the
      options that do not change what is computed (``differences(saved_dict)`` lists the keys that
      differ); otherwise ConfigError naming them.
    * a folder holding a run (config.json) is refused unless ``overwrite`` (which removes the run's
      files and folders, nothing else); a non-empty folder holding something else is refused unless
      ``overwrite`` (which then leaves those files alone).
    """
    if resume:
        if not is_run(out):
            raise RunFolderError(f"--resume: {out} holds no run to resume (no config.json)")
        try:
            saved = read_json(os.path.join(out, "config.json"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--resume: {os.path.join(out, 'config.json')} cannot be read ({exc})") from None
        saved.pop("version", None)
        diff = differences(saved)
        if diff:
            shown = ", ".join(f"{k} ({saved.get(k)!r} -> {config_dict.get(k)!r})" for k in diff)
            raise ConfigError(f"--resume: the configuration differs from the run in {out}: {shown}")
        return
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunFolderError(f"--out {out} is a file, not a folder")
    if is_run(out):
        if not overwrite:
            raise RunFolderError(f"{out} holds another run; use --resume to continue it or --overwrite to replace it")
        for name in RUN_FILES:
            p = os.path.join(out, name)
            if os.path.exists(p):
                os.remove(p)
        for name in RUN_DIRS:
            shutil.rmtree(os.path.join(out, name), ignore_errors=True)
    elif os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise RunFolderError(f"{out} is not empty and holds no run; choose another --out or pass --overwrite")
    os.makedirs(out, exist_ok=True)


class MetricsLog:
    """metrics.csv: one row per evaluation; columns are the union of every row's keys (``step`` first),
    the whole file rewritten atomically on each append (it is small)."""

    def __init__(self, path: str, *, keep_until_step: Optional[int] = None):
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if keep_until_step is not None and os.path.isfile(path):
            with open(path, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    parsed = {k: _parse_cell(v) for k, v in row.items() if v != ""}
                    if int(parsed.get("step", 0)) <= keep_until_step:
                        self.rows.append(parsed)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))
        self._write()

    def _write(self) -> None:
        columns = ["step"]
        for r in self.rows:
            columns.extend(k for k in r if k not in columns)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: _format_cell(r.get(k)) for k in columns})
        atomic_write_text(self.path, buf.getvalue())


def _format_cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return str(v)


def _parse_cell(v: str):
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


class TensorBoardLog:
    """TensorBoard scalars in ``<out>/tensorboard`` when the ``tensorboard`` package is installed;
    a no-op otherwise."""

    def __init__(self, out: str, enabled: bool = True):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard not installed (ImportError) or broken
            return
        self.writer = SummaryWriter(os.path.join(out, "tensorboard"))

    def scalars(self, step: int, values: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step" and math.isfinite(float(v)):
                self.writer.add_scalar(k.replace("_", "/", 1) if k.startswith(("val_", "train_")) else k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
