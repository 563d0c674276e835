"""The live configuration (``LiveConfig``) from Kubernetes manifests, for ``perfpilot plan --workload-spec``.

The operator reads the same objects from the API server; ``plan`` reads them from YAML (``kubectl get
deploy,hpa,cm,pooler -o yaml`` output, a ``List`` or several documents). Requests and limits come from the
workload's pod template — never from kube-state-metrics. Parsing is pure: the caller reads the file.

Which objects count: the Deployment or StatefulSet named by ``spec.targetRef``; the HPA named by
``spec.hpa.name``, else the one whose ``scaleTargetRef`` is the target; the ConfigMap of
``pool.pgbouncer.configMapRef`` (its ``pgbouncer.ini``) or the CloudNativePG ``Pooler`` of ``poolerRef``.
"""

from __future__ import annotations

import configparser
from collections.abc import Iterable, Mapping
from typing import Any

from perfpilot.api.quantities import CpuQuantity, MemoryQuantity
from perfpilot.api.spec import PAUSED_ANNOTATION, PerformanceProfile
from perfpilot.api.status import ContainerResources, ScalingRules
from perfpilot.tuning.observations import HpaLive, LiveConfig, PoolLive

# pgBouncer's own defaults, used when the ini leaves them out.
PGBOUNCER_DEFAULT_POOL_SIZE = 20
PGBOUNCER_DEFAULT_RESERVE_POOL_SIZE = 0


class WorkloadSpecError(ValueError):
    """The manifests do not describe the profile's workload well enough (the message says what is missing)."""


def flatten(documents: Iterable[Any]) -> list[dict[str, Any]]:
    """Objects from YAML documents, with ``kind: List`` expanded (``kubectl get -o yaml`` writes one)."""
    objects: list[dict[str, Any]] = []
    for document in documents:
        if not isinstance(document, dict):
            continue
        if document.get("kind") == "List" or (document.get("kind", "").endswith("List") and "items" in document):
            objects.extend(item for item in document.get("items", []) if isinstance(item, dict))
        else:
            objects.append(document)
    return objects


def _find(objects: Iterable[Mapping[str, Any]], kind: str, name: str) -> Mapping[str, Any] | None:
    return next((o for o in objects if o.get("kind") == kind and o.get("metadata", {}).get("name") == name), None)


def _cpu(raw: object) -> int | None:
    return None if raw is None else CpuQuantity.parse(str(raw)).millicores


def _memory(raw: object) -> int | None:
    return None if raw is None else MemoryQuantity.parse(str(raw)).bytes


def containers_of(workload: Mapping[str, Any]) -> tuple[ContainerResources, ...]:
    containers = workload.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    found: list[ContainerResources] = []
    for container in containers:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        found.append(ContainerResources(
            name=container.get("name", ""),
            cpu_request_millicores=_cpu(requests.get("cpu")),
            cpu_limit_millicores=_cpu(limits.get("cpu")),
            memory_request_bytes=_memory(requests.get("memory")),
            memory_limit_bytes=_memory(limits.get("memory")),
        ))
    return tuple(found)


def _scaling_rules(raw: Mapping[str, Any] | None) -> ScalingRules | None:
    if not raw:
        return None
    return ScalingRules.model_validate(raw)


def _utilisation_target(hpa: Mapping[str, Any], resource: str) -> int | None:
    for metric in hpa.get("spec", {}).get("metrics", []) or []:
        if metric.get("type") == "Resource" and metric.get("resource", {}).get("name") == resource:
            target = metric["resource"].get("target", {})
            if target.get("type") == "Utilization" and "averageUtilization" in target:
                return int(target["averageUtilization"])
    return None


def hpa_of(objects: Iterable[Mapping[str, Any]], profile: PerformanceProfile) -> HpaLive | None:
    target = profile.spec.target_ref
    hpas = [o for o in objects if o.get("kind") == "HorizontalPodAutoscaler"]
    if profile.spec.hpa.name:
        hpa = _find(hpas, "HorizontalPodAutoscaler", profile.spec.hpa.name)
    else:
        hpa = next((h for h in hpas if h.get("spec", {}).get("scaleTargetRef", {}).get("kind") == target.kind.value
                    and h["spec"]["scaleTargetRef"].get("name") == target.name), None)
    if hpa is None:
        return None
    spec = hpa.get("spec", {})
    status = hpa.get("status", {}) or {}
    behavior = spec.get("behavior", {}) or {}
    min_replicas = int(spec.get("minReplicas", 1))
    current = int(status.get("currentReplicas", min_replicas))
    return HpaLive(
        name=hpa["metadata"]["name"],
        min_replicas=min_replicas,
        max_replicas=int(spec["maxReplicas"]),
        current_replicas=current,
        desired_replicas=int(status.get("desiredReplicas", current)),
        cpu_target_percent=_utilisation_target(hpa, "cpu"),
        memory_target_percent=_utilisation_target(hpa, "memory"),
        scale_up=_scaling_rules(behavior.get("scaleUp")),
        scale_down=_scaling_rules(behavior.get("scaleDown")),
    )


def parse_pgbouncer_ini(text: str, *, database: str) -> PoolLive:
    """Pool sizes from pgbouncer.ini; a ``pool_size=`` on the database's line overrides ``default_pool_size``."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    section = parser["pgbouncer"] if parser.has_section("pgbouncer") else {}
    pool_size = int(section.get("default_pool_size", PGBOUNCER_DEFAULT_POOL_SIZE))
    reserve = int(section.get("reserve_pool_size", PGBOUNCER_DEFAULT_RESERVE_POOL_SIZE))
    if parser.has_section("databases") and parser.has_option("databases", database):
        for part in parser.get("databases", database).split():
            key, _, value = part.partition("=")
            if key == "pool_size":
                pool_size = int(value)
            elif key == "reserve_pool":
                reserve = int(value)
    return PoolLive(default_pool_size=pool_size, reserve_pool_size=reserve)


def _replicas_mounting(objects: Iterable[Mapping[str, Any]], config_map: str) -> int:
    """Replicas of the pgBouncer workload that mounts the ConfigMap: each runs a pool of its own. 1 if none."""
    for workload in objects:
        if workload.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        volumes = workload.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", []) or []
        if any((volume.get("configMap") or {}).get("name") == config_map for volume in volumes):
            return int(workload["spec"].get("replicas", 1))
    return 1


def pool_of(objects: Iterable[Mapping[str, Any]], profile: PerformanceProfile) -> PoolLive | None:
    pgbouncer = profile.spec.pool.pgbouncer
    if not profile.spec.pool.enabled or pgbouncer is None:
        return None
    if pgbouncer.config_map_ref is not None:
        config_map = _find(objects, "ConfigMap", pgbouncer.config_map_ref.name)
        if config_map is None:
            return None
        ini = (config_map.get("data") or {}).get(pgbouncer.config_map_ref.key)
        if ini is None:
            raise WorkloadSpecError(
                f"ConfigMap {pgbouncer.config_map_ref.name} has no key {pgbouncer.config_map_ref.key!r}"
            )
        pool = parse_pgbouncer_ini(ini, database=pgbouncer.database)
        replicas = _replicas_mounting(objects, pgbouncer.config_map_ref.name)
        return PoolLive(pool.default_pool_size, pool.reserve_pool_size, pooler_replicas=replicas)
    if pgbouncer.pooler_ref is not None:
        pooler = _find(objects, "Pooler", pgbouncer.pooler_ref.name)
        if pooler is None:
            return None
        spec = pooler.get("spec", {})
        parameters = (spec.get("pgbouncer") or {}).get("parameters") or {}
        return PoolLive(
            default_pool_size=int(parameters.get("default_pool_size", PGBOUNCER_DEFAULT_POOL_SIZE)),
            reserve_pool_size=int(parameters.get("reserve_pool_size", PGBOUNCER_DEFAULT_RESERVE_POOL_SIZE)),
            pooler_replicas=int(spec.get("instances", 1)),
        )
    return None


def rollout_in_progress(workload: Mapping[str, Any]) -> bool:
    """Whether the Deployment/StatefulSet has not finished rolling out, from its status.

    In progress when the controller has not seen the latest spec (``observedGeneration < generation``) or
    fewer pods than wanted run the latest template (``updatedReplicas``) or are available
    (``availableReplicas``; a StatefulSet without it: ``readyReplicas``). No status at all: not known to
    roll out (a manifest written by hand).
    """
    status = workload.get("status") or {}
    if not status:
        return False
    generation = workload.get("metadata", {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and int(observed) < int(generation):
        return True
    wanted = int((workload.get("spec") or {}).get("replicas", status.get("replicas", 1)))
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", status.get("readyReplicas", 0)))
    return updated < wanted or available < wanted


def live_config_from_manifests(documents: Iterable[Any], profile: PerformanceProfile) -> LiveConfig:
    """The ``LiveConfig`` of ``profile``'s workload from its manifests; raises ``WorkloadSpecError``."""
    objects = flatten(documents)
    target = profile.spec.target_ref
    workload = _find(objects, target.kind.value, target.name)
    if workload is None:
        raise WorkloadSpecError(f"no {target.kind.value} named {target.name} among the manifests")
    annotations = workload.get("metadata", {}).get("annotations") or {}
    paused = profile.paused or str(annotations.get(PAUSED_ANNOTATION, "")).lower() == "true"
    return LiveConfig(
        hpa=hpa_of(objects, profile),
        containers=containers_of(workload),
        pool=pool_of(objects, profile),
        paused=paused,
        rollout_in_progress=rollout_in_progress(workload),
    )


def live_config_without_manifests(profile: PerformanceProfile) -> LiveConfig:
    """No manifests given: nothing is known about requests, the HPA or the pool (the engine says what it needs)."""
    return LiveConfig(hpa=None, containers=(), pool=None, paused=profile.paused)
