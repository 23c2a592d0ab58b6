"""Comparison grids: methods x noise protocols x noise ratios x seeds, tabulated like the papers' tables.

``noisyseg compare --methods baseline,clean --noise dilation --ratios 0.2,0.4 --seeds 0,1,2 --steps S --out DIR``
runs every cell's training into ``DIR/<noise>/r<ratio>/<method>/s<seed>`` (``--noise-params`` may
hold one entry per protocol: ``{"dilation": {"iterations": [2, 5]}, "elastic": {"sigma": 3}}``) (the ``clean`` method, which
ignores the noise, once per seed in ``DIR/clean/s<seed>``, shown in every column), skips runs whose
results.json exists, resumes runs that have a checkpoint, and writes

* ``table.md`` / ``table.csv``: per metric, mean ± std over seeds of the runs' test means, a row per
  method and a column per (noise, ratio);
* ``dice_vs_ratio.png`` (and one per other metric): the metric against the noise ratio per method.

With several GPUs, runs go one per GPU in parallel subprocesses; otherwise one after another in this
process.
"""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.training import run_folder
from noisyseg_ext.training.checkpoint import atomic_write_text
from noisyseg_ext.training.config import Config, make_config
from noisyseg_ext.training.report import LABELS

TABLE_METRICS = ("dice", "miou", "hd95", "asd", "assd")
HIGHER_IS_BETTER = {"dice": True, "iou": True, "miou": True, "hd95": False, "asd": False, "assd": False}


@dataclass(frozen=True)
class Cell:
    """One run of the grid. ``noise`` is "none" for the clean method."""

    method: str
    noise: str
    ratio: float
    seed: int

    def folder(self, root: str) -> str:
        if self.method == "clean":
            return os.path.join(root, "clean", f"s{self.seed}")
        return os.path.join(root, self.noise, f"r{self.ratio:g}", self.method, f"s{self.seed}")


def grid_cells(methods: Sequence[str], noises: Sequence[str], ratios: Sequence[float],
               seeds: Sequence[int]) -> list[Cell]:
    """Every run of the grid, the clean method once per seed."""
    cells: list[Cell] = []
    for seed in seeds:
        for method in methods:
            if method == "clean":
                cells.append(Cell("clean", "none", 0.0, seed))
                continue
            for noise in noises:
                for ratio in ratios:
                    cells.append(Cell(method, noise, float(ratio), seed))
    return cells


def protocol_params(noise_params: Any, noise: str) -> dict[str, Any]:
    """The noise parameters of one protocol: ``noise_params`` as is, or, when its keys are all protocol
    names (``{"dilation": {"iterations": [2, 5]}, "elastic": {"sigma": 3}}``), the entry of ``noise``."""
    from noisyseg_ext.noise.protocols import PROTOCOLS

    if isinstance(noise_params, str):
        from noisyseg_ext.training.options import parse_json_dict

        noise_params = parse_json_dict(noise_params)
    params = dict(noise_params or {})
    if params and all(k in PROTOCOLS for k in params):
        return dict(params.get(noise, {}))
    return params


def cell_config(base: dict[str, Any], cell: Cell, root: str) -> Config:
    """The run's Config: the shared options plus the cell's method / noise / ratio / seed / folder
    (and the cell's protocol's entry of a per-protocol ``noise_params``)."""
    values = dict(base, method=cell.method, seed=cell.seed, out=cell.folder(root), quiet=True)
    if cell.method == "clean":
        values.update(noise="none", ratio=0.0, noise_params={})
    else:
        values.update(noise=cell.noise, ratio=cell.ratio,
                      noise_params=protocol_params(base.get("noise_params", {}), cell.noise))
    return make_config(**values)


def _state(folder: str) -> str:
    if os.path.isfile(os.path.join(folder, "results.json")):
        return "done"
    if os.path.isfile(run_folder.checkpoint_path(folder, "last")):
        return "resume"
    return "new"


def run_cell(config: Config) -> None:
    """Trains one cell in this process: resumes from its checkpoint or starts (replacing a run folder
    that never reached its first checkpoint)."""
    from noisyseg_ext.training.trainer import Trainer

    state = _state(config.out)
    cfg = config.replace(resume=(state == "resume"), overwrite=(state == "new"))
    Trainer(cfg).fit()


def _cli_args(config: Config) -> list[str]:
    """The command line of ``noisyseg train`` that reproduces ``config`` (for subprocess runs)."""
    args = []
    for k, v in config.to_dict().items():
        if v is None:
            continue
        if isinstance(v, list):
            v = "x".join(map(str, v))
        elif isinstance(v, dict):
            import json

            v = json.dumps(v)
        args += ["--" + k.replace("_", "-"), str(v)]
    return args


def run_grid(base: dict[str, Any], cells: Sequence[Cell], root: str, *, log: Callable = print,
             gpus: Optional[int] = None) -> None:
    """Runs every cell not yet done (see the module docstring); ``gpus`` (default: the CUDA device count)
    > 1 runs them in parallel subprocesses, one per GPU."""
    import torch

    gpus = torch.cuda.device_count() if gpus is None else gpus
    todo = [(c, cell_config(base, c, root)) for c in cells]
    todo = [(c, cfg) for c, cfg in todo if _state(cfg.out) != "done"]
    log(f"compare: {len(cells)} runs, {len(cells) - len(todo)} done, {len(todo)} to run")
    if gpus > 1:
        _run_parallel(todo, gpus, log)
        return
    for i, (cell, cfg) in enumerate(todo, 1):
        t0 = time.perf_counter()
        run_cell(cfg)
        log(f"[{i}/{len(todo)}] {cell.method} {cell.noise} {cell.ratio:g} seed {cell.seed}: "
            f"{time.perf_counter() - t0:.0f} s -> {cfg.out}")


def _run_parallel(todo, gpus: int, log: Callable) -> None:
    running: dict[int, tuple[subprocess.Popen, Cell]] = {}
    queue = list(todo)
    failed = []
    while queue or running:
        for gpu in range(gpus):
            if gpu not in running and queue:
                cell, cfg = queue.pop(0)
                state = _state(cfg.out)
                extra = ["--resume", "true"] if state == "resume" else ["--overwrite", "true"]
                cmd = [sys.executable, "-m", "noisyseg_ext.cli.main", "train", *_cli_args(cfg.replace(device="cuda")),
                       *extra]
                env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(gpu))
                running[gpu] = (subprocess.Popen(cmd, env=env), cell)
        time.sleep(1.0)
        for gpu, (proc, cell) in list(running.items()):
            if proc.poll() is not None:
                del running[gpu]
                if proc.returncode != 0:
                    failed.append(cell)
                log(f"{cell.method} {cell.noise} {cell.ratio:g} seed {cell.seed}: exit {proc.returncode} (GPU {gpu})")
    if failed:
        raise RuntimeError(f"compare: {len(failed)} run(s) failed: {failed}")


def collect(cells: Sequence[Cell], root: str) -> list[dict[str, Any]]:
    """The results.json of every finished cell, with its cell's fields."""
    rows = []
    for c in cells:
        path = os.path.join(c.folder(root), "results.json")
        if os.path.isfile(path):
            r = run_folder.read_json(path)
            rows.append({"method": c.method, "noise": c.noise, "ratio": c.ratio, "seed": c.seed,
                         **{k: _float(r.get(k)) for k in ("dice", "iou", "miou", "hd95", "asd", "assd")},
                         "train_seconds": r.get("train_seconds")})
    return rows


def _float(v) -> float:
    if v is None:
        return math.nan
    if isinstance(v, str):
        return math.inf if v == "inf" else -math.inf if v == "-inf" else math.nan
    return float(v)


def _mean_std(values: list[float]) -> tuple[float, float, int]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan, math.nan, 0
    m = sum(vals) / len(vals)
    # sample std over seeds (n - 1), as papers' tables over repeated runs report it
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return m, s, len(vals)


def summarize_grid(rows: list[dict[str, Any]], methods: Sequence[str], noises: Sequence[str],
                   ratios: Sequence[float], metrics: Sequence[str] = TABLE_METRICS) -> list[dict[str, Any]]:
    """One row per (method, noise, ratio) with ``<metric>_mean``, ``<metric>_std``, ``n`` (seeds)."""
    out = []
    for method in methods:
        for noise in noises:
            for ratio in ratios:
                sel = [r for r in rows if r["method"] == method and
                       (method == "clean" or (r["noise"] == noise and abs(r["ratio"] - ratio) < 1e-9))]
                row: dict[str, Any] = {"method": method, "noise": noise, "ratio": ratio}
                for m in metrics:
                    mean, std, n = _mean_std([r[m] for r in sel])
                    row[f"{m}_mean"], row[f"{m}_std"] = mean, std
                    row["n"] = n
                out.append(row)
    return out


def _fmt(mean: float, std: float, metric: str) -> str:
    if math.isnan(mean):
        return "–"
    if metric in ("dice", "iou", "miou"):
        return f"{100 * mean:.1f} ± {100 * std:.1f}"
    return f"{mean:.2f} ± {std:.2f}"


def format_tables(summary: list[dict[str, Any]], methods: Sequence[str], noises: Sequence[str],
                  ratios: Sequence[float], metrics: Sequence[str] = TABLE_METRICS) -> str:
    """Markdown: one table per metric (Dice / IoU in %, distances in the images' units), a row per method,
    a column per (noise, ratio); the best non-clean method of each column in bold."""
    index = {(r["method"], r["noise"], r["ratio"]): r for r in summary}
    cols = [(n, r) for n in noises for r in ratios]
    parts = []
    for m in metrics:
        head = "| method | " + " | ".join(f"{n} {100 * r:g} %" for n, r in cols) + " |"
        lines = [f"### {LABELS.get(m, m)} (mean ± std over seeds{', %' if m in ('dice', 'iou', 'miou') else ''})",
                 "", head, "|" + " --- |" * (len(cols) + 1)]
        best = {}
        for col in cols:
            vals = [(index[(meth, *col)][f"{m}_mean"], meth) for meth in methods
                    if meth != "clean" and not math.isnan(index[(meth, *col)][f"{m}_mean"])]
            if vals:
                best[col] = (max if HIGHER_IS_BETTER[m] else min)(vals)[1]
        for meth in methods:
            cells = []
            for col in cols:
                r = index[(meth, *col)]
                text = _fmt(r[f"{m}_mean"], r[f"{m}_std"], m)
                cells.append(f"**{text}**" if best.get(col) == meth else text)
            lines.append(f"| {meth} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    n_seeds = max((r["n"] for r in summary), default=0)
    return "\n\n".join(parts) + f"\n\nSeeds per cell: up to {n_seeds}. Bold: best method per column (clean excluded).\n"


def write_outputs(root: str, cells: Sequence[Cell], methods, noises, ratios, metrics=TABLE_METRICS) -> str:
    """Writes table.md, table.csv and the ratio plots; returns the Markdown."""
    from noisyseg_ext.figures import plot_ratio_curves

    rows = collect(cells, root)
    summary = summarize_grid(rows, methods, noises, ratios, metrics)
    text = format_tables(summary, methods, noises, ratios, metrics)
    atomic_write_text(os.path.join(root, "table.md"), text)
    buf = io.StringIO()
    fields = ["method", "noise", "ratio", "n"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in summary:
        w.writerow(r)
    atomic_write_text(os.path.join(root, "table.csv"), buf.getvalue())
    runs = io.StringIO()
    w = csv.DictWriter(runs, fieldnames=list(rows[0]) if rows else ["method"], lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    atomic_write_text(os.path.join(root, "runs.csv"), runs.getvalue())
    for noise in noises:
        sel = [r for r in summary if r["noise"] == noise]
        for m in metrics:
            if any(not math.isnan(r[f"{m}_mean"]) for r in sel):
                suffix = "" if len(noises) == 1 else f"_{noise}"
                plot_ratio_curves(sel, os.path.join(root, f"{m}_vs_ratio{suffix}.png"), metric=m)
    return text


def check_grid(methods: Sequence[str], noises: Sequence[str], ratios: Sequence[float], seeds: Sequence[int]) -> None:
    from noisyseg_ext.methods.registry import get_method

    if not methods or not seeds:
        raise ConfigError("compare: --methods and --seeds must not be empty")
    for m in methods:
        get_method(m)
    if any(m != "clean" for m in methods) and (not noises or not ratios):
        raise ConfigError("compare: --noise and --ratios must not be empty")
    for r in ratios:
        if not 0.0 <= r <= 1.0:
            raise ConfigError(f"compare: ratio {r} is outside [0, 1]")
