"""What every rule is given (``RuleContext``) and yields (``RuleOutcome``), and the wording they share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import TuningState
from perfpilot.tuning import signals
from perfpilot.tuning.classify import ClassificationDetail
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.observations import HpaLive, Observations, Peak, PoolLive, Series, Signal, Unknown
from perfpilot.tuning.thresholds import Thresholds


@dataclass(frozen=True)
class RuleContext:
    profile: PerformanceProfileSpec
    observations: Observations
    detail: ClassificationDetail
    thresholds: Thresholds
    now_seconds: float
    state: TuningState = field(default_factory=TuningState)

    @property
    def slo_seconds(self) -> float:
        return self.profile.slo.latency_p95.seconds

    @property
    def tuned_hpa(self) -> HpaLive | None:
        """The live HPA when the profile tunes it."""
        return self.observations.live.hpa if self.profile.hpa.enabled else None

    @property
    def tuned_pool(self) -> PoolLive | None:
        return self.observations.live.pool if self.profile.pool.enabled else None

    def recent(self, signal: Signal, span_seconds: float) -> Signal:
        return signals.recent(signal, now_seconds=self.now_seconds, span_seconds=span_seconds)

    def covers(self, series: Series, span_seconds: float) -> bool:
        """Whether a series reaches back over ``span_seconds`` (one missing step tolerated)."""
        return series.timestamps_seconds[0] <= self.now_seconds - span_seconds + self.observations.step_seconds

    def fills(self, series: Series, span_seconds: float) -> bool:
        """Whether the samples of the last ``span_seconds`` (``series`` cut to them) reach back over it and fill
        at least ``min_sample_share_of_span`` of its steps: a share "sustained" over a span needs the span."""
        return self.covers(series, span_seconds) and signals.fills_share_of_steps(
            series, span_seconds=span_seconds, step_seconds=self.observations.step_seconds,
            share=self.thresholds.min_sample_share_of_span)


@dataclass(frozen=True)
class RuleOutcome:
    rule: str
    change: ProposedChange | None = None
    note: str = ""  # why this rule proposes nothing
    blocked_by: tuple[str, ...] = ()


Rule = Callable[[RuleContext], Iterator[RuleOutcome]]


def find_unknown_names(named: dict[str, Signal]) -> tuple[str, ...]:
    return tuple(name for name, signal in named.items() if isinstance(signal, Unknown))


def format_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms"


def format_hours(seconds: float) -> str:
    return f"{seconds / 3600:g}h"


class History(NamedTuple):
    """How much of the peak window a cut's peaks were read from: the ``Observations`` field (named in
    ``blocked_by``), how to read it, and its words."""

    field: str
    read: Callable[[Observations], Peak]
    label: str


CPU_HISTORY = History("cpu_history_seconds", lambda observations: observations.cpu_history_seconds, "CPU history")
POOL_HISTORY = History("pool_history_seconds", lambda observations: observations.pool_history_seconds,
                       "pool-demand history")


def check_history_for_a_cut(
    ctx: RuleContext, *, rule: str, finding: str, of: History = CPU_HISTORY
) -> RuleOutcome | None:
    """None when the peak window holds enough history (``of``) for a cut to rely on its peaks, else the
    outcome that holds the cut: ``finding`` (what called for it), why not, and the unknown signal that
    blocked it (the KRR/VPA stance: little data is no basis for taking capacity away)."""
    observations = ctx.observations
    history = of.read(observations)
    span = format_hours(observations.peak_window_seconds)
    if isinstance(history, Unknown):
        return RuleOutcome(rule, note=f"{finding}, but the {of.label} over {span} is unknown ({history.reason}): "
                                      f"no cut", blocked_by=(of.field,))
    # The profile's own peakWindow (the snapshot reads the widest of its profiles'), less a tolerance for scrape
    # gaps when it is shorter than a day: a Prometheus restart must not block cuts for the whole window.
    own_window = ctx.profile.guardrails.peak_window.seconds
    needed = min(ctx.thresholds.cut_min_history_seconds, ctx.thresholds.cut_history_fraction * own_window)
    if history < needed:
        return RuleOutcome(rule, note=f"{finding}, but only {history / 3600:.1f}h of {of.label} over {span} (a "
                                      f"cut waits for {needed / 3600:.1f}h: peaks read from less may miss the "
                                      f"day's high)")
    return None
