"""Comparison grids: cells, a half-done grid resumed, tables and plots."""

import math
import os

import pytest

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.training.compare import (check_grid, collect, format_tables, grid_cells, run_grid,
                                           summarize_grid, write_outputs)
from noisyseg_ext.training import run_folder

BASE = dict(data="hc18-sample", size=(32, 48), base=4, depth=2, batch=4, steps=2, eval_every=2, device="cpu")


def test_cells_run_clean_once_per_seed():
    cells = grid_cells(["baseline", "clean"], ["dilation", "elastic"], [0.4, 0.8], [0, 1])
    assert len(cells) == 2 * (4 + 1)
    assert sum(c.method == "clean" for c in cells) == 2


def test_per_protocol_noise_params(tmp_path):
    from noisyseg_ext.training.compare import Cell, cell_config

    base = dict(BASE, noise_params='{"dilation": {"iterations": [2, 5]}, "elastic": {"sigma": 3.0}}')
    assert cell_config(base, Cell("baseline", "dilation", 0.4, 0), str(tmp_path)).noise_params == {"iterations": [2, 5]}
    assert cell_config(base, Cell("baseline", "elastic", 0.4, 0), str(tmp_path)).noise_params == {"sigma": 3.0}
    assert cell_config(base, Cell("clean", "none", 0.0, 0), str(tmp_path)).noise_params == {}
    plain = dict(BASE, noise_params={"iterations": [1, 2]})
    assert cell_config(plain, Cell("baseline", "dilation", 0.4, 0), str(tmp_path)).noise_params == {"iterations": [1, 2]}


def test_grid_checks():
    with pytest.raises(ConfigError, match="unknown method"):
        check_grid(["baseline", "nope"], ["dilation"], [0.4], [0])
    with pytest.raises(ConfigError, match="outside"):
        check_grid(["baseline"], ["dilation"], [1.2], [0])


def test_half_done_grid_resumes_and_tabulates(tmp_path):
    root = str(tmp_path / "grid")
    methods, noises, ratios, seeds = ["baseline", "clean"], ["dilation"], [0.5], [0]
    cells = grid_cells(methods, noises, ratios, seeds)
    logs = []
    run_grid(BASE, cells, root, log=logs.append)
    assert logs[0] == "compare: 2 runs, 0 done, 2 to run"
    done = cells[0].folder(root)
    first = run_folder.read_json(os.path.join(done, "results.json"))
    os.remove(os.path.join(cells[1].folder(root), "results.json"))          # half done: one run to redo
    logs.clear()
    run_grid(BASE, cells, root, log=logs.append)
    assert logs[0] == "compare: 2 runs, 1 done, 1 to run"
    assert run_folder.read_json(os.path.join(done, "results.json")) == first  # the done run was not touched
    text = write_outputs(root, cells, methods, noises, ratios)
    for f in ("table.md", "table.csv", "runs.csv", "dice_vs_ratio.png"):
        assert os.path.isfile(os.path.join(root, f)), f
    assert "| baseline |" in text and "| clean |" in text and "dilation 50 %" in text


def test_table_layout_and_bold_best():
    rows = [{"method": m, "noise": "dilation", "ratio": 0.4, "seed": s, "dice": d + 0.01 * s, "iou": d, "miou": d,
             "hd95": 10 - 10 * d, "asd": 1.0, "assd": 1.0}
            for m, d in (("baseline", 0.80), ("mcpm", 0.85), ("clean", 0.95)) for s in (0, 1, 2)]
    summary = summarize_grid(rows, ["baseline", "mcpm", "clean"], ["dilation"], [0.4])
    b = next(r for r in summary if r["method"] == "baseline")
    assert b["dice_mean"] == pytest.approx(0.81) and b["dice_std"] == pytest.approx(0.01) and b["n"] == 3
    text = format_tables(summary, ["baseline", "mcpm", "clean"], ["dilation"], [0.4])
    assert "| mcpm | **86.0 ± 1.0** |" in text          # best non-clean method in bold
    assert "| clean | 96.0 ± 1.0 |" in text
    hd = text.split("### HD95")[1]
    assert "| mcpm | **1.50 ± 0.00** |" in hd             # lower is better for distances
