"""`perfpilot crd` — print the PerformanceProfile CustomResourceDefinition generated from the models."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from perfpilot.api.crd import crd_yaml


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "crd",
        help="print the PerformanceProfile CRD generated from the API models",
        description="Print the PerformanceProfile CustomResourceDefinition (apiextensions.k8s.io/v1) generated "
        "from the pydantic models; crds/performanceprofiles.perfpilot.io.yaml is this output.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(crd_yaml())
    return 0
