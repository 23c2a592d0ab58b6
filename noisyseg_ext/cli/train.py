"""`noisyseg train`: one training run (also under `torchrun --nproc_per_node K`)."""

from __future__ import annotations

import argparse

from noisyseg_ext.cli.arguments import add_options, explicit_values
from noisyseg_ext.training.options import all_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    from noisyseg_ext.methods.registry import METHODS

    p.add_argument("--config", default=None, metavar="FILE",
                   help="YAML or JSON file of options (names as below, with _ or -); the command line overrides it")
    add_options(p, all_options())
    p.epilog = "methods: " + "; ".join(f"{name}: {cls.help}" for name, cls in sorted(METHODS.items()))


def run(args: argparse.Namespace) -> dict:
    from noisyseg_ext.training import Trainer, make_config

    from noisyseg_ext.training import distributed

    config = make_config(args.config, **explicit_values(args, all_options()))
    try:
        return Trainer(config).fit()
    finally:
        distributed.shutdown(distributed.from_environment())
