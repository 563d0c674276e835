"""The operator's routine: every tick, list the profiles, evaluate the due ones together, log what happened.

The clock is read here and nowhere below: ``run_cycle`` and the engine take ``now`` as an argument.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from perfpilot.actuate.kube import KubeApi, KubeError
from perfpilot.control.cycle import ProfileOutcome, run_cycle
from perfpilot.control.instrumentation import LEADING, TICK_FAILURES, TICK_SECONDS, record_outcomes
from perfpilot.control.leader import LeaderElector, LeaderGuardedApi, LeadershipLost, LeaseSettings
from perfpilot.observe.reader import PrometheusSettings

log = structlog.get_logger("perfpilot")


@dataclass(frozen=True)
class LoopSettings:
    prometheus: PrometheusSettings
    tick_seconds: float = 10.0
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    lease: LeaseSettings | None = None  # None: no leader election (one replica)


# Longer than a tick can legitimately take: 16 PromQL queries per server at up to 300 s each would be more,
# but then the probe restarting the operator is no loss; at the default 10 s timeouts a tick takes well under.
STUCK_TICK_SECONDS = 900.0


@dataclass
class LoopHealth:
    """What the liveness probe reports: when the last tick began, how it went, and whether one is stuck."""

    last_tick_at: datetime | None = None
    leading: bool = True  # with leader election: whether this replica led in the last tick
    last_error: str = ""
    evaluated: int = 0
    outcomes: list[ProfileOutcome] = field(default_factory=list)
    tick_started_monotonic: float | None = None  # while a tick runs: when it began (monotonic clock)

    def decide_stuck(self, *, now_monotonic: float, limit_seconds: float = STUCK_TICK_SECONDS) -> bool:
        """Whether the tick under way has run longer than any tick should: every API call and query in it is
        bounded by its timeout, so one running this long is hung (a restart is what helps)."""
        started = self.tick_started_monotonic
        return started is not None and now_monotonic - started > limit_seconds


def utc_now() -> datetime:
    return datetime.now(UTC)


def fetch_profiles(kube: KubeApi, namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
    if not namespaces:
        return kube.fetch_objects("PerformanceProfile", None)
    return [p for namespace in namespaces for p in kube.fetch_objects("PerformanceProfile", namespace)]


def run_tick(kube: KubeApi, settings: LoopSettings, *, now: datetime) -> list[ProfileOutcome]:
    """One tick: every profile whose interval has passed (or whose spec changed) is evaluated at ``now``."""
    return run_cycle(kube, fetch_profiles(kube, settings.namespaces), now=now, settings=settings.prometheus)


def _log(outcome: ProfileOutcome) -> None:
    decision = outcome.decision
    change = decision.change if decision is not None else None
    log.info(
        "evaluated", namespace=outcome.namespace, profile=outcome.name,
        phase=outcome.phase.value if outcome.phase is not None else None,
        reason=decision.reason if decision is not None else outcome.problem,
        change=None if change is None else f"{change.target} {change.edit.setting.value}",
        table_row=None if change is None else change.table_row, written=outcome.written,
        problem=outcome.problem or None, pooler_synced=outcome.pooler_synced or None,
    )


async def _lead(elector: LeaderElector | None, health: LoopHealth) -> bool:
    if elector is None:
        health.leading = True
    else:
        try:
            health.leading = await asyncio.to_thread(elector.apply_leadership)
            if not health.leading:
                health.last_error = ""  # a follower's own state is fine; an old error would mislead the probe
        except Exception as error:  # not renewed: no tick, since another replica may take over
            health.leading = False
            health.last_error = f"Lease {elector.settings.namespace}/{elector.settings.name} not renewed: {error}"
            log.warning("lease not renewed", error=str(error))
    LEADING.set(1 if health.leading else 0)
    return health.leading


async def run_forever(kube: KubeApi, settings: LoopSettings, *, stop: asyncio.Event, health: LoopHealth,
                      clock: Callable[[], datetime] = utc_now,
                      monotonic: Callable[[], float] = time.monotonic) -> None:
    """Tick until ``stop`` is set. A failed tick (the API server unreachable, or a bug) is logged and the next
    one tries again: nothing a tick wrote is lost to the next, which reads everything back. With leader
    election, only the replica holding the Lease ticks, every write of its tick checked against it
    (``LeaderGuardedApi``); it gives the Lease up when stopped."""
    elector = (LeaderElector(kube, settings.lease, wall_clock=clock, monotonic=monotonic)
               if settings.lease is not None else None)
    writer = LeaderGuardedApi(kube, elector) if elector is not None else kube
    health.leading = elector is None
    while not stop.is_set():
        now = clock()
        if await _lead(elector, health):
            ticked = asyncio.Event()
            renewing = asyncio.create_task(_keep_renewing(elector, ticked)) if elector is not None else None
            health.tick_started_monotonic = monotonic()
            try:
                await _tick(writer, settings, health, now=now)
            finally:
                health.tick_started_monotonic = None
                ticked.set()
                if renewing is not None:
                    await renewing
        health.last_tick_at = now
        with contextlib.suppress(TimeoutError):  # the tick's wait ended without a stop
            await asyncio.wait_for(stop.wait(), timeout=settings.tick_seconds)
    if elector is not None:
        try:  # even after a failed renewal: the Lease may still name this replica
            await asyncio.to_thread(elector.apply_release)
        except Exception as error:  # the others take over once its duration has passed
            log.warning("lease not released", error=str(error))
        LEADING.set(0)


async def _keep_renewing(elector: LeaderElector, ticked: asyncio.Event) -> None:
    """Renew the Lease every third of its duration while a tick runs: a tick that reads and observes for longer
    than the Lease before its first write would otherwise lose it, and two replicas could take turns losing it."""
    while not ticked.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ticked.wait(), timeout=elector.settings.renew_after_seconds)
        if ticked.is_set():
            return
        try:
            await asyncio.to_thread(elector.apply_leadership)
        except Exception as error:  # the tick's next write finds out, by the renew deadline
            log.warning("lease not renewed during a tick", error=str(error))


async def _tick(kube: KubeApi, settings: LoopSettings, health: LoopHealth, *, now: datetime) -> None:
    try:
        with TICK_SECONDS.time():
            outcomes = await asyncio.to_thread(run_tick, kube, settings, now=now)
    except LeadershipLost as error:  # another replica may lead by now: what was written stays consistent
        health.leading = False
        LEADING.set(0)
        health.last_error = str(error)
        log.warning("leadership lost during a tick", error=str(error))
        _report(error.outcomes, health)
    except KubeError as error:
        TICK_FAILURES.inc()
        health.last_error = str(error)
        log.warning("tick failed", error=str(error))
    except Exception as error:  # the loop is the operator: it must outlive any one tick
        TICK_FAILURES.inc()
        health.last_error = f"{type(error).__name__}: {error}"
        log.exception("tick failed")
    else:
        health.last_error = ""
        _report(outcomes, health)


def _report(outcomes: list[ProfileOutcome], health: LoopHealth) -> None:
    health.evaluated += len(outcomes)
    health.outcomes = outcomes
    record_outcomes(outcomes)
    for outcome in outcomes:
        _log(outcome)
