"""The profile's status after an evaluation (pure): phase, conditions, what was observed, the recommendation.

Conditions keep their ``lastTransitionTime`` while their status stays the same, as Kubernetes' own do, so
``kubectl describe`` says since when a profile has been, say, without metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from perfpilot.api.spec import Mode, PerformanceProfileSpec
from perfpilot.api.status import (
    ClassificationStatus,
    Condition,
    ObservedStatus,
    PerformanceProfileStatus,
    Phase,
    Recommendation,
    TuningState,
    Verdict,
)
from perfpilot.tuning.decision import Decision

ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True, kw_only=True)
class ConditionUpdate:
    """One condition as this evaluation found it; its transition time comes from the previous status."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


def compute_conditions(previous: Sequence[Condition], updates: Iterable[ConditionUpdate], *,
                       now: datetime) -> list[Condition]:
    """``previous`` with ``updates`` laid over it: a condition whose status did not change keeps its
    transition time; conditions this evaluation did not look at are kept as they were."""
    by_type = {condition.type: condition for condition in previous}
    for update in updates:
        before = by_type.get(update.type)
        since = before.last_transition_time if before is not None and before.status == update.status else now
        by_type[update.type] = Condition(type=update.type, status=update.status, reason=update.reason,
                                         message=update.message[:1024], last_transition_time=since or now)
    return sorted(by_type.values(), key=lambda condition: condition.type)


# What must hold for a profile to be Ready, and the state each must be in.
READY_WHEN = {"SpecValid": "True", "StateReadable": "True", "TargetFound": "True", "MetricsAvailable": "True",
              "Conflict": "False"}


def compute_ready_condition(conditions: Sequence[Condition]) -> ConditionUpdate:
    """``Ready``: every condition of READY_WHEN as it must be (``kubectl wait --for=condition=Ready``), else the
    first that is not, with its message."""
    by_type = {condition.type: condition for condition in conditions}
    failing = [kind for kind, wanted in READY_WHEN.items()
               if kind not in by_type or by_type[kind].status != wanted]
    if not failing:
        return ConditionUpdate(type="Ready", status="True", reason="Evaluated")
    first = by_type.get(failing[0])
    return ConditionUpdate(type="Ready", status="False", reason=f"{failing[0]}Not{READY_WHEN[failing[0]]}",
                           message=first.message if first is not None else f"{failing[0]} not known yet")


def compute_rolled_back_condition(state: TuningState) -> ConditionUpdate:
    """``RolledBack``: the last change was rolled back, and why."""
    last = state.last_change
    if last is not None and last.verdict is Verdict.ROLLED_BACK:
        return ConditionUpdate(type="RolledBack", status="True", reason="Regression",
                               message=f"{last.setting.value} on {last.target}: {last.verdict_reason}")
    return ConditionUpdate(type="RolledBack", status="False", reason="NoRollback")


def _with_summary(conditions: list[Condition], *, state: TuningState, now: datetime) -> list[Condition]:
    summary = [compute_ready_condition(conditions), compute_rolled_back_condition(state)]
    return compute_conditions(conditions, summary, now=now)


def decide_phase(spec: PerformanceProfileSpec, *, state: TuningState, decision: Decision, paused: bool,
                 now: datetime) -> Phase:
    if spec.mode is Mode.OFF:
        return Phase.OFF
    if paused:
        return Phase.PAUSED
    if state.last_change is not None and state.last_change.verdict is Verdict.PENDING:
        return Phase.VERIFYING
    if decision.cooldown_until_seconds is not None and decision.cooldown_until_seconds > now.timestamp():
        return Phase.HOLDING
    return Phase.OBSERVING


def compute_recommendation(decision: Decision, *, written: bool, now: datetime) -> Recommendation:
    """The change perfpilot would make next (Recommend mode, or one it could not write), or why none."""
    change = decision.change
    if change is None or written:
        return Recommendation(at=now, reason=decision.reason)
    return Recommendation(
        at=now, target=change.target, setting=change.edit.setting, from_value=change.edit.from_value,
        to_value=change.edit.to_value, coupled=change.coupled, reason=change.reason, table_row=change.table_row,
    )


def compute_evaluated_status(
    previous: PerformanceProfileStatus,
    *,
    spec: PerformanceProfileSpec,
    state: TuningState,
    decision: Decision,
    observed: ObservedStatus,
    written: bool,
    paused: bool,
    conditions: Iterable[ConditionUpdate],
    generation: int | None,
    now: datetime,
) -> PerformanceProfileStatus:
    """The status after an evaluation that reached ``decide()``: ``state`` is the state to keep (already
    advanced past what was written)."""
    classification = decision.classification
    return PerformanceProfileStatus(
        **state.model_dump(by_alias=False),
        phase=decide_phase(spec, state=state, decision=decision, paused=paused, now=now),
        observed_generation=generation,
        last_evaluated_at=now,
        conditions=_with_summary(compute_conditions(previous.conditions, conditions, now=now), state=state, now=now),
        observed=observed,
        classification=ClassificationStatus(load_pattern=classification.load_pattern, memory=classification.memory,
                                            provisioning=classification.provisioning,
                                            pool_load=classification.pool_load),
        recommendation=compute_recommendation(decision, written=written, now=now),
    )


def compute_stopped_status(
    previous: PerformanceProfileStatus,
    *,
    phase: Phase,
    conditions: Iterable[ConditionUpdate],
    generation: int | None,
    reason: str,
    now: datetime,
    state_readable: bool = True,
) -> PerformanceProfileStatus:
    """The status of a profile not evaluated (invalid, off, in conflict, its workload not found): the
    state machine, history and last observations are kept as they were, for when it is evaluated again."""
    return previous.model_copy(update={
        "phase": phase,
        "observed_generation": generation,
        "last_evaluated_at": now,
        "conditions": compute_conditions(previous.conditions, [
            *conditions, ConditionUpdate(type="Ready", status="False", reason=phase.value, message=reason),
            # A state that cannot be read says nothing of a rollback: RolledBack stays as it was.
            *([compute_rolled_back_condition(previous)] if state_readable else [])], now=now),
        "recommendation": Recommendation(at=now, reason=reason),
    })
