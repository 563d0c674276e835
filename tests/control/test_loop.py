"""The tick loop (run_forever) outlives any one tick: the API server unreachable, or a bug, is logged, shown by the
liveness probe's health, and the next tick tries again."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest
from kubernetes.client import ApiClient, Configuration
from promharness import free_port

from perfpilot.actuate.kube import KubeApi
from perfpilot.control.loop import STUCK_TICK_SECONDS, LoopHealth, LoopSettings, run_forever
from perfpilot.handlers import probe
from perfpilot.observe.reader import PrometheusSettings

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SETTINGS = LoopSettings(prometheus=PrometheusSettings(url=""), tick_seconds=0.05)


def _ticks(kube: KubeApi, *, count: int) -> tuple[LoopHealth, list[datetime]]:
    """Run the loop until it has ticked ``count`` times, on a clock a minute apart per tick."""
    health, seen = LoopHealth(), []

    def clock() -> datetime:
        seen.append(START + timedelta(minutes=len(seen)))
        return seen[-1]

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_forever(kube, SETTINGS, stop=stop, health=health, clock=clock))
        while len(seen) < count and not task.done():
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, timeout=10)

    asyncio.run(run())
    return health, seen


def test_an_unreachable_api_server_fails_the_tick_not_the_loop() -> None:
    client = ApiClient(Configuration(host=f"http://127.0.0.1:{free_port()}"))
    health, seen = _ticks(KubeApi(client), count=3)
    assert len(seen) >= 3
    assert health.last_tick_at == seen[-1]
    assert "GET /apis/perfpilot.io/v1alpha1/performanceprofiles" in health.last_error
    assert health.evaluated == 0


class _Broken(KubeApi):
    def fetch_objects(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        raise ZeroDivisionError("a bug")


def test_a_bug_in_a_tick_is_reported_and_the_loop_goes_on() -> None:
    health, seen = _ticks(_Broken(ApiClient(Configuration(host="http://127.0.0.1:1"))), count=2)
    assert len(seen) >= 2
    assert health.last_error == "ZeroDivisionError: a bug"


@pytest.mark.parametrize(("running_seconds", "stuck"), [(None, False), (899.0, False), (901.0, True)])
def test_a_tick_is_stuck_only_once_it_has_run_longer_than_any_tick_should(running_seconds: float | None,
                                                                          stuck: bool) -> None:
    health = LoopHealth(tick_started_monotonic=None if running_seconds is None else 1_000.0)
    assert health.decide_stuck(now_monotonic=1_000.0 + (running_seconds or 0.0), limit_seconds=900.0) is stuck


class _Running:
    """The loop's task as the probe sees it: still running."""

    def done(self) -> bool:
        return False


def test_the_liveness_probe_fails_on_a_hung_tick_and_answers_otherwise() -> None:
    health = LoopHealth(evaluated=3)
    memo = kopf.Memo(health=health, loop_task=_Running())
    assert probe(memo=memo)["evaluated"] == 3
    health.tick_started_monotonic = time.monotonic() - STUCK_TICK_SECONDS - 1
    with pytest.raises(kopf.PermanentError, match="a tick has run for more than 900 s"):
        probe(memo=memo)


class _Slow(KubeApi):
    def __init__(self, health: LoopHealth) -> None:
        super().__init__(ApiClient(Configuration(host="http://127.0.0.1:1")))
        self.health = health
        self.seen_running: list[float | None] = []

    def fetch_objects(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        self.seen_running.append(self.health.tick_started_monotonic)
        return []


def test_the_loop_marks_a_tick_as_running_while_it_runs() -> None:
    health = LoopHealth()
    api = _Slow(health)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_forever(api, SETTINGS, stop=stop, health=health, clock=lambda: START))
        while not api.seen_running:
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(run())
    assert api.seen_running[0] is not None
    assert health.tick_started_monotonic is None
