"""The ``perfpilot`` command line: one subcommand per module in ``perfpilot.commands``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from perfpilot import __version__

# Order is the order ``--help`` lists them in.
SUBCOMMAND_MODULES = ("crd", "validate", "plan", "simulate", "run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perfpilot",
        description="Tune a service's HPA, resources and pgBouncer pool from its latency SLO.",
    )
    parser.add_argument("--version", action="version", version=f"perfpilot {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"perfpilot.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if sys.stdout is None:  # started with standard output closed (`perfpilot crd >&-`): nothing can be printed
        if sys.stderr is not None:
            print("perfpilot: standard output is closed; every command prints to it", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # `perfpilot plan | head`: the reader left; say nothing more (Python's own advice for pipes).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
