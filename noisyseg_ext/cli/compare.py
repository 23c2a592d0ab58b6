"""`noisyseg compare`: a grid of methods x noise protocols x ratios x seeds, tabulated.

Every option of `noisyseg train` applies to all runs of the grid (except the ones the grid sets:
method, noise, ratio, seed, out, resume, overwrite)."""

from __future__ import annotations

import argparse
import os

from noisyseg_ext.cli.arguments import add_options, explicit_values
from noisyseg_ext.training.options import all_options, parse_float_list, parse_int_list, parse_str_list

GRID_SET = {"method", "noise", "ratio", "seed", "out", "resume", "overwrite", "quiet"}


def _shared_options():
    return [o for o in all_options() if o.name not in GRID_SET]


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("grid")
    g.add_argument("--methods", default="baseline,clean", help="comma-separated methods (default: baseline,clean)")
    g.add_argument("--noise", default="dilation", help="comma-separated noise protocols (default: dilation)")
    g.add_argument("--ratios", default="0.2,0.4,0.6,0.8", help="comma-separated noise ratios (default: 0.2,0.4,0.6,0.8)")
    g.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    g.add_argument("--metrics", default="dice,miou,hd95,asd,assd", help="metrics tabulated (default: dice,miou,hd95,asd,assd)")
    g.add_argument("--out", default="runs/compare", help="grid folder (default: runs/compare)")
    g.add_argument("--config", default=None, metavar="FILE", help="YAML or JSON file of the shared options")
    add_options(p, _shared_options())


def run(args: argparse.Namespace) -> str:
    from noisyseg_ext.training.compare import check_grid, grid_cells, run_grid, write_outputs
    from noisyseg_ext.training.config import read_config_file
    from noisyseg_ext.errors import ConfigError

    methods, noises = parse_str_list(args.methods), parse_str_list(args.noise)
    try:
        ratios, seeds = parse_float_list(args.ratios), parse_int_list(args.seeds)
    except ValueError as exc:
        raise ConfigError(f"compare: --ratios / --seeds: {exc}") from None
    metrics = parse_str_list(args.metrics)
    check_grid(methods, noises, ratios, seeds)
    base = read_config_file(args.config) if args.config else {}
    base.update(explicit_values(args, _shared_options()))
    cells = grid_cells(methods, noises, ratios, seeds)
    os.makedirs(args.out, exist_ok=True)
    run_grid(base, cells, args.out)
    text = write_outputs(args.out, cells, methods, noises, ratios, metrics)
    print(text)
    return text
