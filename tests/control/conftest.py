"""The operator's cycle against the emulated Kubernetes API (tests/kube) and a real Prometheus holding the hour of
tests/observe/prom_scenarios.py: both harnesses sit in those folders, and the shop scenario in this one, which pytest's
importlib mode does not put on sys.path."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent.parent
for folder in ("kube", "observe", "control"):
    if str(_TESTS / folder) not in sys.path:
        sys.path.insert(0, str(_TESTS / folder))

from kubeharness import kube  # noqa: E402
from prom_scenarios import build_cluster  # noqa: E402
from promharness import PrometheusServer, running_prometheus  # noqa: E402

__all__ = ["kube", "scenario_prometheus"]


@pytest.fixture(scope="session")
def scenario_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    workdir = tmp_path_factory.mktemp("prometheus")
    with running_prometheus(workdir=workdir, openmetrics=build_cluster().render()) as server:
        yield server
