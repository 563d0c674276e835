"""The status after an evaluation (control.status): conditions keep their transition time while unchanged, the
phase says where the state machine is, the recommendation shows a change not written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import ChangeRecord, Condition, Edit, Phase, Setting, TuningState, Verdict
from perfpilot.control.status import (
    ConditionUpdate,
    compute_conditions,
    compute_ready_condition,
    compute_recommendation,
    compute_rolled_back_condition,
    decide_phase,
)
from perfpilot.tuning.decision import Decision, ProposedChange

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=3)


def _spec(mode: str = "Auto") -> PerformanceProfileSpec:
    return PerformanceProfileSpec.model_validate({"targetRef": {"kind": "Deployment", "name": "api"}, "mode": mode})


def test_a_condition_that_keeps_its_status_keeps_its_transition_time() -> None:
    previous = [Condition(type="MetricsAvailable", status="True", reason="Read", last_transition_time=EARLIER)]
    [condition] = compute_conditions(previous, [ConditionUpdate(type="MetricsAvailable", status="True", reason="Read",
                                                                      message="again")], now=NOW)
    assert condition.last_transition_time == EARLIER
    assert condition.message == "again"


def test_a_condition_that_changes_status_moves_its_transition_time_to_now() -> None:
    previous = [Condition(type="MetricsAvailable", status="True", reason="Read", last_transition_time=EARLIER)]
    [condition] = compute_conditions(previous, [ConditionUpdate(type="MetricsAvailable", status="False",
                                                                      reason="Unreachable")], now=NOW)
    assert (condition.status, condition.last_transition_time) == ("False", NOW)


def test_conditions_not_looked_at_are_kept_and_all_are_sorted_by_type() -> None:
    previous = [Condition(type="SpecValid", status="True", reason="Valid", last_transition_time=EARLIER)]
    update = ConditionUpdate(type="Conflict", status="False", reason="NoConflict")
    conditions = compute_conditions(previous, [update], now=NOW)
    assert [(c.type, c.last_transition_time) for c in conditions] == [("Conflict", NOW), ("SpecValid", EARLIER)]


def _pending() -> TuningState:
    return TuningState(last_change=ChangeRecord(at=EARLIER, target="HorizontalPodAutoscaler/api",
                                                setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60))


NOTHING = Decision(None, "nothing to do", True)


@pytest.mark.parametrize(("mode", "state", "decision", "paused", "phase"), [
    ("Off", TuningState(), NOTHING, False, Phase.OFF),
    ("Auto", _pending(), NOTHING, True, Phase.PAUSED),
    ("Auto", _pending(), NOTHING, False, Phase.VERIFYING),
    ("Auto", TuningState(), Decision(None, "cooldown", True, cooldown_until_seconds=NOW.timestamp() + 60), False,
     Phase.HOLDING),
    ("Auto", TuningState(), Decision(None, "cooldown over", True, cooldown_until_seconds=NOW.timestamp()), False,
     Phase.OBSERVING),
    ("Recommend", TuningState(), NOTHING, False, Phase.OBSERVING),
])
def test_the_phase_follows_mode_pause_pending_change_and_cooldown(mode: str, state: TuningState, decision: Decision,
                                                                  paused: bool, phase: Phase) -> None:
    assert decide_phase(_spec(mode), state=state, decision=decision, paused=paused, now=NOW) is phase


def test_a_judged_change_is_no_longer_verifying() -> None:
    state = _pending()
    assert state.last_change is not None
    judged = TuningState(last_change=state.last_change.model_copy(update={"verdict": Verdict.KEPT}))
    assert decide_phase(_spec(), state=judged, decision=NOTHING, paused=False, now=NOW) is Phase.OBSERVING


CHANGE = ProposedChange(target="HorizontalPodAutoscaler/api",
                        edit=Edit(setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60),
                        reason="p95 over the SLO", table_row="latency feedback")


def test_a_change_not_written_is_the_recommendation() -> None:
    recommendation = compute_recommendation(Decision(CHANGE, "p95 over the SLO", False), written=False, now=NOW)
    assert (recommendation.target, recommendation.setting, recommendation.from_value, recommendation.to_value,
            recommendation.table_row) == ("HorizontalPodAutoscaler/api", Setting.HPA_CPU_TARGET, 70, 60,
                                          "latency feedback")


def test_a_change_written_leaves_only_the_reason() -> None:
    recommendation = compute_recommendation(Decision(CHANGE, "p95 over the SLO", True), written=True, now=NOW)
    assert (recommendation.setting, recommendation.reason) == (None, "p95 over the SLO")


def _condition(kind: str, status: str, message: str = "") -> Condition:
    return Condition(type=kind, status=status, reason="r", message=message)  # type: ignore[arg-type]


ALL_GOOD = [_condition("SpecValid", "True"), _condition("StateReadable", "True"), _condition("TargetFound", "True"),
            _condition("MetricsAvailable", "True"), _condition("Conflict", "False")]


def test_ready_when_every_condition_is_as_it_must_be() -> None:
    ready, rolled_back = compute_ready_condition(ALL_GOOD), compute_rolled_back_condition(TuningState())
    assert (ready.type, ready.status, rolled_back.status) == ("Ready", "True", "False")


@pytest.mark.parametrize("index", range(len(ALL_GOOD)))
def test_not_ready_names_the_condition_that_fails_with_its_message(index: int) -> None:
    conditions = list(ALL_GOOD)
    wrong = conditions[index]
    conditions[index] = _condition(wrong.type, "True" if wrong.status == "False" else "False", "why it fails")
    ready = compute_ready_condition(conditions)
    assert (ready.status, ready.reason.startswith(wrong.type), ready.message) == ("False", True, "why it fails")


def test_rolled_back_says_which_change_and_why() -> None:
    state = _pending()
    assert state.last_change is not None
    judged = TuningState(last_change=state.last_change.model_copy(update={
        "verdict": Verdict.ROLLED_BACK, "verdict_reason": "p95 130ms -> 1227ms"}))
    rolled_back = compute_rolled_back_condition(judged)
    assert (rolled_back.status, rolled_back.message) == (
        "True", "hpa.cpuTarget on HorizontalPodAutoscaler/api: p95 130ms -> 1227ms")
