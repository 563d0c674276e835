"""decide_lease, table by table: who leads given the Lease as read, what this replica saw of it before and when (on
its own monotonic clock, never against the holder's renewTime)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from perfpilot.control.leader import LeaseRecord, LeaseSettings, Observation, decide_lease

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MONO = 5_000.0  # a monotonic clock's reading: seconds since some boot, unrelated to NOW
ME = LeaseSettings(namespace="perfpilot", identity="perfpilot-b", duration_seconds=30)


def _lease(holder: str, *, renew: str = "2026-11-30T11:59:50.000000Z", version: str = "7",
           transitions: int = 2) -> dict[str, Any]:
    return {"metadata": {"name": "perfpilot", "namespace": "perfpilot", "resourceVersion": version},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 30, "renewTime": renew,
                     "acquireTime": "2026-11-30T10:00:00.000000Z", "leaseTransitions": transitions}}


def test_no_lease_is_taken_at_once() -> None:
    decision = decide_lease(None, settings=ME, seen=None, now=NOW, now_monotonic=MONO)
    assert decision.spec is not None
    assert (decision.spec["holderIdentity"], decision.spec["leaseTransitions"]) == ("perfpilot-b", 0)
    assert decision.spec["renewTime"] == decision.spec["acquireTime"] == "2026-11-30T12:00:00.000000Z"


def test_our_own_lease_is_renewed_keeping_when_it_was_acquired() -> None:
    decision = decide_lease(_lease("perfpilot-b"), settings=ME, seen=None, now=NOW, now_monotonic=MONO)
    assert decision.spec is not None
    assert decision.spec["acquireTime"] == "2026-11-30T10:00:00.000000Z"
    assert (decision.spec["renewTime"], decision.spec["leaseTransitions"]) == ("2026-11-30T12:00:00.000000Z", 2)


def test_another_holders_lease_first_seen_now_is_left_to_it_however_old_its_renew_time() -> None:
    # Its renewTime is a day old by our clock: a skewed clock, ours or its, must not make us take over.
    decision = decide_lease(_lease("perfpilot-a", renew="2026-11-29T12:00:00.000000Z"), settings=ME, seen=None,
                            now=NOW, now_monotonic=MONO)
    assert decision.spec is None
    assert decision.observation.seen_at_monotonic == MONO


@pytest.mark.parametrize(("seconds_unchanged", "leads"), [(29, False), (30, True), (300, True)])
def test_another_holders_lease_unchanged_for_its_duration_is_taken_over(seconds_unchanged: int, leads: bool) -> None:
    lease = _lease("perfpilot-a")
    first = decide_lease(lease, settings=ME, seen=None, now=NOW, now_monotonic=MONO - seconds_unchanged)
    decision = decide_lease(lease, settings=ME, seen=first.observation, now=NOW, now_monotonic=MONO)
    assert (decision.spec is not None) == leads
    if decision.spec is not None:
        assert (decision.spec["acquireTime"], decision.spec["leaseTransitions"]) == ("2026-11-30T12:00:00.000000Z", 3)


def test_a_renewal_seen_starts_the_wait_again() -> None:
    first = decide_lease(_lease("perfpilot-a"), settings=ME, seen=None, now=NOW, now_monotonic=MONO - 60)
    renewed = _lease("perfpilot-a", renew="2026-11-30T11:59:59.000000Z", version="8")
    decision = decide_lease(renewed, settings=ME, seen=first.observation, now=NOW, now_monotonic=MONO)
    assert decision.spec is None
    assert decision.observation == Observation(
        record=LeaseRecord("perfpilot-a", "2026-11-30T11:59:59.000000Z", "8"), seen_at_monotonic=MONO)


def test_a_step_of_the_wall_clock_does_not_shorten_the_wait() -> None:
    lease = _lease("perfpilot-a")
    first = decide_lease(lease, settings=ME, seen=None, now=NOW, now_monotonic=MONO)
    # The wall clock jumped a day ahead; the monotonic one moved a second.
    decision = decide_lease(lease, settings=ME, seen=first.observation, now=NOW + timedelta(days=1),
                            now_monotonic=MONO + 1)
    assert decision.spec is None


def test_a_released_lease_is_taken_at_once() -> None:
    decision = decide_lease(_lease(""), settings=ME, seen=None, now=NOW, now_monotonic=MONO)
    assert decision.spec is not None
    assert decision.spec["leaseTransitions"] == 3  # a change of holder, as client-go counts it
