"""The state machine's bookkeeping after an evaluation: verdicts, the new last change, history, bars.

The contract with whoever writes (``decision = decide(...)``, then, when ``decision.apply``):

- a change: save ``compute_next_state(..., applied=True)`` FIRST, then write its coupled edit, then its
  main edit; when the write fails having written nothing, save ``compute_next_state(..., applied=False)``
  (from the state before) instead. A crash anywhere leaves the change Pending, and the next evaluation reads
  the live values (``verify.decide_unfinished_write``): nothing written is Reverted, the coupled edit alone
  is undone, all written is verified as usual. Saved after the write instead, a crash between the two
  would let the next evaluation step again from the new value, unverified;
- a rollback: write first (coupled edit first), then save with ``applied=<written>``: a rollback that failed
  to write leaves its change Pending, so the next evaluation tries again, and one written whose status was
  lost is found Reverted (or, cut short between its writes, finished) from the live values;
- nothing to write: save ``compute_next_state(..., applied=False)``.
"""

from __future__ import annotations

from datetime import datetime

from perfpilot.api.status import HISTORY_LIMIT, BarredMove, ChangeRecord, TuningState, Verdict
from perfpilot.tuning.decision import Decision
from perfpilot.tuning.observations import Observations
from perfpilot.tuning.verify import compute_baseline


def compute_judged_state(
    state: TuningState, *, verdict: Verdict, reason: str, now: datetime, barred_until: datetime | None
) -> TuningState:
    """The state with its last change given ``verdict``, and its move barred until ``barred_until`` when one
    is given (a rollback, or a change found reverted)."""
    last = state.last_change
    assert last is not None
    judged = last.model_copy(update={"verdict": verdict, "verdict_at": now, "verdict_reason": reason,
                                     "rollback_due_at": None})
    bars = [] if barred_until is None else [
        BarredMove(setting=last.edit.setting, from_value=last.edit.from_value, to_value=last.edit.to_value,
                   until=barred_until)]
    return state.model_copy(update={"last_change": judged, "barred": [*state.barred, *bars]})


def compute_next_state(
    state: TuningState, *, decision: Decision, observations: Observations, now: datetime, applied: bool
) -> TuningState:
    change = decision.change
    state = state.model_copy(update={"barred": [move for move in state.barred if move.until > now]})
    pending = state.last_change is not None and state.last_change.verdict is Verdict.PENDING
    # A RolledBack verdict is recorded only once its rollback is written.
    rollback_written = applied and change is not None and change.rollback
    if pending and decision.verdict is not None and (decision.verdict is not Verdict.ROLLED_BACK or rollback_written):
        state = compute_judged_state(state, verdict=decision.verdict, reason=decision.verdict_reason, now=now,
                                     barred_until=decision.barred_until)
    last = state.last_change
    if last is not None and last.verdict is Verdict.PENDING and decision.rollback_due and not rollback_written:
        # Found due on the change's own evidence, again now: a late verdict (verify.py) counts from here.
        last = last.model_copy(update={"rollback_due_at": now})
        state = state.model_copy(update={"last_change": last})
    barred = list(state.barred)
    history = list(state.history)

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
            setting=change.edit.setting, from_value=change.edit.from_value, to_value=change.edit.to_value,
            coupled=change.coupled,
            coupled_target=change.coupled_target,
            reason=change.reason,
            table_row=change.table_row,
            emergency=change.emergency,
            baseline=baseline,
            verdict=Verdict.PENDING,
        )
    # A wait for off-peak is bounded from when it began, so the state keeps that time while it lasts.
    waiting_since = (state.off_peak_wait_since or now) if decision.waits_for_off_peak else None
    return TuningState(last_change=last, history=history, barred=barred, off_peak_wait_since=waiting_since)
