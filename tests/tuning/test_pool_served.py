"""A pool size is verified against what pgBouncer serves, not what its ConfigMap holds.

pgBouncer reads its ini only when reloaded (by the admin console, a sidecar, a restart): a size written and
never reloaded changes nothing, and judging it would judge the old pool. The exporter's pool-size series
(SHOW DATABASES, smallest and largest over the pooler pods) say what is served.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import tuning_builders as b

from perfpilot.api.status import Baseline, ChangeRecord, PoolSize, Setting, TuningState, Verdict
from perfpilot.tuning.engine import decide
from perfpilot.tuning.observations import Observations, PoolLive, Series, Unknown
from perfpilot.tuning.signals import PoolServed, compute_pool_served

STEP = b.STEP_SECONDS
END = b.NOW.timestamp()


def served(smallest: list[float], largest: list[float] | None = None) -> dict[str, Series]:
    """Served-size readings ending now, one a minute (``largest`` defaults to ``smallest``: one pooler pod)."""
    return {"pool_served_size_min": Series.of(smallest, end_seconds=END, step_seconds=STEP),
            "pool_served_size_max": Series.of(largest or smallest, end_seconds=END, step_seconds=STEP)}


@pytest.mark.parametrize(("smallest", "largest", "expected"), [
    # Served throughout: since the first sample.
    ([30, 30, 30], None, PoolServed(smallest=30, largest=30, size=30, since_seconds=END - 2 * STEP,
                                    throughout=True)),
    # Served from the second-last sample on (a reload a minute ago).
    ([20, 20, 30, 30], None, PoolServed(smallest=30, largest=30, size=30, since_seconds=END - STEP)),
    # One pod of two still on the old size: not served now.
    ([20, 20], [20, 30], PoolServed(smallest=20, largest=30, size=30, since_seconds=None)),
    # Served once, then a pod went back to its file (a restart on an old ini): not served now.
    ([30, 30, 20], None, PoolServed(smallest=20, largest=20, size=30, since_seconds=None)),
    # A pod that fell back and came back: served since it came back, not before.
    ([30, 20, 30], [30, 30, 30], PoolServed(smallest=30, largest=30, size=30, since_seconds=END)),
])
def test_the_pool_served_is_read_from_the_smallest_and_largest_over_the_pooler_pods(
    smallest: list[float], largest: list[float] | None, expected: PoolServed
) -> None:
    observations = b.observations(**served(smallest, largest))
    assert compute_pool_served(observations, size=30) == expected


def test_an_exporter_without_the_pool_size_series_leaves_it_unknown() -> None:
    observations = b.observations(pool_served_size_max=b.unknown("no series for pool shop/* database app"),
                                  pool_served_size_min=b.series(30))
    found = compute_pool_served(observations, size=30)
    assert isinstance(found, Unknown) and "no series for pool shop/* database app" in found.reason


# --- a new size while the configured one is not served ---------------------------------------------------


def grow_observations(**readings: Series) -> Observations:
    """A pool at full use (20 of 20 busy, clients waiting): the pool rules grow it."""
    return replace(b.pool_observations(active=20, waiting=4), **readings)


def test_a_pool_change_is_not_made_while_pgbouncer_serves_another_size_than_the_configured_one() -> None:
    # The ConfigMap says 20, pgBouncer serves 10 (someone edited the ini and nothing reloaded it): 20 -> 30
    # would be written where nothing reads it.
    decision = decide(b.profile(), grow_observations(**served([10.0] * b.SAMPLES)), b.EMPTY_STATE, b.NOW)
    assert decision.change is None or decision.change.edit.setting is not Setting.POOL_SIZE, decision.change
    assert "pool change not made: the pool is configured at size 20 but pgBouncer serves pool size 10" in (
        decision.reason)
    # Served as configured, the same load grows the pool.
    grown = decide(b.profile(), grow_observations(**served([20.0] * b.SAMPLES)), b.EMPTY_STATE, b.NOW)
    assert grown.change is not None and grown.change.edit.setting is Setting.POOL_SIZE, grown.reason
    # Without the exporter's pool-size series, the configured size is taken as served, as before.
    unread = decide(b.profile(), grow_observations(), b.EMPTY_STATE, b.NOW)
    assert unread.change is not None and unread.change.edit.setting is Setting.POOL_SIZE, unread.reason


def test_recommend_mode_still_shows_the_pool_change() -> None:
    decision = decide(b.profile(mode="Recommend"), grow_observations(**served([10.0] * b.SAMPLES)),
                      b.EMPTY_STATE, b.NOW)
    assert decision.change is not None and decision.change.edit.setting is Setting.POOL_SIZE
    assert not decision.apply


# --- verifying a pool change: from when it is served --------------------------------------------------------


def pool_grow_pending(*, minutes_ago: float) -> TuningState:
    return TuningState(last_change=ChangeRecord(
        at=b.NOW - b.minutes(minutes_ago), target="ConfigMap/pgbouncer", setting=Setting.POOL_SIZE,
        from_value=PoolSize(default_pool_size=20, reserve_pool_size=10),
        to_value=PoolSize(default_pool_size=30, reserve_pool_size=20),
        baseline=Baseline(p95_latency_seconds=0.35, error_ratio=0.001, request_rate_per_second=100)))


def written(**readings: Series) -> Observations:
    """The ConfigMap holds the grown pool 30+20; quiet load, p95 as before."""
    return b.observations(live=b.live(pool=PoolLive(default_pool_size=30, reserve_pool_size=20)), **readings)


def test_a_pool_change_not_yet_served_waits_without_a_verdict() -> None:
    decision = decide(b.profile(), written(**served([20.0] * b.SAMPLES)), pool_grow_pending(minutes_ago=5), b.NOW)
    assert decision.verdict is None and decision.change is None
    assert "pool size 30 written at 11:55:00 but pgBouncer serves pool size 20 on every pooler pod" in decision.reason
    assert "its verification begins once every pooler pod serves it" in decision.reason


def test_a_pool_change_never_served_by_its_verdict_is_rolled_back_and_its_move_barred() -> None:
    # Due after verifyFor (15 minutes) and still not served: it was never verified, and a restart would bring
    # it in unverified, so the ConfigMap goes back to what runs.
    decision = decide(b.profile(), written(**served([20.0] * b.SAMPLES)), pool_grow_pending(minutes_ago=16), b.NOW)
    assert decision.verdict is Verdict.ROLLED_BACK, decision.verdict_reason
    assert "not served by every pooler pod by its verdict, so never verified" in decision.verdict_reason
    assert decision.change is not None and decision.change.rollback and decision.apply
    assert decision.change.edit.to_value == PoolSize(default_pool_size=20, reserve_pool_size=10)
    assert decision.barred_until is not None and decision.barred_until > b.NOW
    # With rollback off it is kept (and no new pool size goes while it is not served: see above).
    kept = decide(b.profile(guardrails={"rollback": False}), written(**served([20.0] * b.SAMPLES)),
                  pool_grow_pending(minutes_ago=16), b.NOW)
    assert kept.verdict is Verdict.INCONCLUSIVE and "guardrails.rollback is off: kept" in kept.verdict_reason
    assert kept.change is None or not kept.change.rollback


def test_a_pool_change_served_late_is_verified_from_when_it_was_served() -> None:
    # Written 16 minutes ago, served for the last 6 only (a reload sidecar that came late): the after-span
    # starts once it is served, so the verdict is not due yet.
    late = [20.0] * (b.SAMPLES - 7) + [30.0] * 7
    decision = decide(b.profile(), written(**served(late)), pool_grow_pending(minutes_ago=16), b.NOW)
    assert decision.verdict is None, decision.verdict_reason
    assert "verifying pool.size change until 12:09:00" in decision.reason  # served from 11:54, + verifyFor
    # Served since the write: judged now (kept: nothing regressed).
    at_once = [20.0] * (b.SAMPLES - 17) + [30.0] * 17
    judged = decide(b.profile(), written(**served(at_once)), pool_grow_pending(minutes_ago=16), b.NOW)
    assert judged.verdict is Verdict.KEPT, judged.verdict_reason


def test_a_pool_change_is_judged_on_its_write_time_when_the_exporter_does_not_say() -> None:
    decision = decide(b.profile(), written(), pool_grow_pending(minutes_ago=16), b.NOW)
    assert decision.verdict is Verdict.KEPT, decision.verdict_reason


def test_a_pool_change_served_by_the_first_reading_after_its_write_is_verified_from_the_write() -> None:
    # Written at 11:49:30; the readings are a minute apart, and the first after the write (11:50) shows it
    # served: that is as soon as they can tell, so verifyFor counts from the write, not from the reading.
    state = pool_grow_pending(minutes_ago=10.5)
    first_after = [20.0] * (b.SAMPLES - 11) + [30.0] * 11
    decision = decide(b.profile(), written(**served(first_after)), state, b.NOW)
    assert "verifying pool.size change until 12:04:30" in decision.reason
    # Served a reading later (11:51), it counts from then.
    second_after = [20.0] * (b.SAMPLES - 10) + [30.0] * 10
    later = decide(b.profile(), written(**served(second_after)), state, b.NOW)
    assert "verifying pool.size change until 12:06:00" in later.reason


def test_a_pool_change_someone_else_has_overwritten_is_not_rolled_back_as_unserved() -> None:
    # 20 -> 30 written, then someone set 25+20 by hand (served or not): that value is theirs, so the verdict
    # is decide_verdict's (Inconclusive, nothing rolled back), not a rollback to 20 that the writer would
    # refuse at every evaluation (its live value is not the 30 it undoes).
    theirs = b.observations(live=b.live(pool=PoolLive(default_pool_size=25, reserve_pool_size=20)),
                            **served([20.0] * b.SAMPLES))
    decision = decide(b.profile(), theirs, pool_grow_pending(minutes_ago=16), b.NOW)
    assert decision.verdict is Verdict.INCONCLUSIVE, decision.verdict_reason
    assert "changed by someone else" in decision.verdict_reason
    assert decision.change is None or not decision.change.rollback


def test_a_pool_change_served_since_before_the_window_is_judged_from_its_write() -> None:
    # A window (10 minutes) shorter than verifyFor (15): served at every reading the window holds, so when it
    # began is out of sight. Counted from the readings, the verdict would move on at every evaluation.
    short = b.profile(guardrails={"window": "10m"})
    readings = {name: Series.of([30.0] * 11, end_seconds=END, step_seconds=STEP)
                for name in ("pool_served_size_min", "pool_served_size_max")}
    for minutes_ago in (20, 60, 600):
        decision = decide(short, replace(written(**readings), window_seconds=600.0),
                          pool_grow_pending(minutes_ago=minutes_ago), b.NOW)
        assert decision.verdict is not None, (minutes_ago, decision.reason)
    # A write hours old with p95 above the SLO now: judged late (kept), as without the exporter's series, not
    # rolled back on evidence that is not its own.
    late = decide(b.profile(), written(latency_p95_seconds=b.series(0.9), **served([30.0] * b.SAMPLES)),
                  pool_grow_pending(minutes_ago=300), b.NOW)
    assert late.verdict is Verdict.INCONCLUSIVE and "judged" in late.verdict_reason, late.verdict_reason


def shrink_pending(*, minutes_ago: float = 16) -> TuningState:
    return TuningState(last_change=ChangeRecord(
        at=b.NOW - b.minutes(minutes_ago), target="ConfigMap/pgbouncer", setting=Setting.POOL_SIZE,
        from_value=PoolSize(default_pool_size=30, reserve_pool_size=20),
        to_value=PoolSize(default_pool_size=20, reserve_pool_size=10),
        baseline=Baseline(p95_latency_seconds=0.35, error_ratio=0.001, request_rate_per_second=100)))


def shrunk(*, pooler_replicas: int, **readings: Series) -> Observations:
    return b.observations(live=b.live(pool=PoolLive(default_pool_size=20, reserve_pool_size=10,
                                                    pooler_replicas=pooler_replicas)), **readings)


@pytest.mark.parametrize("smallest", [30.0, 20.0])  # no pod serves the shrink; some pod does
def test_an_unserved_pool_change_is_not_rolled_back_past_the_server_connection_budget(smallest: float) -> None:
    # A shrink 30+20 -> 20+10 never served everywhere; the pooler scaled to 4 replicas since: restoring 30+20
    # would be 200 server connections against a budget of 160.
    profile = b.profile(pool={"maxServerConnections": 160, "size": {"min": 5, "max": 100}})
    readings = served([smallest] * b.SAMPLES, [30.0] * b.SAMPLES)
    decision = decide(profile, shrunk(pooler_replicas=4, **readings), shrink_pending(), b.NOW)
    assert decision.verdict is Verdict.INCONCLUSIVE, decision.verdict_reason
    assert "maxServerConnections 160" in decision.verdict_reason
    assert decision.change is None or not decision.change.rollback
    # On 3 replicas (150) it fits, and goes back.
    fits = decide(profile, shrunk(pooler_replicas=3, **readings), shrink_pending(), b.NOW)
    assert fits.verdict is Verdict.ROLLED_BACK and fits.change is not None and fits.change.rollback


def test_an_unserved_pool_change_whose_previous_size_is_outside_the_bounds_is_kept() -> None:
    # The size before (30) was hand-set above today's bounds (max 25): no write leaves them, a rollback's
    # included.
    profile = b.profile(pool={"size": {"min": 5, "max": 25}})
    decision = decide(profile, shrunk(pooler_replicas=1, **served([30.0] * b.SAMPLES)), shrink_pending(), b.NOW)
    assert decision.verdict is Verdict.INCONCLUSIVE and "bounds" in decision.verdict_reason, decision.verdict_reason


def test_an_emergency_does_not_spend_its_move_undoing_a_pool_cut_no_pod_serves() -> None:
    # The shrink 8 minutes ago is served nowhere (every pod still at 30): undoing it gives nothing back, so the
    # emergency makes its own move at once.
    state = shrink_pending(minutes_ago=8)
    emergency = shrunk(pooler_replicas=1, latency_p95_seconds=b.series(1.2), **served([30.0] * b.SAMPLES))
    decision = decide(b.profile(), emergency, state, b.NOW)
    assert decision.change is not None and decision.change.emergency and not decision.change.rollback, (
        decision.reason)
    # Served, the cut is undone first.
    undone = decide(b.profile(), shrunk(pooler_replicas=1, latency_p95_seconds=b.series(1.2),
                                        **served([20.0] * b.SAMPLES)), state, b.NOW)
    assert undone.change is not None and undone.change.rollback, undone.reason
