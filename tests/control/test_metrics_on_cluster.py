"""The operator's own /metrics (control.instrumentation): counted from each evaluation's outcome, and served by
`perfpilot run`'s kopf operator beside the reader's PromQL metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import kopf
import pytest
import requests
from kubeharness import EmulatedCluster
from prometheus_client import REGISTRY
from promharness import PrometheusServer, free_port
from shop_scenario import AT, profile_named, seed, status_of

from perfpilot.api.status import Edit, Phase, Setting
from perfpilot.control.cycle import ProfileOutcome
from perfpilot.control.instrumentation import record_outcomes
from perfpilot.control.loop import LoopSettings
from perfpilot.handlers import REGISTRY as HANDLERS
from perfpilot.observe.reader import PrometheusSettings
from perfpilot.tuning.decision import Decision, ProposedChange


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _outcome(*, rollback: bool = False, apply: bool = True, written: bool = True) -> ProfileOutcome:
    change = ProposedChange(target="HorizontalPodAutoscaler/api", reason="r", table_row="Steady 70", rollback=rollback,
                            edit=Edit(setting=Setting.HPA_CPU_TARGET, from_value=60, to_value=70))
    return ProfileOutcome(namespace="shop", name="api", phase=Phase.VERIFYING, written=written,
                          decision=Decision(change, "r", apply))


@pytest.mark.parametrize(("outcome", "counted"), [
    (_outcome(), ("perfpilot_changes_applied_total", {"setting": "hpa.cpuTarget"})),
    (_outcome(rollback=True), ("perfpilot_rollbacks_total", {"setting": "hpa.cpuTarget"})),
    (_outcome(written=False), ("perfpilot_write_failures_total", {"setting": "hpa.cpuTarget"})),
    (_outcome(apply=False, written=False),  # Recommend: decided, shown, not written
     ("perfpilot_decisions_total", {"kind": "change", "setting": "hpa.cpuTarget"})),
])
def test_each_outcome_is_counted_where_it_belongs(outcome: ProfileOutcome,
                                                  counted: tuple[str, dict[str, str]]) -> None:
    names = ("perfpilot_changes_applied_total", "perfpilot_rollbacks_total", "perfpilot_write_failures_total")
    before = {name: _sample(name, setting="hpa.cpuTarget") for name in names}
    decisions = _sample("perfpilot_decisions_total", kind="change", setting="hpa.cpuTarget")
    record_outcomes([outcome])
    after = {name: _sample(name, setting="hpa.cpuTarget") for name in names}
    name, labels = counted
    moved = {key for key in names if after[key] != before[key]}
    assert moved == ({name} if name in names else set())
    if name == "perfpilot_decisions_total":
        assert _sample(name, **labels) == decisions + 1
    assert _sample("perfpilot_last_tick_profiles") == 1


_FRESH_PROCESS = """
import json
from prometheus_client import REGISTRY
import perfpilot.control.instrumentation  # noqa: F401
from perfpilot.api.status import Setting
names = ("perfpilot_changes_applied_total", "perfpilot_rollbacks_total", "perfpilot_write_failures_total")
print(json.dumps({f"{name} {s.value}": REGISTRY.get_sample_value(name, {"setting": s.value})
                  for name in names for s in Setting}))
"""


def test_every_settings_write_counters_exist_at_0_before_their_first_count() -> None:
    # In a process of its own: in this one, earlier tests have counted some settings already. A series that
    # appears at 1 gives increase() nothing, so the first change of a setting would not be counted.
    done = subprocess.run([sys.executable, "-c", _FRESH_PROCESS], capture_output=True, text=True, check=True,
                          timeout=60)
    values = json.loads(done.stdout)
    assert len(values) == 3 * len(Setting)
    assert set(values.values()) == {0.0}, values


def test_a_pooler_sync_is_counted_by_the_reason_it_found() -> None:
    before = _sample("perfpilot_pooler_syncs_total", reason="AdminUnreachable")
    record_outcomes([ProfileOutcome(namespace="shop", name="api", phase=Phase.OBSERVING,
                                    pooler_synced="AdminUnreachable"),
                     ProfileOutcome(namespace="shop", name="web", phase=Phase.OBSERVING)])  # none synced
    assert _sample("perfpilot_pooler_syncs_total", reason="AdminUnreachable") == before + 1
    assert REGISTRY.get_sample_value("perfpilot_pooler_syncs_total", {"reason": ""}) is None


def _served(port: int, name: str, **labels: str) -> float | None:
    """One sample's value as /metrics serves it, or None when it is not there (or nothing answers)."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except requests.ConnectionError:
        return None
    wanted = name + ("{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return None


@pytest.mark.integration
def test_the_operator_serves_its_metrics(kube: EmulatedCluster, scenario_prometheus: PrometheusServer) -> None:
    seed(kube, profile_named())
    # The registry is the process's: what this run adds is measured against what earlier tests left.
    applied = _sample("perfpilot_changes_applied_total", setting="pool.size")
    ticks = _sample("perfpilot_tick_duration_seconds_count")
    queries = _sample("perfpilot_promql_queries_total", prometheus=scenario_prometheus.url,
                      signal="pool_client_waiting", outcome="ok")
    port, stop = free_port(), threading.Event()
    memo = kopf.Memo(loop_settings=LoopSettings(prometheus=PrometheusSettings(url=scenario_prometheus.url),
                                                tick_seconds=0.2),
                     kube_client=kube.api, clock=lambda: AT, metrics_port=port)
    thread = threading.Thread(target=kopf.run, kwargs={
        "registry": HANDLERS, "clusterwide": True, "standalone": True, "memo": memo, "stop_flag": stop})
    thread.start()
    try:
        deadline, served = time.monotonic() + 15, None
        while time.monotonic() < deadline and (served or 0) <= applied:
            time.sleep(0.1)
            served = _served(port, "perfpilot_changes_applied_total", setting="pool.size")
        served_ticks = _served(port, "perfpilot_tick_duration_seconds_count")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive(), "the operator did not stop"
    assert status_of(kube).get("lastChange"), "the operator wrote no change"
    assert served == applied + 1
    assert served_ticks is not None and served_ticks > ticks
    assert _sample("perfpilot_promql_queries_total", prometheus=scenario_prometheus.url,
                   signal="pool_client_waiting", outcome="ok") > queries  # the reader's, in the same registry
    assert _served(port, "perfpilot_leading") is None  # served no more once the operator stopped
