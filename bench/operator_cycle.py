"""Operator-cycle benchmark: one ``run_cycle`` over 1, 100 and 1,000 due profiles, the operator's own cost.

Run ``python bench/operator_cycle.py``. It starts the real Prometheus of ``tests/observe`` (the small test
cluster's hour). For each profile count it seeds that many Deployments, HPAs and pods over 50 namespaces,
with a Recommend profile on each, and times one cycle the way one tick of ``perfpilot run`` evaluates them.
It prints:

- wall seconds and CPU seconds;
- the peak of Python memory allocated during the cycle (tracemalloc);
- the PromQL queries sent;
- the API requests made, by verb.

The API server is a dict in this process (``InMemoryApi``), answering at once, so the numbers are
perfpilot's and Prometheus', not an API server's. The tests use kmock's emulator instead, whose answers take
about 0.1 s each once it holds a few hundred objects: that would measure kmock. Numbers are printed, not
asserted.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonpatch

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS / "observe"))

from prom_scenarios import AT_SECONDS, build_cluster  # noqa: E402
from promharness import running_prometheus  # noqa: E402

from perfpilot.actuate.kube import RESOURCES, KubeApi  # noqa: E402
from perfpilot.control.cycle import run_cycle  # noqa: E402
from perfpilot.observe.instrumentation import PROMQL_QUERIES  # noqa: E402
from perfpilot.observe.reader import PrometheusSettings  # noqa: E402

PROFILE_COUNTS = (1, 100, 1000)
NAMESPACES = 50


class InMemoryApi(KubeApi):
    """The objects in a dict, answered at once; every call counted by verb, as the API server would see it."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()

    def add(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = {
            **obj, "metadata": {**meta, "resourceVersion": "1", "generation": 1}}

    def fetch_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls["get"] += 1
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def fetch_objects(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        self.calls["list"] += 1
        return [{**copy.deepcopy(obj), "apiVersion": RESOURCES[kind].api_version}
                for (stored, ns, _), obj in self.objects.items() if stored == kind and namespace in (None, ns)]

    def apply_json_patch(self, kind: str, namespace: str, name: str, patch: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls["patch"] += 1
        key = (kind, namespace, name)
        self.objects[key] = jsonpatch.apply_patch(self.objects[key], patch)
        return self.objects[key]

    def apply_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        self.calls["patch status"] += 1
        key = ("PerformanceProfile", namespace, name)
        self.objects[key] = {**self.objects[key], "status": dict(status)}
        return self.objects[key]

    def apply_event(self, involved: Mapping[str, Any], *, reason: str, message: str, warning: bool,
                    now: datetime) -> None:
        self.calls["create event"] += 1


def seed(api: InMemoryApi, count: int) -> None:
    for index in range(count):
        namespace, name = ("shop", "api") if index == 0 else (f"team-{index % NAMESPACES}", f"svc-{index}")
        labels = {"app": name}
        api.add({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": name, "namespace": namespace},
                 "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
                     "metadata": {"labels": labels},
                     "spec": {"containers": [{"name": "app", "image": "app:1", "resources": {
                         "requests": {"cpu": "500m", "memory": "512Mi"},
                         "limits": {"cpu": "1", "memory": "1Gi"}}}]}}}})
        api.add({"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2",
                 "metadata": {"name": name, "namespace": namespace},
                 "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                          "minReplicas": 2, "maxReplicas": 10,
                          "metrics": [{"type": "Resource", "resource": {
                              "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]},
                 "status": {"currentReplicas": 2, "desiredReplicas": 2}})
        for suffix in ("a1b2c", "d3e4f"):
            api.add({"kind": "Pod", "apiVersion": "v1",
                     "metadata": {"name": f"{name}-5d8f7c9b6d-{suffix}", "namespace": namespace, "labels": labels},
                     "status": {"containerStatuses": [{"name": "app", "state": {"running": {}}}]}})
        api.add({"kind": "PerformanceProfile", "apiVersion": "perfpilot.io/v1alpha1",
                 "metadata": {"name": name, "namespace": namespace},
                 "spec": {"targetRef": {"kind": "Deployment", "name": name}, "mode": "Recommend"}})


def _queries() -> float:
    return sum(sample.value for sample in PROMQL_QUERIES.collect()[0].samples if sample.name.endswith("_total"))


def measure(count: int, *, prometheus_url: str) -> dict[str, Any]:
    api = InMemoryApi()
    seed(api, count)
    profiles = api.fetch_objects("PerformanceProfile", None)
    api.calls.clear()
    queries_before = _queries()
    tracemalloc.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    outcomes = run_cycle(api, profiles, now=datetime.fromtimestamp(AT_SECONDS, UTC),
                         settings=PrometheusSettings(url=prometheus_url))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    problems = [outcome.problem for outcome in outcomes if outcome.problem]
    return {"profiles": count, "evaluated": len(outcomes), "seconds": seconds, "cpu_seconds": cpu_seconds,
            "peak_mib": peak_bytes / 2**20, "queries": int(_queries() - queries_before), "calls": dict(api.calls),
            "problems": problems[:3]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=list(PROFILE_COUNTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, running_prometheus(
            workdir=Path(folder), openmetrics=build_cluster().render()) as prometheus:
        print("| profiles | evaluated | wall s | CPU s | peak MiB (tracemalloc) | PromQL queries | API calls |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for count in args.counts:
            found = measure(count, prometheus_url=prometheus.url)
            calls = ", ".join(f"{verb} {number}" for verb, number in sorted(found["calls"].items()))
            print(f"| {count} | {found['evaluated']} | {found['seconds']:.2f} | {found['cpu_seconds']:.2f} | "
                  f"{found['peak_mib']:.1f} | {found['queries']} | {calls} |", flush=True)
            if found["problems"]:
                print(f"  problems, e.g.: {found['problems']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
