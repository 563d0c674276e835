"""The oracle lower bound's minute (sim/baselines.py) where no replica count meets the SLO."""

from __future__ import annotations

import pytest

from perfpilot.sim.baselines import oracle_minute
from perfpilot.sim.cluster import ClusterParams
from perfpilot.sim.scenarios import STATIC_SETTINGS


@pytest.mark.parametrize("rate_per_second", [8.16, 50.0, 400.0])  # 8.16: a pool of one connection, 17 s at p95
def test_under_an_slo_nothing_meets_the_oracle_reports_p95_within_the_request_timeout_as_every_run(
    rate_per_second: float,
) -> None:
    params = ClusterParams()
    minute = oracle_minute(rate_per_second=rate_per_second, settings=STATIC_SETTINGS, params=params,
                           slo_seconds=0.001)
    assert not minute.meets_slo
    assert 0 < minute.p95_seconds <= params.request_timeout_seconds
    assert minute.replicas < 1000  # the fewest pods that keep up, not the oracle's cap
