"""Two replicas electing a leader through a Lease on the emulated API: one leads; the other takes over once the
Lease has gone unrenewed for its duration by its own clock, or at once when the leader gives it up; a write
that loses the race is no leadership."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from kubeharness import MERGE_PATCH, EmulatedCluster
from shop_scenario import AT, profile_named, seed

from perfpilot.actuate.kube import KubeApi
from perfpilot.control.leader import LeaderElector, LeaseSettings
from perfpilot.control.loop import LoopHealth, LoopSettings, run_forever
from perfpilot.observe.reader import PrometheusSettings

pytestmark = pytest.mark.integration


def _elector(kube: EmulatedCluster, identity: str) -> LeaderElector:
    return LeaderElector(KubeApi(kube.api), LeaseSettings(namespace="perfpilot", identity=identity,
                                                          duration_seconds=30))


def _holder(kube: EmulatedCluster) -> str:
    holder: str = kube.get("coordination.k8s.io/v1", "Lease", "perfpilot", "perfpilot")["spec"]["holderIdentity"]
    return holder


def test_one_replica_leads_and_the_other_takes_over_when_it_stops_renewing(kube: EmulatedCluster) -> None:
    a, b = _elector(kube, "perfpilot-a"), _elector(kube, "perfpilot-b")
    assert a.apply_leadership(now=AT)
    assert not b.apply_leadership(now=AT)
    assert a.apply_leadership(now=AT + timedelta(seconds=10))  # renewed
    assert not b.apply_leadership(now=AT + timedelta(seconds=35))  # it saw a renewal at +10 s... at +35 s
    # a stops; b has seen the same record since +35 s
    assert not b.apply_leadership(now=AT + timedelta(seconds=64))
    assert b.apply_leadership(now=AT + timedelta(seconds=65))
    assert _holder(kube) == "perfpilot-b"
    assert not a.apply_leadership(now=AT + timedelta(seconds=66))  # back, it finds b leading


def test_a_leader_that_gives_the_lease_up_is_replaced_at_once(kube: EmulatedCluster) -> None:
    a, b = _elector(kube, "perfpilot-a"), _elector(kube, "perfpilot-b")
    assert a.apply_leadership(now=AT)
    assert not b.apply_leadership(now=AT + timedelta(seconds=1))
    a.apply_release()
    assert b.apply_leadership(now=AT + timedelta(seconds=2))
    assert _holder(kube) == "perfpilot-b"


class _ReadThenRival(KubeApi):
    """Reads the Lease, then another replica writes it before this one does."""

    def __init__(self, kube: EmulatedCluster, rival: LeaderElector) -> None:
        super().__init__(kube.api)
        self._rival = rival

    def fetch_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = super().fetch_object(kind, namespace, name)
        assert self._rival.apply_leadership(now=AT + timedelta(seconds=100))
        return found


@pytest.mark.parametrize("lease_exists", [False, True])
def test_of_two_replicas_taking_the_lease_at_once_only_one_leads(kube: EmulatedCluster, lease_exists: bool) -> None:
    rival = _elector(kube, "perfpilot-rival")
    late = LeaderElector(_ReadThenRival(kube, rival), LeaseSettings(namespace="perfpilot", identity="perfpilot-late",
                                                                    duration_seconds=30))
    if lease_exists:  # a lease given up: both take it, with a patch each, and one conflicts (422)
        assert _elector(kube, "perfpilot-gone").apply_leadership(now=AT)
        kube.request("PATCH", kube.path("coordination.k8s.io/v1", "Lease", "perfpilot", "perfpilot"),
                     {"spec": {"holderIdentity": ""}}, content_type=MERGE_PATCH).raise_for_status()
    assert not late.apply_leadership(now=AT + timedelta(seconds=100))  # else a create each: one is 409
    assert _holder(kube) == "perfpilot-rival"


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
