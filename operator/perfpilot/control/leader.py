"""Leader election on a ``coordination.k8s.io/v1`` Lease, so that several replicas of the operator can run and
only one evaluates and writes at a time.

It follows client-go's ``leaderelection``:

- The leader renews the Lease's ``renewTime``.
- A replica that does not lead takes the Lease over once it has seen the same record unchanged for
  ``leaseDurationSeconds``, timed on its own monotonic clock. It never compares the holder's ``renewTime`` with
  its own clock, so neither a skew between machines nor a step of its wall clock can make it take over early.
- Every write of the Lease carries its resourceVersion, so of two replicas taking it at once, one wins and the
  other sees a conflict.

A tick can last longer than the Lease (a slow Prometheus, a hung API call), so the leader does not renew only
when a tick starts: the loop renews it beside a running tick every third of its duration
(``control.loop``), and every write of a tick goes through ``LeaderGuardedApi``. Before each write it renews the
Lease if the last renewal is a third of the duration old, and it refuses to write (``LeadershipLost``, which
ends the tick) once the last successful renewal is two thirds of the duration old. That is client-go's renew
deadline, which comes before another replica may take over. What it cannot close is a write already sent when
that happens. ``REQUEST_TIMEOUT_SECONDS`` bounds how long such a write can take, and the Lease must be
longer than it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from perfpilot.actuate.kube import KubeApi, KubeError


@dataclass(frozen=True, kw_only=True)
class LeaseSettings:
    namespace: str
    identity: str  # unique per replica: the pod's name
    name: str = "perfpilot"
    duration_seconds: int = 30  # how long a record unchanged means its holder is gone

    @property
    def renew_after_seconds(self) -> float:
        return self.duration_seconds / 3

    @property
    def renew_deadline_seconds(self) -> float:
        """How long after its last renewal the leader still writes: well before another may take over."""
        return self.duration_seconds * 2 / 3


class LeaseRecord(NamedTuple):
    holder: str
    renew_time: str
    resource_version: str


@dataclass(frozen=True, kw_only=True)
class Observation:
    """The Lease record last seen, and when by this replica's monotonic clock."""

    record: LeaseRecord
    seen_at_monotonic: float


@dataclass(frozen=True, kw_only=True)
class LeaseDecision:
    spec: dict[str, Any] | None  # the Lease spec to write to lead now; None: another replica leads
    observation: Observation


class LeadershipLost(Exception):
    """This replica may no longer write: its Lease was not renewed in time. It ends the tick; ``outcomes`` are
    the evaluations the tick finished before (``ProfileOutcome``), for the logs and metrics."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.outcomes: list[Any] = []


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # a MicroTime, as the Lease's fields are


def _spec(lease: Mapping[str, Any] | None) -> Mapping[str, Any]:
    spec = lease.get("spec") if lease is not None else None
    return spec if isinstance(spec, Mapping) else {}


def decide_lease(lease: Mapping[str, Any] | None, *, settings: LeaseSettings, seen: Observation | None,
                 now: datetime, now_monotonic: float) -> LeaseDecision:
    """Whether to lead given the Lease as read (None: there is none), and what to write if so. ``now`` is only
    written (renewTime, acquireTime); the wait is timed on ``now_monotonic``."""
    spec = _spec(lease)
    holder = str(spec.get("holderIdentity") or "")
    metadata = lease.get("metadata") if lease is not None else None
    version = str(metadata.get("resourceVersion") or "") if isinstance(metadata, Mapping) else ""
    record = LeaseRecord(holder, str(spec.get("renewTime") or ""), version)
    observation = (seen if seen is not None and seen.record == record
                   else Observation(record=record, seen_at_monotonic=now_monotonic))
    duration = spec.get("leaseDurationSeconds")
    duration_seconds = duration if isinstance(duration, int) and duration > 0 else settings.duration_seconds
    held_by_another = holder not in ("", settings.identity)
    if held_by_another and now_monotonic - observation.seen_at_monotonic < duration_seconds:
        return LeaseDecision(spec=None, observation=observation)
    transitions = spec.get("leaseTransitions")
    transitions = transitions if isinstance(transitions, int) else 0
    ours = holder == settings.identity
    return LeaseDecision(observation=observation, spec={
        "holderIdentity": settings.identity,
        "leaseDurationSeconds": settings.duration_seconds,
        "acquireTime": spec.get("acquireTime") if ours else _format_time(now),
        "renewTime": _format_time(now),
        # As client-go counts them: every change of holder, a release ("") included.
        "leaseTransitions": transitions if ours or lease is None else transitions + 1,
    })


class LeaderElector:
    """One replica's side of the election, across ticks: what it last saw of the Lease, and when it last
    renewed it."""

    def __init__(self, kube: KubeApi, settings: LeaseSettings, *, wall_clock: Callable[[], datetime],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._kube = kube
        self.settings = settings
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._seen: Observation | None = None
        self._renewed_at_monotonic: float | None = None
        # The tick's writes (in its thread) and the renewals beside a long tick (in another) share this state.
        self._lock = threading.RLock()

    def apply_leadership(self) -> bool:
        """Renew or take the Lease if this replica may lead now; whether it leads."""
        with self._lock:
            return self._apply_leadership()

    def _apply_leadership(self) -> bool:
        settings = self.settings
        began = self._monotonic()
        lease = self._kube.fetch_object("Lease", settings.namespace, settings.name)
        decision = decide_lease(lease, settings=settings, seen=self._seen, now=self._wall_clock(),
                                now_monotonic=self._monotonic())
        self._seen = decision.observation
        if decision.spec is None:
            self._renewed_at_monotonic = None
            return False
        try:
            if lease is None:
                self._kube.apply_create("Lease", settings.namespace, {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": settings.name, "namespace": settings.namespace}, "spec": decision.spec})
            else:
                self._kube.apply_json_patch("Lease", settings.namespace, settings.name, [
                    {"op": "replace", "path": "/metadata/resourceVersion",
                     "value": decision.observation.record.resource_version},
                    {"op": "add", "path": "/spec", "value": decision.spec}])
        except KubeError as error:
            if error.conflict:  # another replica wrote it first: it leads
                self._renewed_at_monotonic = None
                return False
            raise
        # Timed from before the read: the renewal counts from when this replica last knew it held the Lease.
        self._renewed_at_monotonic = began
        return True

    def may_write(self) -> bool:
        """Whether a write may go out now: the Lease renewed within the renew deadline, renewing it first if it
        is a third of its duration old."""
        with self._lock:
            if self._renewed_at_monotonic is None:
                return False
            if self._monotonic() - self._renewed_at_monotonic >= self.settings.renew_after_seconds:
                with contextlib.suppress(KubeError):  # not renewed: the deadline below decides
                    self._apply_leadership()
            renewed = self._renewed_at_monotonic
            return renewed is not None and self._monotonic() - renewed < self.settings.renew_deadline_seconds

    def apply_release(self) -> None:
        """Give the Lease up on a clean stop, so another replica takes over at once rather than after its
        duration; a Lease held by another is left alone."""
        settings = self.settings
        self._renewed_at_monotonic = None
        lease = self._kube.fetch_object("Lease", settings.namespace, settings.name)
        if lease is None or _spec(lease).get("holderIdentity") != settings.identity:
            return
        self._kube.apply_json_patch("Lease", settings.namespace, settings.name, [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": lease["metadata"]["resourceVersion"]},
            {"op": "add", "path": "/spec/holderIdentity", "value": ""}])


class LeaderGuardedApi(KubeApi):
    """The Kubernetes API as a tick writes to it under leader election: every write first asks the elector
    whether it may still go out, and raises ``LeadershipLost`` if not. Reads pass through."""

    def __init__(self, kube: KubeApi, elector: LeaderElector) -> None:  # a wrapper: no client of its own
        self._inner = kube
        self._elector = elector

    def _check(self) -> None:
        if not self._elector.may_write():
            raise LeadershipLost(f"Lease {self._elector.settings.namespace}/{self._elector.settings.name} not "
                                 f"renewed within {self._elector.settings.renew_deadline_seconds:g} s: not writing")

    def ensure_may_write(self) -> None:
        self._check()

    def fetch_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._inner.fetch_object(kind, namespace, name)

    def fetch_objects(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        return self._inner.fetch_objects(kind, namespace)

    def apply_json_patch(self, kind: str, namespace: str, name: str, patch: list[dict[str, Any]]) -> dict[str, Any]:
        self._check()
        return self._inner.apply_json_patch(kind, namespace, name, patch)

    def apply_create(self, kind: str, namespace: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        self._check()
        return self._inner.apply_create(kind, namespace, obj)

    def apply_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        self._check()
        return self._inner.apply_status(namespace, name, status)

    def apply_event(self, involved: Mapping[str, Any], *, reason: str, message: str, warning: bool,
                    now: datetime) -> None:
        self._check()
        self._inner.apply_event(involved, reason=reason, message=message, warning=warning, now=now)
