"""`perfpilot plan` — placeholder until its issue lands; replaced by the real command."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("plan", help="(not built yet)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SystemExit("perfpilot plan: not built yet")
