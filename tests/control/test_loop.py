"""The tick loop (run_forever) outlives any one tick: the API server unreachable, or a bug, is logged, shown by the
liveness probe's health, and the next tick tries again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client import ApiClient, Configuration
from promharness import free_port

from perfpilot.actuate.kube import KubeApi
from perfpilot.control.loop import LoopHealth, LoopSettings, run_forever
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
