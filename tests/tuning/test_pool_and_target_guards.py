"""Edges of the pool rules and the HPA target rules that a mutation audit found unguarded: each test pins one
comparison, bound or guard of ``rules/pool.py`` or ``rules/targets.py`` to what docs/tuning-tables.md says."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import tuning_builders as b

from perfpilot.api.status import ChangeRecord, Edit, PoolSize, Setting, TuningState, Verdict
from perfpilot.tuning.classify import compute_classification_detail
from perfpilot.tuning.decision import Decision, ProposedChange
from perfpilot.tuning.engine import decide
from perfpilot.tuning.observations import Observations, Series
from perfpilot.tuning.rules import RuleContext, RuleOutcome
from perfpilot.tuning.rules.pool import decide_pool_waiting
from perfpilot.tuning.rules.targets import decide_hpa_targets
from perfpilot.tuning.thresholds import DEFAULT_THRESHOLDS

QUIET = [0.0] * (b.SAMPLES - 6)  # the window before the last 5 minutes (6 samples)


def run(observations: Observations, **profile_overrides: Any) -> Decision:
    return decide(b.profile(**profile_overrides), observations, b.EMPTY_STATE, b.NOW)


def context(observations: Observations, **profile_overrides: Any) -> RuleContext:
    """The context decide() gives the rules, with no records."""
    profile = b.profile(**profile_overrides)
    return RuleContext(
        profile=profile, observations=observations, thresholds=DEFAULT_THRESHOLDS, now_seconds=b.NOW.timestamp(),
        detail=compute_classification_detail(profile, observations, thresholds=DEFAULT_THRESHOLDS),
    )


def pool_change(decision: Decision) -> ProposedChange | None:
    change = decision.change
    return change if change is not None and change.edit.setting is Setting.POOL_SIZE else None


def notes_of(outcomes: list[RuleOutcome]) -> str:
    return "\n".join(outcome.note for outcome in outcomes if outcome.note)


# --- growing the pool ------------------------------------------------------------------------------------------


def test_a_pool_growth_neither_bound_nor_step_limits_names_only_its_tier() -> None:
    # 10 -> 20 with a 100% step: the Normal tier decides, so the row names neither size.min nor a step limit.
    waiting = [*QUIET, 0.0, 3.0, 3.0, 3.0, 3.0, 0.0]
    change = pool_change(run(b.pool_observations(active=10, waiting=waiting, default=10, reserve=5),
                             guardrails={"maxStepPercent": 100}))
    assert change is not None
    assert change.edit.to_value == PoolSize(default_pool_size=20, reserve_pool_size=10)
    assert change.table_row == "Normal 20/10"


def test_a_pool_at_size_max_says_so_rather_than_blaming_the_server_budget() -> None:
    decision = run(b.pool_observations(active=20, waiting=3), pool={"size": {"min": 2, "max": 20}})
    assert pool_change(decision) is None
    assert "pool 20 already at size.max 20 or the step limit" in decision.reason
    assert "maxServerConnections" not in decision.reason


@pytest.mark.parametrize(("active", "waiting"), [
    ([*QUIET, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0], [*QUIET, 0.0, 3.0, 0.0, 3.0, 0.0, 3.0]),  # waiting in 3 of 6 samples
    ([*QUIET, 19.0, 5.0, 19.0, 5.0, 19.0, 5.0], 0.0),  # 95% of the pool in 3 of 6 samples
])
def test_pool_signals_in_exactly_half_of_the_last_five_minutes_are_sustained(
    active: list[float], waiting: float | list[float]
) -> None:
    # "Sustained" = in at least half of the samples (docs: pool_sustained_fraction 0.5).
    change = pool_change(run(b.pool_observations(active=active, waiting=waiting)))
    assert change is not None
    assert change.edit.to_value == PoolSize(default_pool_size=30, reserve_pool_size=20)
    assert "50% of the last 300s" in change.reason


def test_pool_use_without_a_recent_server_active_sample_is_unknown_not_a_crash() -> None:
    # Server-active samples stop 9 minutes ago while the waiting series is whole: pool use of the last 5
    # minutes is unknown, and the rule says so instead of reading a share of no samples.
    observations = b.pool_observations(active=5)
    observations = replace(observations, pool_server_active=b.series(5, at=b.NOW - b.minutes(9)))
    outcomes = list(decide_pool_waiting(context(observations)))
    assert [outcome.change for outcome in outcomes] == [None]
    assert notes_of(outcomes) == "pool signals unknown"


# --- the pool or the CPU target in an SLO breach ----------------------------------------------------------------


def test_clients_who_waited_only_earlier_in_the_window_leave_the_cpu_target_as_the_breachs_lever() -> None:
    # A client waited 20 minutes ago (demand 7 under the pool of 20: not outgrown), none in the last 5 minutes:
    # the recent breach is not the pool's, so latency feedback lowers the CPU target.
    waiting = [0.0] * b.SAMPLES
    waiting[10] = 2.0
    observations = replace(b.pool_observations(active=5, waiting=waiting), latency_p95_seconds=b.series(0.7),
                           cpu_usage_millicores_per_pod=b.series(500))
    change = run(observations).change
    assert change is not None
    assert (change.edit.setting, change.edit.from_value, change.edit.to_value) == (Setting.HPA_CPU_TARGET, 70, 60)
    assert change.table_row == "latency feedback"


@pytest.mark.parametrize(("p95_seconds", "grows"), [(0.5, False), (0.51, True)])
def test_a_breach_with_recent_pool_waiting_needs_p95_above_the_slo_not_at_it(p95_seconds: float, grows: bool) -> None:
    # One client waited a minute ago (demand 7 under the pool of 20): only a p95 above the SLO makes it the pool's.
    waiting = [0.0] * (b.SAMPLES - 2) + [2.0, 0.0]
    observations = replace(b.pool_observations(active=5, waiting=waiting), latency_p95_seconds=b.series(p95_seconds))
    outcomes = list(decide_pool_waiting(context(observations)))
    changes = [outcome.change for outcome in outcomes if outcome.change is not None]
    assert bool(changes) is grows, notes_of(outcomes)


def test_a_breach_earlier_in_the_window_does_not_grow_the_pool_on_a_recent_wait() -> None:
    # p95 800ms for the first 20 minutes (the window's mean is over the SLO), 300ms in the last 10; one client
    # waited a minute ago. The breach is over: "SLO breached now" is the mean of the last 5 minutes.
    latency = b.series([0.8] * (b.SAMPLES - 10) + [0.3] * 10)
    waiting = [0.0] * (b.SAMPLES - 2) + [2.0, 0.0]
    observations = replace(b.pool_observations(active=5, waiting=waiting), latency_p95_seconds=latency)
    outcomes = list(decide_pool_waiting(context(observations)))
    assert [outcome.change for outcome in outcomes] == [None]
    assert notes_of(outcomes).startswith("no sustained pool waiting")


def test_one_busy_sample_after_a_scrape_gap_is_not_sustained_pool_use() -> None:
    # The server-active series misses the five samples before the newest (95% of the pool): one sample is not
    # "in at least half of the last 5 minutes' samples, which must fill half its steps".
    full = b.series(5.0)
    active = Series(full.timestamps_seconds[:-6] + full.timestamps_seconds[-1:], (*full.values[:-6], 19.0))
    decision = run(replace(b.pool_observations(active=5), pool_server_active=active))
    assert pool_change(decision) is None, decision.reason
    assert "the samples do not fill the last 300s" in decision.reason


def test_the_pool_emergency_span_is_its_own_threshold_not_the_sustained_span() -> None:
    # Clients waiting in every sample of the last 2 minutes: an emergency under a 120s emergency span, even
    # though the 300s sustained span holds samples without waiting.
    thresholds = replace(DEFAULT_THRESHOLDS, emergency_pool_waiting_span_seconds=120.0)
    observations = b.pool_observations(active=20, waiting=[*QUIET, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0])
    change = pool_change(decide(b.profile(), observations, b.EMPTY_STATE, b.NOW, thresholds=thresholds))
    assert change is not None
    assert change.emergency is True
    assert "clients waiting in every sample of the last 120s" in change.reason


@pytest.mark.parametrize(("burst_active", "burst_waiting", "replicas", "grows"), [
    (8.0, 3.0, 1, True),    # demand 11 > the pool of 10 with clients waiting: outgrown
    (8.0, 2.0, 1, False),   # demand 10 = the pool of 10: not above it
    (12.0, 0.0, 1, False),  # 12 active (the reserve in use) > 10, but nobody waited
    (16.0, 3.0, 2, False),  # 19 over two poolers: 9.5 per pooler, under each pooler's 10
])
def test_a_pool_is_outgrown_only_by_waiting_clients_and_a_per_pooler_demand_above_its_size(
    burst_active: float, burst_waiting: float, replicas: int, grows: bool
) -> None:
    active, waiting = [4.0] * b.SAMPLES, [0.0] * b.SAMPLES
    active[10], waiting[10] = burst_active, burst_waiting  # 20 minutes ago: never "sustained" in the last 5
    decision = run(b.pool_observations(active=active, waiting=waiting, default=10, reserve=5, replicas=replicas))
    assert (pool_change(decision) is not None) is grows, decision.reason


# --- shrinking the pool ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("active", "shrinks"), [(20.0, False), (19.9, True)])
def test_a_pool_shrinks_only_when_its_use_stayed_under_half_not_at_it(active: float, shrinks: bool) -> None:
    # Peak 40/30: 20 active is 50% (the target level is "< 50%"); 30 would hold the peak at 67% (< 80% warning).
    decision = run(b.pool_observations(active=active, default=40, reserve=30))
    change = pool_change(decision)
    assert (change is not None) is shrinks, decision.reason
    if change is not None:
        assert change.edit.to_value == PoolSize(default_pool_size=30, reserve_pool_size=20)


def test_a_pool_beyond_peak_shrinks_by_one_step_but_not_below_the_peak_tier() -> None:
    # 60/45 with a 50% step: the step alone would reach 30, the Peak tier's 40 is the floor (docs section 8).
    change = pool_change(run(b.pool_observations(active=10, default=60, reserve=45)))
    assert change is not None
    assert change.edit.to_value == PoolSize(default_pool_size=40, reserve_pool_size=30)
    assert change.table_row.startswith("beyond Peak")


def test_a_pool_at_size_min_keeps_a_hand_set_reserve_rather_than_shrinking_it_alone() -> None:
    # 20/15 with size.min 20: no smaller default is allowed, so nothing is shrunk (the reserve included).
    decision = run(b.pool_observations(active=2, default=20, reserve=15), pool={"size": {"min": 20, "max": 100}})
    assert pool_change(decision) is None, decision.reason
    assert "pool 20 already at size.min or the step limit" in decision.reason


@pytest.mark.parametrize(("active", "peak_demand", "replicas", "shrinks"), [
    (9.0, 5.0, 1, False),   # the window's own peak (9) is 90% of 10, whatever the peak window read
    (14.0, 14.0, 2, True),  # 14 over two poolers: 7 per pooler, 70% of each pooler's 10
    (18.0, 18.0, 2, False),  # 9 per pooler: 90% of 10
])
def test_a_pool_shrink_projects_the_larger_peak_per_pooler_onto_the_smaller_pool(
    active: float, peak_demand: float, replicas: int, shrinks: bool
) -> None:
    decision = run(b.pool_observations(active=active, peak_demand=peak_demand, replicas=replicas))
    change = pool_change(decision)
    assert (change is not None) is shrinks, decision.reason
    if change is not None:
        assert change.edit.to_value == PoolSize(default_pool_size=10, reserve_pool_size=5)


# --- the HPA CPU target ------------------------------------------------------------------------------------------


def target_changes(outcomes: list[RuleOutcome], setting: Setting = Setting.HPA_CPU_TARGET
                   ) -> list[tuple[object, object]]:
    return [(outcome.change.edit.from_value, outcome.change.edit.to_value) for outcome in outcomes
            if outcome.change is not None and outcome.change.edit.setting is setting]


@pytest.mark.parametrize(("p95_seconds", "expected"), [(0.5, []), (0.51, [(70, 60)])])
def test_latency_feedback_needs_p95_above_the_slo_not_at_it(
    p95_seconds: float, expected: list[tuple[int, int]]
) -> None:
    observations = b.observations(latency_p95_seconds=b.series(p95_seconds),
                                  cpu_usage_millicores_per_pod=b.series(500))
    outcomes = list(decide_hpa_targets(context(observations)))
    assert target_changes(outcomes) == expected, notes_of(outcomes)


def test_latency_feedback_leaves_the_cpu_target_while_the_pool_that_kept_clients_waiting_can_grow() -> None:
    # p95 over the SLO with CPU under its target, and a client waited a minute ago: the pool is the lever, even
    # when its own rule is skipped (a barred or held move), so the CPU target is not lowered for it.
    waiting = [0.0] * (b.SAMPLES - 2) + [2.0, 0.0]
    observations = replace(b.pool_observations(active=5, waiting=waiting), latency_p95_seconds=b.series(0.7),
                           cpu_usage_millicores_per_pod=b.series(500))
    outcomes = list(decide_hpa_targets(context(observations)))
    assert target_changes(outcomes) == []
    assert "the pool grows first, not the CPU target" in notes_of(outcomes)


def request_raise(*, verdict: Verdict = Verdict.KEPT, coupled: tuple[int, int] = (60, 50)) -> ChangeRecord:
    """A CPU request raise 1000m -> 1500m three hours ago whose coupled edit lowered the CPU target."""
    return ChangeRecord(
        at=b.NOW - b.minutes(180), target="Deployment/api", setting=Setting.RESOURCES,
        from_value=[b.container()], to_value=[b.container(cpu_request_millicores=1500)],
        coupled=Edit(setting=Setting.HPA_CPU_TARGET, from_value=coupled[0], to_value=coupled[1]),
        verdict=verdict, verdict_at=b.NOW - b.minutes(165),
    )


def coupled_target_outcomes(state: TuningState, *, live_percent: int = 50,
                            latency: Series | None = None) -> list[RuleOutcome]:
    observations = b.observations(live=b.live(hpa=b.hpa(cpu_target_percent=live_percent)))
    if latency is not None:
        observations = replace(observations, latency_p95_seconds=latency)
    ctx = replace(context(observations), state=state)
    return list(decide_hpa_targets(ctx))


@pytest.mark.parametrize(("peak_seconds", "returns"), [(0.5, True), (0.501, False)])
def test_a_coupled_cpu_target_returns_with_a_p95_peak_at_the_slo_which_meets_it(
    peak_seconds: float, returns: bool
) -> None:
    latency = b.series([0.35] * (b.SAMPLES - 1) + [peak_seconds])
    outcomes = coupled_target_outcomes(TuningState(last_change=request_raise()), latency=latency)
    assert target_changes(outcomes) == ([(50, 60)] if returns else []), notes_of(outcomes)


def test_a_coupled_cpu_target_does_not_return_on_a_p95_series_that_covers_only_the_end_of_the_window() -> None:
    # Ten minutes of p95 within the SLO say nothing of the twenty before them: "met all window" needs the window.
    outcomes = coupled_target_outcomes(TuningState(last_change=request_raise()), latency=b.series(0.35, count=11))
    assert target_changes(outcomes) == []
    assert "the coupled target returns to its row with the SLO met all window" in notes_of(outcomes)


def cpu_target_move(before: int, after: int, *, verdict: Verdict, minutes_ago: float = 60) -> ChangeRecord:
    return ChangeRecord(at=b.NOW - b.minutes(minutes_ago), target="HorizontalPodAutoscaler/api",
                        setting=Setting.HPA_CPU_TARGET, from_value=before, to_value=after, verdict=verdict,
                        verdict_at=b.NOW - b.minutes(minutes_ago - 15))


def test_a_reverted_target_move_does_not_hide_the_coupled_edit_before_it() -> None:
    # Someone put back a later target move (Reverted: not in effect), so the coupled 60 -> 50 is still the
    # target's latest move in effect and returns with the SLO met (p95 350ms, above 60% of the SLO).
    state = TuningState(last_change=cpu_target_move(50, 55, verdict=Verdict.REVERTED), history=[request_raise()])
    outcomes = coupled_target_outcomes(state)
    assert target_changes(outcomes) == [(50, 60)], notes_of(outcomes)


def test_a_target_move_of_its_own_after_the_coupled_edit_ends_the_coupled_return() -> None:
    # The coupled 60 -> 50, then a kept target move of its own that ends at 50 too: the target's latest move is
    # no longer the coupled one, so raising it needs p95 under 60% of the SLO like any raise.
    state = TuningState(last_change=cpu_target_move(55, 50, verdict=Verdict.KEPT), history=[request_raise()])
    outcomes = coupled_target_outcomes(state)
    assert target_changes(outcomes) == []
    assert "raising needs p95 under 300ms" in notes_of(outcomes)


def test_a_coupled_cpu_target_returns_once_its_raise_is_judged_inconclusive() -> None:
    outcomes = coupled_target_outcomes(TuningState(last_change=request_raise(verdict=Verdict.INCONCLUSIVE)))
    assert target_changes(outcomes) == [(50, 60)], notes_of(outcomes)


def test_a_live_cpu_target_other_than_the_coupled_one_is_not_a_coupled_return() -> None:
    # The coupled edit set 50; the live 45 was set by someone else since, so raising it is an ordinary raise.
    outcomes = coupled_target_outcomes(TuningState(last_change=request_raise()), live_percent=45)
    assert target_changes(outcomes) == []
    assert "raising needs p95 under 300ms" in notes_of(outcomes)


def test_a_coupled_edit_that_raised_the_target_gives_no_coupled_return() -> None:
    # A cut's coupled edit raised the target 60 -> 70; the Cost row (80) asks for more. Only a coupled lowering
    # returns on the SLO merely met: this raise needs p95 under 60% of the SLO (and is never turned into a cut).
    state = TuningState(last_change=request_raise(coupled=(60, 70)))
    observations = b.observations(live=b.live(hpa=b.hpa(cpu_target_percent=70)))
    outcomes = list(decide_hpa_targets(replace(context(observations, objective="Cost"), state=state)))
    assert target_changes(outcomes) == []
    assert "raising needs p95 under 300ms" in notes_of(outcomes)


@pytest.mark.parametrize(("peak_seconds", "raises"), [(0.3, False), (0.299, True)])
def test_raising_a_cpu_target_needs_p95_strictly_under_sixty_percent_of_the_slo(
    peak_seconds: float, raises: bool
) -> None:
    latency = b.series([0.2] * (b.SAMPLES - 1) + [peak_seconds])
    observations = b.observations(latency_p95_seconds=latency, live=b.live(hpa=b.hpa(cpu_target_percent=60)))
    outcomes = list(decide_hpa_targets(context(observations)))
    assert target_changes(outcomes) == ([(60, 70)] if raises else []), notes_of(outcomes)


# --- the HPA memory target ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("peak_seconds", "raises"), [(0.5, True), (0.501, False)])
def test_raising_the_memory_target_needs_the_slo_met_which_a_p95_peak_at_the_slo_does(
    peak_seconds: float, raises: bool
) -> None:
    latency = b.series([0.35] * (b.SAMPLES - 1) + [peak_seconds])
    observations = b.observations(latency_p95_seconds=latency, live=b.live(hpa=b.hpa(memory_target_percent=70)))
    outcomes = list(decide_hpa_targets(context(observations)))
    raised = target_changes(outcomes, Setting.HPA_MEMORY_TARGET)
    assert raised == ([(70, 80)] if raises else []), notes_of(outcomes)


def test_a_memory_target_row_beyond_the_profile_bounds_is_clamped_and_says_so() -> None:
    observations = b.observations(live=b.live(hpa=b.hpa(memory_target_percent=70)))
    outcomes = list(decide_hpa_targets(context(observations, hpa={"memoryTarget": {"min": 60, "max": 75}})))
    raised = [outcome.change for outcome in outcomes
              if outcome.change is not None and outcome.change.edit.setting is Setting.HPA_MEMORY_TARGET]
    assert [(change.edit.from_value, change.edit.to_value) for change in raised] == [(70, 75)], notes_of(outcomes)
    assert "memory target row 'Stable usage' = 80% (clamped to 75%), live 70%" in raised[0].reason


def test_pool_use_without_a_recent_server_active_sample_names_that_signal() -> None:
    # The server-active series stopped 9 minutes ago while the waiting one is whole: the rule is blocked by
    # the signal it lacks, not by the one it has.
    observations = replace(b.pool_observations(active=5), pool_server_active=b.series(5, at=b.NOW - b.minutes(9)))
    assert run(observations).blocked_by == ("pool_server_active",)
