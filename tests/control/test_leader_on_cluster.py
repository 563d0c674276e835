"""Replicas electing a leader through a Lease on the emulated API: one leads; another takes over once the Lease has
gone unrenewed for its duration on its own monotonic clock, or at once when the leader gives it up; a write that
loses the race is no leadership; a leader renews during a long tick and stops writing once it could not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest
from kubeharness import MERGE_PATCH, EmulatedCluster
from shop_scenario import AT, profile_named, seed

from perfpilot.actuate.kube import KubeApi
from perfpilot.control.cycle import run_cycle
from perfpilot.control.leader import LeaderElector, LeaderGuardedApi, LeadershipLost, LeaseSettings
from perfpilot.control.loop import LoopHealth, LoopSettings, run_forever
from perfpilot.observe.reader import PrometheusSettings

pytestmark = pytest.mark.integration


class Clock:
    """Seconds on a monotonic clock the test moves, shared by the replicas it is given to, and the wall clock
    moving with it (a renewal writes a new renewTime)."""

    def __init__(self) -> None:
        self.seconds = 1_000.0

    def __call__(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return AT + timedelta(seconds=self.seconds)


def _elector(kube: EmulatedCluster, identity: str, clock: Clock, api: KubeApi | None = None) -> LeaderElector:
    return LeaderElector(api or KubeApi(kube.api), LeaseSettings(namespace="perfpilot", identity=identity,
                                                                 duration_seconds=30),
                         wall_clock=clock.wall, monotonic=clock)


def _holder(kube: EmulatedCluster) -> str:
    holder: str = kube.get("coordination.k8s.io/v1", "Lease", "perfpilot", "perfpilot")["spec"]["holderIdentity"]
    return holder


def test_one_replica_leads_and_another_takes_over_when_it_stops_renewing(kube: EmulatedCluster) -> None:
    clock = Clock()
    a, b = _elector(kube, "perfpilot-a", clock), _elector(kube, "perfpilot-b", clock)
    assert a.apply_leadership()
    assert not b.apply_leadership()
    clock.seconds += 10
    assert a.apply_leadership()  # renewed
    clock.seconds += 25
    assert not b.apply_leadership()  # it sees the renewal now: its wait starts again
    clock.seconds += 29  # a has stopped renewing
    assert not b.apply_leadership()
    clock.seconds += 1
    assert b.apply_leadership()
    assert _holder(kube) == "perfpilot-b"
    assert not a.apply_leadership()  # back, it finds b leading


def test_a_leader_that_gives_the_lease_up_is_replaced_at_once(kube: EmulatedCluster) -> None:
    clock = Clock()
    a, b = _elector(kube, "perfpilot-a", clock), _elector(kube, "perfpilot-b", clock)
    assert a.apply_leadership()
    assert not b.apply_leadership()
    a.apply_release()
    assert b.apply_leadership()
    assert _holder(kube) == "perfpilot-b"
    lease = kube.get("coordination.k8s.io/v1", "Lease", "perfpilot", "perfpilot")
    assert lease["spec"]["leaseTransitions"] == 1


class _ReadThenRival(KubeApi):
    """Reads the Lease, then another replica writes it before this one does."""

    def __init__(self, kube: EmulatedCluster, rival: LeaderElector) -> None:
        super().__init__(kube.api)
        self._rival = rival

    def fetch_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = super().fetch_object(kind, namespace, name)
        assert self._rival.apply_leadership()
        return found


@pytest.mark.parametrize("lease_exists", [False, True])
def test_of_two_replicas_taking_the_lease_at_once_only_one_leads(kube: EmulatedCluster, lease_exists: bool) -> None:
    clock = Clock()
    rival = _elector(kube, "perfpilot-rival", clock)
    late = _elector(kube, "perfpilot-late", clock, api=_ReadThenRival(kube, rival))
    if lease_exists:  # a lease given up: both take it, with a patch each, and one conflicts (422)
        assert _elector(kube, "perfpilot-gone", clock).apply_leadership()
        kube.request("PATCH", kube.path("coordination.k8s.io/v1", "Lease", "perfpilot", "perfpilot"),
                     {"spec": {"holderIdentity": ""}}, content_type=MERGE_PATCH).raise_for_status()
    assert not late.apply_leadership()  # else a create each: one is 409
    assert _holder(kube) == "perfpilot-rival"


def test_a_leader_renews_during_a_long_tick_before_it_writes(kube: EmulatedCluster) -> None:
    clock = Clock()
    a = _elector(kube, "perfpilot-a", clock)
    assert a.apply_leadership()
    renewed = kube.get("coordination.k8s.io/v1", "Lease", "perfpilot", "perfpilot")["metadata"]["resourceVersion"]
    clock.seconds += 9
    assert a.may_write()  # a third of the duration not yet passed: no renewal needed
    assert kube.get("coordination.k8s.io/v1", "Lease", "perfpilot", "perfpilot")["metadata"]["resourceVersion"] == (
        renewed)
    clock.seconds += 6
    assert a.may_write()  # 15 s: renewed first
    assert kube.get("coordination.k8s.io/v1", "Lease", "perfpilot", "perfpilot")["metadata"]["resourceVersion"] != (
        renewed)


def test_a_leader_whose_lease_was_taken_during_a_long_tick_writes_nothing_more(kube: EmulatedCluster) -> None:
    clock = Clock()
    a, b = _elector(kube, "perfpilot-a", clock), _elector(kube, "perfpilot-b", clock)
    seed(kube, profile_named(mode="Recommend"))
    assert a.apply_leadership()
    assert not b.apply_leadership()
    clock.seconds += 31  # a's tick is stuck (a slow Prometheus) past the Lease's duration
    assert b.apply_leadership()
    guarded = LeaderGuardedApi(KubeApi(kube.api), a)
    assert guarded.fetch_object("Deployment", "shop", "api") is not None  # reads still go through
    with pytest.raises(LeadershipLost, match="not renewed within 20 s"):
        guarded.apply_status("shop", "api", {"phase": "Observing"})
    assert "status" not in kube.get("perfpilot.io/v1alpha1", "PerformanceProfile", "api", "shop")


def test_two_operator_loops_tick_one_at_a_time_and_hand_over_when_the_leader_stops(kube: EmulatedCluster) -> None:
    seed(kube, profile_named(mode="Recommend"))

    async def run() -> tuple[LoopHealth, LoopHealth, int]:
        healths, stops, tasks = [], [], []
        for identity, start in (("perfpilot-a", AT), ("perfpilot-b", AT + timedelta(hours=1))):
            settings = LoopSettings(prometheus=PrometheusSettings(url=""), tick_seconds=0.05,
                                    lease=LeaseSettings(namespace="perfpilot", identity=identity))
            health, stop = LoopHealth(), asyncio.Event()
            # a first, so that it takes the free Lease; each on its own clock, a second a tick (b's an hour on, so
            # that the profile a evaluated is due again when b takes over)
            ticks = iter(range(1_000_000))
            tasks.append(asyncio.create_task(run_forever(
                KubeApi(kube.api), settings, stop=stop, health=health,
                clock=lambda ticks=ticks, start=start: start + timedelta(seconds=next(ticks)))))
            healths.append(health)
            stops.append(stop)
            await asyncio.sleep(0.2)
        a, b = healths
        evaluated_by_b_while_a_led = b.evaluated
        stops[0].set()
        await tasks[0]  # a gives the Lease up
        for _ in range(100):
            if b.evaluated:
                break
            await asyncio.sleep(0.05)
        stops[1].set()
        await tasks[1]
        return a, b, evaluated_by_b_while_a_led

    a, b, evaluated_by_b_while_a_led = asyncio.run(run())
    assert a.evaluated >= 1
    assert evaluated_by_b_while_a_led == 0
    assert b.evaluated >= 1
    assert _holder(kube) == ""  # b gave it up in turn


class _SlowLists(KubeApi):
    """An API whose lists take ``seconds``: a tick longer than a third of the Lease."""

    def __init__(self, kube: EmulatedCluster, seconds: float) -> None:
        super().__init__(kube.api)
        self._seconds = seconds

    def fetch_objects(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        time.sleep(self._seconds)
        return super().fetch_objects(kind, namespace)


def test_the_lease_is_renewed_beside_a_tick_longer_than_a_third_of_it(kube: EmulatedCluster) -> None:
    seed(kube, profile_named(mode="Recommend"))
    lease = LeaseSettings(namespace="perfpilot", identity="perfpilot-a", duration_seconds=3)  # renewed each 1 s
    settings = LoopSettings(prometheus=PrometheusSettings(url=""), tick_seconds=60, lease=lease)
    renewals: list[str] = []

    async def run() -> LoopHealth:
        health, stop = LoopHealth(), asyncio.Event()
        # The system clock: each renewal writes a new renewTime (an unchanged Lease would not be written).
        task = asyncio.create_task(run_forever(_SlowLists(kube, 1.5), settings, stop=stop, health=health))
        while not health.evaluated and not task.done():  # one tick: its three lists take 4.5 s
            await asyncio.sleep(0.1)
            lease_now = kube.get("coordination.k8s.io/v1", "Lease", "perfpilot", "perfpilot")
            if lease_now["metadata"]["resourceVersion"] not in renewals:
                renewals.append(lease_now["metadata"]["resourceVersion"])
        stop.set()
        await task
        return health

    health = asyncio.run(run())
    assert health.evaluated == 1, health.last_error
    assert len(renewals) >= 3  # taken at the tick's start, then renewed at least twice beside it


class _LosesLeadOnSecondStatus(KubeApi):
    def __init__(self, kube: EmulatedCluster) -> None:
        super().__init__(kube.api)
        self.statuses = 0

    def apply_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        self.statuses += 1
        if self.statuses == 2:
            raise LeadershipLost("Lease perfpilot/perfpilot not renewed within 20 s: not writing")
        return super().apply_status(namespace, name, status)


def test_a_tick_that_loses_the_lease_still_reports_what_it_did_before(kube: EmulatedCluster) -> None:
    missing = profile_named("checkout")
    missing["spec"]["targetRef"]["name"] = "checkout"
    seed(kube, profile_named("api", mode="Recommend"), missing)
    api = _LosesLeadOnSecondStatus(kube)
    with pytest.raises(LeadershipLost) as lost:
        run_cycle(api, api.fetch_objects("PerformanceProfile", None), now=AT, settings=PrometheusSettings(url=""))
    # checkout, held for its missing workload, had its status written first; api's was the write refused.
    assert [outcome.name for outcome in lost.value.outcomes] == ["checkout"]
