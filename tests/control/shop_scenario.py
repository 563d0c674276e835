"""shop/api on the emulated cluster: its Deployment, HPA, pgBouncer ConfigMap and pooler Deployment as
tests/observe/data holds them, and a profile on it; the real Prometheus of the control tests holds its hour, in
whose last 20 minutes its pgBouncer clients wait."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubeharness import EmulatedCluster
from prom_scenarios import AT_SECONDS

from perfpilot.actuate.kube import KubeApi
from perfpilot.api.status import PoolSize
from perfpilot.control.cycle import ProfileOutcome
from perfpilot.control.loop import LoopSettings, run_tick
from perfpilot.observe.reader import PrometheusSettings
from perfpilot.observe.workload import parse_pgbouncer_ini

DATA = Path(__file__).resolve().parent.parent / "observe" / "data"
AT = datetime.fromtimestamp(AT_SECONDS, UTC)
BEFORE = PoolSize(default_pool_size=10, reserve_pool_size=2)


def profile_named(name: str = "api", *, mode: str = "Auto") -> dict[str, Any]:
    profile: dict[str, Any] = yaml.safe_load((DATA / "shop-api-profile.yaml").read_text())
    profile["metadata"]["name"] = name
    profile["spec"]["mode"] = mode
    return profile


def seed(kube: EmulatedCluster, *profiles: dict[str, Any]) -> None:
    for document in yaml.safe_load_all((DATA / "shop-api-workload.yaml").read_text()):
        kube.create(document)
    for profile in profiles:
        kube.create(profile)


def seed_oldest_first(kube: EmulatedCluster, *profiles: dict[str, Any]) -> None:
    """``seed``, each profile created in a later second than the one before (creationTimestamp has whole
    seconds): which is older is then told by age, not by the name that breaks a tie."""
    seed(kube)
    for profile in profiles:
        created = kube.create(profile)["metadata"]["creationTimestamp"]
        while datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") <= created:
            time.sleep(0.05)


def pool(kube: EmulatedCluster) -> PoolSize:
    """The pool pgbouncer.ini in the ConfigMap gives database app now."""
    ini = kube.get("v1", "ConfigMap", "pgbouncer", "shop")["data"]["pgbouncer.ini"]
    live = parse_pgbouncer_ini(ini, database="app")
    return PoolSize(default_pool_size=live.default_pool_size, reserve_pool_size=live.reserve_pool_size)


def status_of(kube: EmulatedCluster, name: str = "api") -> dict[str, Any]:
    status: dict[str, Any] = kube.get("perfpilot.io/v1alpha1", "PerformanceProfile", name, "shop").get("status", {})
    return status


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {condition["type"]: condition["status"] for condition in status.get("conditions", [])}


def events(kube: EmulatedCluster) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.request("GET", kube.path("v1", "Event", "shop")).json()["items"]
    return items


def run_shop_cycle(kube: EmulatedCluster, prometheus_url: str, *, now: datetime = AT, api: KubeApi | None = None,
                   namespaces: tuple[str, ...] = ()) -> list[ProfileOutcome]:
    """One tick of the operator's loop (``run_tick``) over the profiles of ``namespaces`` (default: every one)."""
    settings = LoopSettings(prometheus=PrometheusSettings(url=prometheus_url), namespaces=namespaces)
    return run_tick(api or KubeApi(kube.api), settings, now=now)


def invoices_objects(*, cpu_target_percent: int) -> list[dict[str, Any]]:
    """billing/invoices (prom_scenarios: its latency regresses at minute 45 of the hour): a Deployment of two
    pods and its HPA at ``cpu_target_percent``."""
    workload: dict[str, Any] = next(yaml.safe_load_all((DATA / "shop-api-workload.yaml").read_text()))
    workload["metadata"] = {"name": "invoices", "namespace": "billing"}
    workload["spec"]["selector"] = {"matchLabels": {"app": "invoices"}}
    workload["spec"]["template"]["metadata"] = {"labels": {"app": "invoices"}}
    workload["spec"]["template"]["spec"]["containers"] = workload["spec"]["template"]["spec"]["containers"][:1]
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "invoices", "namespace": "billing"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "invoices"},
                    "minReplicas": 2, "maxReplicas": 10,
                    "metrics": [{"type": "Resource", "resource": {
                        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_target_percent}}}]},
           "status": {"currentReplicas": 2, "desiredReplicas": 2}}
    return [workload, hpa]
