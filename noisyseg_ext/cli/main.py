"""The `noisyseg` command: train | eval | predict | compare | demo (default demo).

User errors (``noisyseg_ext.errors.NoisysegError``: bad data, options, checkpoints, run folders) are
printed as one line ``noisyseg: error: ...`` with exit status 2 and no traceback; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

from noisyseg_ext.cli.arguments import OneLineErrorParser
from noisyseg_ext.errors import NoisysegError

COMMANDS = ("train", "eval", "predict", "compare", "demo")


def _module(name: str):
    import importlib

    return importlib.import_module(f"noisyseg_ext.cli.{'evaluate' if name == 'eval' else name}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="noisyseg", description="Segmentation networks trained on noisy labels.")
    sub = parser.add_subparsers(dest="command", parser_class=OneLineErrorParser)
    helps = {"train": "train a network with a method (on the embedded HC18 sample by default)",
             "eval": "evaluate a checkpoint on a dataset's clean labels",
             "predict": "write the masks a checkpoint predicts for a folder of images",
             "compare": "run a grid of methods x noise ratios x seeds and tabulate it",
             "demo": "short run on the embedded HC18 sample, with a kernel timing"}
    for name in COMMANDS:
        p = sub.add_parser(name, help=helps[name], description=helps[name], usage=f"noisyseg {name} [options]",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter if name == "demo"
                           else argparse.HelpFormatter)
        if command is None or command == name:  # only the chosen command's options are built
            _module(name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["demo", *argv]
    command = argv[0] if argv[0] in COMMANDS else None
    args = build_parser(command).parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    try:
        _module(args.command).run(args)
    except NoisysegError as exc:
        print(f"noisyseg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("noisyseg: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
