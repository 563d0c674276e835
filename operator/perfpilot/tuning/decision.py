"""What ``decide()`` returns: at most one change, with its reason and table row, or why nothing changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from perfpilot.api.status import Baseline, Edit, Verdict


@dataclass(frozen=True)
class Classification:
    """Which row of each table the observations point at; ``"Unknown"`` when the signals do not say."""

    load_pattern: str = "Unknown"  # Steady | Bursty | Unknown
    memory: str = "Unknown"  # Stable | Growing | Variable | Unknown
    provisioning: str = "Unknown"  # Under | Over | CpuBound | MemoryBound | Right | Unknown
    pool_load: str = "Unknown"  # Light | Normal | Heavy | Peak | Unknown (or "Off" when not tuned)


@dataclass(frozen=True)
class ProposedChange:
    """One change. ``coupled`` is the paired move that keeps the two from fighting (it is not a second
    change: a CPU request and the HPA target that keeps the computed replica count are one decision).

    Whoever writes it writes ``coupled`` first, then ``edit``: the verdict reads "coupled back, main edit in
    effect" as a rollback cut short between its writes, and finishes it (``verify.decide_verdict``).
    """

    target: str  # kind/name of the object, e.g. "HorizontalPodAutoscaler/api"
    edit: Edit
    reason: str
    table_row: str
    coupled: Edit | None = None
    coupled_target: str = ""
    emergency: bool = False
    rollback: bool = False


@dataclass(frozen=True)
class Decision:
    """The engine's answer for one evaluation.

    ``change`` is what should happen now (``None``: nothing). ``apply`` says whether the caller may write
    it (only in ``Auto`` mode, not paused, spec valid); in ``Recommend`` mode the same change is only shown.
    ``verdict`` is set when a pending change reached its verdict in this evaluation (for RolledBack: once the
    rollback in ``change`` is written; unwritten, the change stays Pending).
    """

    change: ProposedChange | None
    reason: str
    apply: bool
    classification: Classification = field(default_factory=Classification)
    verdict: Verdict | None = None
    verdict_reason: str = ""
    blocked_by: tuple[str, ...] = ()  # unknown signals that kept a rule from being evaluated
    cooldown_until_seconds: float | None = None  # Unix time before which only an emergency may act
    # For compute_next_state: what the service looked like before ``change`` (p95, errors, rate over the
    # last verifyFor), and until when a rolled-back (or found reverted) move is barred (6 x cooldown, doubled for each
    # earlier rollback of the same move).
    baseline: Baseline | None = None
    barred_until: datetime | None = None
    # A resources change that may wait for off-peak met the busy hour in this evaluation (it waited, or its
    # wait was over): the state keeps when the wait began.
    waits_for_off_peak: bool = False
    # The pending change's rollback was found due (written or not: Recommend mode, a write that failed, a
    # rollout in progress): the state keeps when it was last found due, the late-verdict rule counts from it.
    rollback_due: bool = False
