"""The operator's own metrics (DESIGN section 7), in the default ``prometheus_client`` registry that
``perfpilot run --metrics-port`` serves beside the reader's PromQL metrics (``observe.instrumentation``).

Counted once per profile evaluation from its ``ProfileOutcome``, so what the metrics say is what the status says.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from perfpilot.api.status import Setting
from perfpilot.control.cycle import ProfileOutcome

EVALUATIONS = Counter(
    "perfpilot_evaluations",
    "Profiles looked at, by the phase their status was written with (unwritten: no status written, the write "
    "refused or the profile not read).",
    ["phase"],
)
DECISIONS = Counter(
    "perfpilot_decisions",
    "Evaluations by what they decided: kind (change, rollback, none) and the setting moved ('' for none); a "
    "change shown in Recommend mode counts at every evaluation that shows it.",
    ["kind", "setting"],
)
CHANGES_APPLIED = Counter(
    "perfpilot_changes_applied", "Changes written to the cluster (Auto mode), by setting.", ["setting"])
ROLLBACKS = Counter("perfpilot_rollbacks", "Rollbacks written to the cluster, by setting.", ["setting"])
WRITE_FAILURES = Counter(
    "perfpilot_write_failures",
    "Changes or rollbacks decided for writing and not written (a value moved since, a refusal, no answer).",
    ["setting"],
)
POOLER_SYNCS = Counter(
    "perfpilot_pooler_syncs",
    "Evaluations that brought a ConfigMap pool's pgBouncers to it on their admin console (adminSecretRef), by "
    "the PoolerSynced reason found: Synced, or why not (AdminUnreachable, AdminRefused, NotSynced, ...).",
    ["reason"],
)
TICK_SECONDS = Histogram(
    "perfpilot_tick_duration_seconds", "Wall time of one tick: list, observe, decide, write every due profile.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
TICK_FAILURES = Counter("perfpilot_tick_failures", "Ticks that ended in an error (the API server unreachable, a bug).")
LAST_TICK_PROFILES = Gauge("perfpilot_last_tick_profiles", "Profiles looked at in the last tick that ended.")
LEADING = Gauge("perfpilot_leading",
                "1 while this replica ticks (it holds the Lease, or there is no election), else 0.")

# Every setting's series exists from the start, at 0: a labelled counter has none until its first increment,
# and increase() over a series that appears at 1 misses that first change, rollback or failure.
for _setting in Setting:
    for _counter in (CHANGES_APPLIED, ROLLBACKS, WRITE_FAILURES):
        _counter.labels(setting=_setting.value)


def record_outcomes(outcomes: Iterable[ProfileOutcome]) -> None:
    count = 0
    for outcome in outcomes:
        count += 1
        EVALUATIONS.labels(phase=outcome.phase.value if outcome.phase is not None else "unwritten").inc()
        if outcome.pooler_synced:
            POOLER_SYNCS.labels(reason=outcome.pooler_synced).inc()
        decision = outcome.decision
        if decision is None:
            continue
        change = decision.change
        if change is None:
            DECISIONS.labels(kind="none", setting="").inc()
            continue
        setting = change.edit.setting.value
        DECISIONS.labels(kind="rollback" if change.rollback else "change", setting=setting).inc()
        if not decision.apply:
            continue
        if outcome.written:
            (ROLLBACKS if change.rollback else CHANGES_APPLIED).labels(setting=setting).inc()
        else:
            WRITE_FAILURES.labels(setting=setting).inc()
    LAST_TICK_PROFILES.set(count)
