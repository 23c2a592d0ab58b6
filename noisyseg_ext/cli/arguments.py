"""argparse arguments generated from the option table (``noisyseg_ext.training.options``).

Every option becomes ``--name-with-dashes VALUE`` (booleans also accept the bare flag for true),
with its default in the help. Values given on the command line are kept apart from the defaults
(argparse.SUPPRESS), so they override a ``--config`` file and the defaults in turn.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

from noisyseg_ext.training.options import Option, parse_bool


def _default_text(o: Option) -> str:
    d = o.default
    if d is None:
        return "none"
    if isinstance(d, tuple):
        return "x".join(map(str, d))
    if isinstance(d, dict):
        return "{}" if not d else str(d)
    return str(d)


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """Adds one argument per option, grouped by ``option.group``."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for o in options:
        group = groups.get(o.group) or groups.setdefault(o.group, parser.add_argument_group(o.group))
        extra = f" [choices: {', '.join(map(str, o.choices))}]" if o.choices else ""
        # an option whose help says its default in words ("default: the network's own") keeps only that
        default = "" if "(default:" in o.help else f" (default: {_default_text(o)})"
        help_text = f"{o.help}{extra}{default}".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": o.name, "default": argparse.SUPPRESS, "help": help_text}
        if o.parse is parse_bool:
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        else:
            kwargs["metavar"] = o.name.upper()
        group.add_argument(o.cli_flag, **kwargs)


def explicit_values(args: argparse.Namespace, options: Sequence[Option]) -> dict[str, Any]:
    """The options given on the command line (raw strings, parsed later by the option table)."""
    names = {o.name for o in options}
    return {k: v for k, v in vars(args).items() if k in names}


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse's errors (unknown option, missing value) as one line and exit status 2, like ours."""

    def error(self, message: str):
        self.exit(2, f"noisyseg: error: {message} (see `{self.prog} --help`)\n")
