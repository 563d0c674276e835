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

__all__ = ["kube", "scenario_prometheus", "served_scenario_prometheus"]


@pytest.fixture(scope="session")
def scenario_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """The hour, with pgBouncers whose exporter gives no pool size served: the hour ends at the first cycle's
    time, so a pool written then would read as never served by the cycles after it, which most tests are not
    about (served_scenario_prometheus is)."""
    workdir = tmp_path_factory.mktemp("prometheus")
    with running_prometheus(workdir=workdir, openmetrics=build_cluster(pool_size_served=False).render()) as server:
        yield server


@pytest.fixture(scope="session")
def served_scenario_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """The hour with the pool size each pgBouncer serves (shop's: 10, what its ConfigMap holds)."""
    workdir = tmp_path_factory.mktemp("prometheus-served")
    with running_prometheus(workdir=workdir, openmetrics=build_cluster().render()) as server:
        yield server
