"""The `noisyseg` command."""

from __future__ import annotations

import argparse
import sys

from noisyseg_ext.cli import demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="noisyseg", description="Segmentation with noisy labels.")
    sub = parser.add_subparsers(dest="command")
    demo.add_arguments(sub.add_parser("demo", help="short run on the embedded HC18 sample (default)"))
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["demo", *argv]
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
