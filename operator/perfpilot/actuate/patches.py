"""One Edit as an RFC 6902 JSON patch of the object it lives on (pure: the writer sends what this returns).

A JSON patch, not a merge or an apply, because it can carry its own precondition: the first operation sets
``metadata.resourceVersion`` to the one read, so a patch computed from an object someone changed since it was
read fails whole (the API server answers 409 Conflict) instead of overwriting their change; the next cycle
reads again. Each value is written at its own path (one metric's target, one container's resources, one ini
text), and the writer sends the patch with ``fieldManager=perfpilot``, so GitOps tools can tell perfpilot's
fields apart (Argo CD's ``ignoreDifferences.managedFieldsManagers``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from perfpilot.actuate.pgbouncer_ini import compute_pgbouncer_ini
from perfpilot.api.quantities import format_cpu_millicores, format_memory_bytes
from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import ContainerResources, Edit, PoolSize, ScalingRules, Setting

JsonPatch = list[dict[str, Any]]

_BEHAVIOUR_KEYS = {Setting.HPA_SCALE_UP: "scaleUp", Setting.HPA_SCALE_DOWN: "scaleDown"}
_TARGET_RESOURCES = {Setting.HPA_CPU_TARGET: "cpu", Setting.HPA_MEMORY_TARGET: "memory"}


class PatchError(ValueError):
    """The object does not hold the value the edit moves (its shape changed since the decision was made)."""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _kind_name(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')}/{_mapping(obj.get('metadata')).get('name')}"


def _precondition(obj: Mapping[str, Any]) -> JsonPatch:
    version = _mapping(obj.get("metadata")).get("resourceVersion")
    if not isinstance(version, str) or not version:
        raise PatchError(f"{_kind_name(obj)} has no metadata.resourceVersion to write against")
    # The patched object carries the resourceVersion read: the API server refuses it with 409 Conflict if the
    # object has changed since (its optimistic lock), where a failed "test" is a 422 like any invalid patch.
    return [{"op": "replace", "path": "/metadata/resourceVersion", "value": version}]


def _target_patch(hpa: Mapping[str, Any], resource: str, percent: int) -> JsonPatch:
    for index, raw in enumerate(_list(_mapping(hpa.get("spec")).get("metrics"))):
        metric = _mapping(raw)
        source = _mapping(metric.get("resource"))
        target = _mapping(source.get("target"))
        if metric.get("type") == "Resource" and source.get("name") == resource and target.get("type") == "Utilization":
            return [{"op": "replace", "path": f"/spec/metrics/{index}/resource/target/averageUtilization",
                     "value": percent}]
    raise PatchError(f"{_kind_name(hpa)} has no {resource} Utilization metric in spec.metrics to set to {percent}%")


def rules_json(rules: ScalingRules) -> dict[str, Any]:
    """Behaviour rules as autoscaling/v2 writes them (camelCase, unset fields left out)."""
    return rules.model_dump(mode="json", by_alias=True, exclude_none=True)


def _behaviour_patch(hpa: Mapping[str, Any], key: str, rules: ScalingRules | None) -> JsonPatch:
    behaviour = _mapping(hpa.get("spec")).get("behavior")
    if rules is None:  # back to Kubernetes' default for that direction
        if isinstance(behaviour, Mapping) and key in behaviour:
            return [{"op": "remove", "path": f"/spec/behavior/{key}"}]
        return []
    if not isinstance(behaviour, Mapping):
        return [{"op": "add", "path": "/spec/behavior", "value": {key: rules_json(rules)}}]
    return [{"op": "add", "path": f"/spec/behavior/{key}", "value": rules_json(rules)}]


def _set_quantity(section: dict[str, Any], resource: str, amount: int | None, *, cpu: bool) -> None:
    if amount is None:
        section.pop(resource, None)
    else:
        section[resource] = format_cpu_millicores(amount) if cpu else format_memory_bytes(amount)


def compute_container_resources(current: Mapping[str, Any], wanted: ContainerResources) -> dict[str, Any]:
    """A container's ``resources`` with its CPU and memory requests and limits set to ``wanted`` (None: unset),
    every other resource (ephemeral-storage, extended resources) and field (claims) kept."""
    resources = {key: value for key, value in current.items() if key not in ("requests", "limits")}
    requests = dict(_mapping(current.get("requests")))
    limits = dict(_mapping(current.get("limits")))
    _set_quantity(requests, "cpu", wanted.cpu_request_millicores, cpu=True)
    _set_quantity(limits, "cpu", wanted.cpu_limit_millicores, cpu=True)
    _set_quantity(requests, "memory", wanted.memory_request_bytes, cpu=False)
    _set_quantity(limits, "memory", wanted.memory_limit_bytes, cpu=False)
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def _resources_patch(workload: Mapping[str, Any], wanted: list[ContainerResources]) -> JsonPatch:
    pod_spec = _mapping(_mapping(_mapping(workload.get("spec")).get("template")).get("spec"))
    places = [(key, index, _mapping(raw)) for key in ("containers", "initContainers")
              for index, raw in enumerate(_list(pod_spec.get(key)))]
    patch: JsonPatch = []
    for container in wanted:
        found = next(((key, index, raw) for key, index, raw in places if raw.get("name") == container.name), None)
        if found is None:
            raise PatchError(f"{_kind_name(workload)} has no container {container.name} in its pod template")
        key, index, raw = found
        path = f"/spec/template/spec/{key}/{index}"
        new = compute_container_resources(_mapping(raw.get("resources")), container)
        # The name is tested too: the index is where the container was when read.
        patch += [{"op": "test", "path": f"{path}/name", "value": container.name},
                  {"op": "add", "path": f"{path}/resources", "value": new}]
    return patch


def _config_map_patch(config_map: Mapping[str, Any], pool: PoolSize, *, key: str, database: str) -> JsonPatch:
    text = _mapping(config_map.get("data")).get(key)
    if not isinstance(text, str):
        raise PatchError(f"{_kind_name(config_map)} has no data.{key} (the pgbouncer.ini) to edit")
    edited = compute_pgbouncer_ini(text, database=database, pool=pool, where=f"{_kind_name(config_map)}: data.{key}")
    # A ConfigMap key holds no "/" or "~" (the profile's key pattern), so it is a JSON pointer segment as it is.
    return [{"op": "replace", "path": f"/data/{key}", "value": edited}]


def _pooler_patch(pooler: Mapping[str, Any], pool: PoolSize) -> JsonPatch:
    settings = _mapping(_mapping(pooler.get("spec")).get("pgbouncer"))
    if not settings:
        raise PatchError(f"{_kind_name(pooler)} has no spec.pgbouncer")
    # CloudNativePG's parameters are strings (a map of string to string).
    sizes = {"default_pool_size": str(pool.default_pool_size), "reserve_pool_size": str(pool.reserve_pool_size)}
    if not isinstance(settings.get("parameters"), Mapping):
        return [{"op": "add", "path": "/spec/pgbouncer/parameters", "value": sizes}]
    return [{"op": "add", "path": f"/spec/pgbouncer/parameters/{name}", "value": value}
            for name, value in sizes.items()]


def _trigger_patch(scaled_object: Mapping[str, Any], resource: str, percent: int) -> JsonPatch:
    for index, raw in enumerate(_list(_mapping(scaled_object.get("spec")).get("triggers"))):
        trigger = _mapping(raw)
        metadata = _mapping(trigger.get("metadata"))
        # metricType is the field since KEDA 2.10; metadata.type the older spelling it still reads.
        utilisation = (trigger.get("metricType") or metadata.get("type")) == "Utilization"
        if trigger.get("type") == resource and utilisation:
            # KEDA's trigger metadata are strings.
            return [{"op": "add", "path": f"/spec/triggers/{index}/metadata/value", "value": str(percent)}]
    raise PatchError(f"{_kind_name(scaled_object)} has no {resource} Utilization trigger to set to {percent}%")


_ADVANCED_BEHAVIOUR = ("advanced", "horizontalPodAutoscalerConfig", "behavior")


def _advanced_behaviour_patch(scaled_object: Mapping[str, Any], key: str, rules: ScalingRules | None) -> JsonPatch:
    """``spec.advanced.horizontalPodAutoscalerConfig.behavior.<key>``, which KEDA copies into its HPA; the
    levels the ScaledObject lacks are added with it."""
    node, present = _mapping(scaled_object.get("spec")), 0
    for level in _ADVANCED_BEHAVIOUR:
        child = node.get(level)
        if not isinstance(child, Mapping):
            break
        node, present = child, present + 1
    if rules is None:
        whole = present == len(_ADVANCED_BEHAVIOUR) and key in node
        return [{"op": "remove", "path": "/spec/" + "/".join(_ADVANCED_BEHAVIOUR) + f"/{key}"}] if whole else []
    levels = [*_ADVANCED_BEHAVIOUR, key]
    value: Any = rules_json(rules)
    for level in reversed(levels[present + 1:]):
        value = {level: value}
    return [{"op": "add", "path": "/spec/" + "/".join(levels[:present + 1]), "value": value}]


# How an HPA setting is written to an object: its utilisation target, its behaviour, the path of maxReplicas.
_HpaWriters = tuple[Callable[[Mapping[str, Any], str, int], JsonPatch],
                    Callable[[Mapping[str, Any], str, ScalingRules | None], JsonPatch], str]
_ON_HPA: _HpaWriters = (_target_patch, _behaviour_patch, "/spec/maxReplicas")
_ON_SCALED_OBJECT: _HpaWriters = (_trigger_patch, _advanced_behaviour_patch, "/spec/maxReplicaCount")


def _hpa_setting_patch(obj: Mapping[str, Any], edit: Edit, writers: _HpaWriters) -> JsonPatch | None:
    """The patch of an HPA setting through ``writers``; None when ``edit`` moves no HPA setting."""
    value: Any = edit.to_value
    target, behaviour, max_replicas_path = writers
    if edit.setting in _TARGET_RESOURCES:
        if not isinstance(value, int):
            raise PatchError(f"{edit.setting.value}: no percent to write (got {value!r})")
        return target(obj, _TARGET_RESOURCES[edit.setting], value)
    if edit.setting in _BEHAVIOUR_KEYS:
        return behaviour(obj, _BEHAVIOUR_KEYS[edit.setting], value)
    if edit.setting is Setting.HPA_MAX_REPLICAS:
        return [{"op": "add", "path": max_replicas_path, "value": int(value)}]
    return None


def compute_scaled_object_patch(scaled_object: Mapping[str, Any], edit: Edit) -> JsonPatch:
    """The JSON patch that makes KEDA give the HPA it owns ``edit.to_value``: KEDA writes that HPA from the
    ScaledObject and undoes any change made to the HPA itself (DESIGN section 6)."""
    body = _hpa_setting_patch(scaled_object, edit, _ON_SCALED_OBJECT)
    if body is None:
        raise PatchError(f"{edit.setting.value} is not written through a ScaledObject")
    return _precondition(scaled_object) + body if body else []


def compute_edit_patch(obj: Mapping[str, Any], edit: Edit, *, profile: PerformanceProfileSpec) -> JsonPatch:
    """The JSON patch that sets ``edit.to_value`` on ``obj`` (the object as read), precondition first; raises
    ``PatchError`` when the object has no place for the value."""
    value: Any = edit.to_value
    body = _hpa_setting_patch(obj, edit, _ON_HPA)
    if body is None and edit.setting is Setting.RESOURCES:
        body = _resources_patch(obj, list(value or []))
    elif body is None:
        pgbouncer = profile.pool.pgbouncer
        if not isinstance(value, PoolSize) or pgbouncer is None:
            raise PatchError(f"{edit.setting.value}: no pool size or pgBouncer to write (got {value!r})")
        if obj.get("kind") == "Pooler":
            body = _pooler_patch(obj, value)
        else:
            ref = pgbouncer.config_map_ref
            body = _config_map_patch(obj, value, key=ref.key if ref is not None else "pgbouncer.ini",
                                     database=pgbouncer.database)
    return _precondition(obj) + body if body else []
