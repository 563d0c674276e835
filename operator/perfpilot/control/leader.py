"""Leader election on a ``coordination.k8s.io/v1`` Lease, so that several replicas of the operator can run and
only one evaluates and writes at a time.

It follows client-go's ``leaderelection``: the leader renews the Lease's ``renewTime`` every tick. A replica
that does not lead takes the Lease over once it has seen the same record unchanged for
``leaseDurationSeconds`` *by its own clock*. It never compares the holder's ``renewTime`` with its own clock,
so a skew between two machines' clocks cannot make it take over early. Every write carries the Lease's
resourceVersion, so of two replicas taking over at once, one wins and the other sees a conflict.

A replica leads for a tick only when its own write of the Lease succeeded in that tick. One that cannot reach
the API server does not go on as leader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from perfpilot.actuate.kube import KubeApi, KubeError


@dataclass(frozen=True, kw_only=True)
class LeaseSettings:
    namespace: str
    identity: str  # unique per replica: the pod's name
    name: str = "perfpilot"
    duration_seconds: int = 30  # how long a record unchanged means its holder is gone


@dataclass(frozen=True, kw_only=True)
class Observation:
    """The Lease record last seen and when, by this replica's clock."""

    record: tuple[str, str, str]  # holder, renewTime, resourceVersion
    seen_at: datetime


@dataclass(frozen=True, kw_only=True)
class LeaseDecision:
    spec: dict[str, Any] | None  # the Lease spec to write to lead now; None: another replica leads
    observation: Observation


def _format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # a MicroTime, as the Lease's fields are


def _spec(lease: Mapping[str, Any] | None) -> Mapping[str, Any]:
    spec = lease.get("spec") if lease is not None else None
    return spec if isinstance(spec, Mapping) else {}


def decide_lease(lease: Mapping[str, Any] | None, *, settings: LeaseSettings, seen: Observation | None,
                 now: datetime) -> LeaseDecision:
    """Whether to lead at ``now`` given the Lease as read (None: there is none), and what to write if so."""
    spec = _spec(lease)
    holder = str(spec.get("holderIdentity") or "")
    metadata = lease.get("metadata") if lease is not None else None
    version = str(metadata.get("resourceVersion") or "") if isinstance(metadata, Mapping) else ""
    record = (holder, str(spec.get("renewTime") or ""), version)
    observation = seen if seen is not None and seen.record == record else Observation(record=record, seen_at=now)
    duration = spec.get("leaseDurationSeconds")
    duration_seconds = duration if isinstance(duration, int) and duration > 0 else settings.duration_seconds
    held_by_another = holder not in ("", settings.identity)
    if held_by_another and now - observation.seen_at < timedelta(seconds=duration_seconds):
        return LeaseDecision(spec=None, observation=observation)
    transitions = spec.get("leaseTransitions")
    transitions = transitions if isinstance(transitions, int) else 0
    ours = holder == settings.identity
    return LeaseDecision(observation=observation, spec={
        "holderIdentity": settings.identity,
        "leaseDurationSeconds": settings.duration_seconds,
        "acquireTime": spec.get("acquireTime") if ours else _format_time(now),
        "renewTime": _format_time(now),
        "leaseTransitions": transitions if ours or not holder else transitions + 1,
    })


class LeaderElector:
    """One replica's side of the election, across ticks (it remembers what it last saw of the Lease)."""

    def __init__(self, kube: KubeApi, settings: LeaseSettings) -> None:
        self._kube = kube
        self.settings = settings
        self._seen: Observation | None = None

    def apply_leadership(self, *, now: datetime) -> bool:
        """Renew or take the Lease if this replica may lead at ``now``; whether it leads this tick."""
        settings = self.settings
        lease = self._kube.fetch_object("Lease", settings.namespace, settings.name)
        decision = decide_lease(lease, settings=settings, seen=self._seen, now=now)
        self._seen = decision.observation
        if decision.spec is None:
            return False
        try:
            if lease is None:
                self._kube.apply_create("Lease", settings.namespace, {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": settings.name, "namespace": settings.namespace}, "spec": decision.spec})
            else:
                version = lease["metadata"]["resourceVersion"]
                self._kube.apply_json_patch("Lease", settings.namespace, settings.name, [
                    {"op": "test", "path": "/metadata/resourceVersion", "value": version},
                    {"op": "add", "path": "/spec", "value": decision.spec}])
        except KubeError as error:
            if error.conflict:  # another replica wrote it first: it leads
                return False
            raise
        return True

    def apply_release(self) -> None:
        """Give the Lease up on a clean stop, so another replica takes over at once rather than after its
        duration."""
        settings = self.settings
        lease = self._kube.fetch_object("Lease", settings.namespace, settings.name)
        if lease is None or _spec(lease).get("holderIdentity") != settings.identity:
            return
        self._kube.apply_json_patch("Lease", settings.namespace, settings.name, [
            {"op": "test", "path": "/metadata/resourceVersion", "value": lease["metadata"]["resourceVersion"]},
            {"op": "add", "path": "/spec/holderIdentity", "value": ""}])
