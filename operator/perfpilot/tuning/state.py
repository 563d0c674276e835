"""The state machine's bookkeeping after an evaluation: verdicts, the new last change, history, bars.

Callers do ``decision = decide(...)``, write ``decision.change`` when ``decision.apply``, then
``state = compute_next_state(..., applied=<written>)``. Nothing is recorded as written unless it was:
a rollback that failed to write leaves its change Pending, so the next evaluation tries again.
"""

from __future__ import annotations

from datetime import datetime

from perfpilot.api.status import HISTORY_LIMIT, BarredMove, ChangeRecord, TuningState, Verdict
from perfpilot.tuning.decision import Decision
from perfpilot.tuning.observations import Observations
from perfpilot.tuning.verify import compute_baseline


def compute_next_state(
    state: TuningState, *, decision: Decision, observations: Observations, now: datetime, applied: bool
) -> TuningState:
    barred = [move for move in state.barred if move.until > now]
    history = list(state.history)
    last = state.last_change
    change = decision.change

    if last is not None and last.verdict is Verdict.PENDING and decision.verdict is not None:
        if decision.verdict is not Verdict.ROLLED_BACK:
            last = last.model_copy(
                update={"verdict": decision.verdict, "verdict_at": now, "verdict_reason": decision.verdict_reason}
            )
            if decision.verdict is Verdict.REVERTED and decision.barred_until is not None:
                barred.append(BarredMove(setting=last.edit.setting, to_value=last.edit.to_value,
                                         until=decision.barred_until))
        elif applied and change is not None and change.rollback:
            last = last.model_copy(update={
                "verdict": Verdict.ROLLED_BACK, "verdict_at": now, "verdict_reason": decision.verdict_reason,
            })
            if decision.barred_until is not None:
                barred.append(BarredMove(setting=last.edit.setting, to_value=last.edit.to_value,
                                         until=decision.barred_until))

    if applied and change is not None and not change.rollback:
        if last is not None:
            if last.verdict is Verdict.PENDING:
                # Only an emergency acts before a verdict; the earlier change can no longer be judged alone.
                last = last.model_copy(update={
                    "verdict": Verdict.INCONCLUSIVE, "verdict_at": now,
                    "verdict_reason": "superseded by an emergency change before its verdict",
                })
            history = [*history, last][-HISTORY_LIMIT:]
        baseline = decision.baseline or compute_baseline(observations, span_seconds=observations.window_seconds)
        last = ChangeRecord(
            at=now,
            target=change.target,
            edit=change.edit,
            coupled=change.coupled,
            reason=change.reason,
            table_row=change.table_row,
            emergency=change.emergency,
            baseline=baseline,
            verdict=Verdict.PENDING,
        )
    # A wait for off-peak is bounded from when it began, so the state keeps that time while it lasts.
    waiting_since = (state.off_peak_wait_since or now) if decision.waits_for_off_peak else None
    return TuningState(last_change=last, history=history, barred=barred, off_peak_wait_since=waiting_since)
