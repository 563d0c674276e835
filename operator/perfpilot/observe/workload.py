"""The live configuration (``LiveConfig``) from Kubernetes manifests, for ``perfpilot plan --workload-spec``.

The operator reads the same objects from the API server; ``plan`` reads them from YAML (``kubectl get
deploy,hpa,cm,pooler -o yaml`` output, a ``List`` or several documents). Requests and limits come from the
workload's pod template — never from kube-state-metrics. Parsing is pure: the caller reads the file.

Which objects count: the Deployment or StatefulSet named by ``spec.targetRef``; the HPA named by
``spec.hpa.name``, else the one whose ``scaleTargetRef`` is the target; the ConfigMap of
``pool.pgbouncer.configMapRef`` (its ``pgbouncer.ini``) or the CloudNativePG ``Pooler`` of ``poolerRef``;
the Pods the workload's ``spec.selector`` selects, for their OOMKilled terminations.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic import ValidationError

from perfpilot.api.quantities import CpuQuantity, MemoryQuantity
from perfpilot.api.spec import PAUSED_ANNOTATION, PerformanceProfile
from perfpilot.api.status import ContainerResources, ScalingRules
from perfpilot.observe.promql import DNS_LABEL
from perfpilot.tuning.observations import HpaLive, LiveConfig, PoolLive, Unknown

# pgBouncer's own defaults, used when the ini leaves them out.
PGBOUNCER_DEFAULT_POOL_SIZE = 20
PGBOUNCER_DEFAULT_RESERVE_POOL_SIZE = 0
PGBOUNCER_DEFAULT_LISTEN_PORT = 6432


class WorkloadSpecError(ValueError):
    """The manifests do not describe the profile's workload well enough; names the object, field and value."""


def flatten(documents: Iterable[Any]) -> list[dict[str, Any]]:
    """Objects from YAML documents, with ``kind: List`` expanded (``kubectl get -o yaml`` writes one)."""
    objects: list[dict[str, Any]] = []
    for document in documents:
        if not isinstance(document, dict):
            continue
        kind = document.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(document.get("items"), list):
            objects.extend(item for item in document["items"] if isinstance(item, dict))
        else:
            objects.append(document)
    return objects


# --- reading fields: every read names the object and the field path when the value is not usable -------


def _name_of(manifest: Mapping[str, Any]) -> str | None:
    metadata = manifest.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) else None


def _namespace_of(manifest: Mapping[str, Any]) -> str | None:
    metadata = manifest.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return namespace if isinstance(namespace, str) else None


def _where(manifest: Mapping[str, Any]) -> str:
    return f"{manifest.get('kind')}/{_name_of(manifest) or '?'}"


def _fail(where: str, path: str, problem: str) -> WorkloadSpecError:
    separator = " " if problem.startswith("is ") else ": "  # "spec.maxReplicas is required"
    return WorkloadSpecError(f"{where}: {path}{separator}{problem}")


def _got(value: object) -> str:
    return f"(got {value!r})"


def _mapping(where: str, path: str, value: object) -> Mapping[str, Any]:
    """An optional object: missing or null is empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(where, path, f"expected an object {_got(value)}")
    return value


def _list(where: str, path: str, value: object) -> list[Any]:
    """An optional list: missing or null is empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, path, f"expected a list {_got(value)}")
    return value


def _str(where: str, path: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(where, path, f"expected a string {_got(value)}")
    return value


def _int(where: str, path: str, value: object, *, minimum: int = 0) -> int | None:
    """An optional integer field: missing or null is None; a float, bool or string is refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, path, f"expected an integer {_got(value)}")
    if value < minimum:
        raise _fail(where, path, f"must be >= {minimum} {_got(value)}")
    return value


def _required_int(where: str, path: str, value: object, *, minimum: int = 0) -> int:
    found = _int(where, path, value, minimum=minimum)
    if found is None:
        raise _fail(where, path, "is required")
    return found


def _spec(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(_where(manifest), "spec", manifest.get("spec"))


def _status(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(_where(manifest), "status", manifest.get("status"))


def _find(objects: Iterable[Mapping[str, Any]], kind: str, name: str) -> Mapping[str, Any] | None:
    return next((o for o in objects if o.get("kind") == kind and _name_of(o) == name), None)


# --- the workload's containers --------------------------------------------------------------------------


def _quantity(where: str, path: str, raw: object, *, parse: Callable[[str], int]) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise _fail(where, path, f"expected a quantity such as 500m or 1Gi {_got(raw)}")
    try:
        return parse(str(raw))
    except ValueError as error:
        raise _fail(where, path, str(error)) from error


def _millicores(text: str) -> int:
    return CpuQuantity.parse(text).millicores


def _bytes(text: str) -> int:
    return MemoryQuantity.parse(text).bytes


def _pod_spec(workload: Mapping[str, Any]) -> Mapping[str, Any]:
    where = _where(workload)
    template = _mapping(where, "spec.template", _spec(workload).get("template"))
    return _mapping(where, "spec.template.spec", template.get("spec"))


def _sidecars(where: str, pod_spec: Mapping[str, Any]) -> list[tuple[str, int, Mapping[str, Any]]]:
    """The native sidecars, as (list path, index, container): init containers with ``restartPolicy: Always``,
    which run beside the others and whose requests count in the pod's (and so in the HPA's utilisation)."""
    path = "spec.template.spec.initContainers"
    found = []
    for index, raw in enumerate(_list(where, path, pod_spec.get("initContainers"))):
        container = _mapping(where, f"{path}[{index}]", raw)
        if _str(where, f"{path}[{index}].restartPolicy", container.get("restartPolicy")) == "Always":
            found.append((path, index, container))
    return found


def containers_of(workload: Mapping[str, Any]) -> tuple[ContainerResources, ...]:
    """Requests and limits of every container of the pod template, native sidecars included (an unset one
    is None, never 0)."""
    where = _where(workload)
    path = "spec.template.spec.containers"
    pod_spec = _pod_spec(workload)
    containers = _list(where, path, pod_spec.get("containers"))
    if not containers:
        raise _fail(where, path, "is required (at least one container)")
    pod_resources = _mapping(where, "spec.template.spec.resources", pod_spec.get("resources"))
    if pod_resources.get("requests") or pod_resources.get("limits"):
        # Pod-level resources (KEP-2837): the HPA's utilisation and the scheduler then use the pod's own
        # requests, which container request changes do not move.
        raise _fail(where, "spec.template.spec.resources", "pod-level requests and limits are not supported: "
                    "perfpilot sizes and couples the containers' own (move them to the containers) "
                    f"{_got(dict(pod_resources))}")
    found: list[ContainerResources] = []
    listed = [(path, index, raw) for index, raw in enumerate(containers)] + _sidecars(where, pod_spec)
    for list_path, index, raw in listed:
        container = _mapping(where, f"{list_path}[{index}]", raw)
        name = _str(where, f"{list_path}[{index}].name", container.get("name"))
        if not name:
            raise _fail(where, f"{list_path}[{index}].name", "is required")
        if not DNS_LABEL.fullmatch(name):
            # Kubernetes refuses such a name; the readers' container matcher relies on it.
            raise _fail(where, f"{list_path}[{index}].name", f"not a DNS-1123 label {_got(name)}")
        at = f"{list_path}[{name}].resources"
        resources = _mapping(where, at, container.get("resources"))
        requests = _mapping(where, f"{at}.requests", resources.get("requests"))
        limits = _mapping(where, f"{at}.limits", resources.get("limits"))
        cpu_limit = _quantity(where, f"{at}.limits.cpu", limits.get("cpu"), parse=_millicores)
        memory_limit = _quantity(where, f"{at}.limits.memory", limits.get("memory"), parse=_bytes)
        cpu_request = _quantity(where, f"{at}.requests.cpu", requests.get("cpu"), parse=_millicores)
        memory_request = _quantity(where, f"{at}.requests.memory", requests.get("memory"), parse=_bytes)
        found.append(ContainerResources(
            name=name,
            # A limit without a request is the request too: the API server stores the pods so.
            cpu_request_millicores=cpu_limit if cpu_request is None else cpu_request,
            cpu_limit_millicores=cpu_limit,
            memory_request_bytes=memory_limit if memory_request is None else memory_request,
            memory_limit_bytes=memory_limit,
        ))
    return tuple(found)


# --- the HPA ----------------------------------------------------------------------------------------------


_SCALING_RULES_KEYS = frozenset(field.alias or name for name, field in ScalingRules.model_fields.items())


def _scaling_rules(where: str, path: str, raw: object) -> ScalingRules | None:
    rules = _mapping(where, path, raw)
    if not rules:
        return None
    try:
        # Fields perfpilot does not tune (``tolerance``, Kubernetes 1.33+) are left out, not refused.
        return ScalingRules.model_validate({k: v for k, v in rules.items() if k in _SCALING_RULES_KEYS})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in d['loc']) or 'value'}: {d['msg']} {_got(d.get('input'))}"
            for d in error.errors(include_url=False)
        )
        raise _fail(where, path, problems) from error


# What the API server gives an HPA with no metrics (autoscaling/v2) or no CPU target (autoscaling/v1).
KUBERNETES_DEFAULT_CPU_TARGET_PERCENT = 80
V1_OTHER_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"


def _utilisation_target(hpa: Mapping[str, Any], resource: str, *, refuse_container_targets: bool) -> int | None:
    where = _where(hpa)
    spec = _spec(hpa)
    if resource == "cpu" and spec.get("targetCPUUtilizationPercentage") is not None:  # autoscaling/v1
        return _int(where, "spec.targetCPUUtilizationPercentage", spec.get("targetCPUUtilizationPercentage"),
                    minimum=1)
    metrics = _list(where, "spec.metrics", spec.get("metrics"))
    annotations = _mapping(where, "metadata.annotations", _mapping(where, "metadata", hpa.get("metadata"))
                           .get("annotations"))
    if not metrics and V1_OTHER_METRICS_ANNOTATION not in annotations:
        # The API server's defaulting, which kubectl get shows filled in but a hand-written manifest does not.
        # (autoscaling/v1 keeps an HPA's other metrics in an annotation: one on memory alone has no CPU target.)
        return KUBERNETES_DEFAULT_CPU_TARGET_PERCENT if resource == "cpu" else None
    found: int | None = None  # every metric is read: a ContainerResource one after it is refused all the same
    for index, raw in enumerate(metrics):
        path = f"spec.metrics[{index}]"
        metric = _mapping(where, path, raw)
        kind = _str(where, f"{path}.type", metric.get("type"))
        if kind == "ContainerResource" and refuse_container_targets:
            source = _mapping(where, f"{path}.containerResource", metric.get("containerResource"))
            if _str(where, f"{path}.containerResource.name", source.get("name")) == resource:
                # Its utilisation is one container's, which a pod-wide coupling of request and target would
                # get wrong: refused rather than read as "no target" (a cut would then scale the HPA out). A
                # profile that does not tune requests couples nothing, and reads it as no target.
                raise _fail(where, f"{path}.type", f"ContainerResource {resource} targets are not supported: "
                            f"perfpilot pairs request changes with a Resource {resource} target {_got(kind)}")
        if kind != "Resource":
            continue
        source = _mapping(where, f"{path}.resource", metric.get("resource"))
        if _str(where, f"{path}.resource.name", source.get("name")) != resource:
            continue
        target = _mapping(where, f"{path}.resource.target", source.get("target"))
        if _str(where, f"{path}.resource.target.type", target.get("type")) == "Utilization":
            percent = _int(where, f"{path}.resource.target.averageUtilization", target.get("averageUtilization"),
                           minimum=1)
            # The HPA takes the largest replica count its metrics ask for: of two targets on one resource, the
            # lower one decides.
            if percent is not None and (found is None or percent < found):
                found = percent
    return found


def _describe_ref(ref: object) -> str:
    if not isinstance(ref, Mapping):
        return "nothing (no spec.scaleTargetRef)"
    return f"{ref.get('kind', '?')}/{ref.get('name', '?')}"


def _scales(hpa: Mapping[str, Any], kind: str, name: str) -> bool:
    where = _where(hpa)
    ref = _mapping(where, "spec.scaleTargetRef", _spec(hpa).get("scaleTargetRef"))
    return (_str(where, "spec.scaleTargetRef.kind", ref.get("kind")) == kind
            and _str(where, "spec.scaleTargetRef.name", ref.get("name")) == name)


def _replicas_now(hpa: Mapping[str, Any], workload: Mapping[str, Any]) -> tuple[int, int]:
    """The HPA's current and desired replicas: its status, else the scale target's, never minReplicas.

    The HPA controller reads its current count from the target's scale subresource (``status.replicas`` of
    a Deployment or StatefulSet) and writes its desired count to the target's ``spec.replicas``; an HPA
    written by hand has no status, so those are read instead. The engine reads ``current_replicas`` from
    here (not from the pod-count signal), so when neither is in the manifests the count is unknown and
    that is an error rather than a guess.
    """
    where, target = _where(hpa), _where(workload)
    status = _status(hpa)
    current = _int(where, "status.currentReplicas", status.get("currentReplicas"))
    desired = _int(where, "status.desiredReplicas", status.get("desiredReplicas"))
    target_status = _int(target, "status.replicas", _status(workload).get("replicas"))
    target_spec = _int(target, "spec.replicas", _spec(workload).get("replicas"))
    current = next((n for n in (current, target_status, target_spec) if n is not None), None)
    desired = next((n for n in (desired, target_spec) if n is not None), None)
    if current is None or desired is None:
        missing = "status.currentReplicas" if current is None else "status.desiredReplicas"
        raise _fail(where, missing, f"is missing and {target} has no "
                    f"{'status.replicas or spec.replicas' if current is None else 'spec.replicas'}: the current "
                    "replica count is unknown (give the objects as kubectl get -o yaml prints them)")
    return current, desired


def hpa_of(objects: Iterable[Mapping[str, Any]], profile: PerformanceProfile,
           workload: Mapping[str, Any]) -> HpaLive | None:
    """The profile's HPA (``spec.hpa.name``, else the one scaling the target) as ``HpaLive``, or None."""
    target = profile.spec.target_ref
    hpas = [o for o in objects if o.get("kind") == "HorizontalPodAutoscaler"]
    scaling = [h for h in hpas if _scales(h, target.kind.value, target.name)]
    if len(scaling) > 1:
        # Two HPAs on one workload fight: Kubernetes marks each AmbiguousSelector and stops them scaling, so
        # neither sets the replica count, whichever spec.hpa.name names.
        names = ", ".join(_name_of(h) or "?" for h in scaling)
        raise WorkloadSpecError(f"{target.kind.value}/{target.name} is scaled by {len(scaling)} "
                                f"HorizontalPodAutoscalers ({names}), which Kubernetes stops scaling "
                                f"(AmbiguousSelector): keep one")
    if profile.spec.hpa.name:
        hpa = _find(hpas, "HorizontalPodAutoscaler", profile.spec.hpa.name)
        if hpa is None:
            raise WorkloadSpecError(f"spec.hpa.name {profile.spec.hpa.name}: no HorizontalPodAutoscaler of that name "
                                    f"among the manifests (add hpa to kubectl get)")
        if not any(h is hpa for h in scaling):
            # Its target moves with another workload's load: coupling this one's requests to it, or moving its
            # targets, would tune the wrong thing.
            ref = _spec(hpa).get("scaleTargetRef")
            raise WorkloadSpecError(f"spec.hpa.name {profile.spec.hpa.name}: that HorizontalPodAutoscaler scales "
                                    f"{_describe_ref(ref)}, not {target.kind.value}/{target.name}")
    else:
        hpa = scaling[0] if scaling else None
    if hpa is None:
        return None
    where = _where(hpa)
    spec = _spec(hpa)
    behavior = _mapping(where, "spec.behavior", spec.get("behavior"))
    min_replicas = _int(where, "spec.minReplicas", spec.get("minReplicas"), minimum=1)
    current, desired = _replicas_now(hpa, workload)
    return HpaLive(
        name=_name_of(hpa) or "",
        min_replicas=1 if min_replicas is None else min_replicas,  # the API server's default
        max_replicas=_required_int(where, "spec.maxReplicas", spec.get("maxReplicas"), minimum=1),
        current_replicas=current,
        desired_replicas=desired,
        cpu_target_percent=_utilisation_target(hpa, "cpu", refuse_container_targets=profile.spec.resources.enabled),
        memory_target_percent=_utilisation_target(hpa, "memory",
                                                  refuse_container_targets=profile.spec.resources.enabled),
        scale_up=_scaling_rules(where, "spec.behavior.scaleUp", behavior.get("scaleUp")),
        scale_down=_scaling_rules(where, "spec.behavior.scaleDown", behavior.get("scaleDown")),
    )


# --- the pool ---------------------------------------------------------------------------------------------


# A [pgbouncer] setting as pgBouncer reads it (cf_set_int: strtol base 0, the whole value): decimal, 0x hex,
# or octal after a leading 0, so "010" is 8 and "08" is refused. ASCII digits only (str.isdigit() takes '²').
_SETTING_INT = re.compile(r"\+?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
# pgBouncer keeps a size in a C int: past this it wraps (2147483648 becomes negative, 4294967306 becomes 10).
_INT_MAX = 2**31 - 1


def _ini_int(where: str, path: str, raw: object, *, default: int, base_prefixes: bool) -> int:
    """A pgBouncer pool size (text in the ini and in a Pooler's parameters): a whole number from 0 to
    2147483647. With ``base_prefixes`` (a [pgbouncer] setting, which a Pooler's parameters become), read as
    pgBouncer reads one; without (a [databases] line's ``pool_size``, which pgBouncer reads with atoi),
    decimal digits only: what atoi would read past (a sign, text after the number) is refused, not guessed."""
    if raw is None:
        return default
    text = str(raw).strip()
    if isinstance(raw, bool):
        raise _fail(where, path, f"expected a whole number {_got(raw)}")
    if base_prefixes:
        if not _SETTING_INT.fullmatch(text):
            raise _fail(where, path, f"expected a whole number (decimal, 0x hex or 0 octal, as pgBouncer reads "
                                     f"it) {_got(raw)}")
        digits = text.removeprefix("+")
        if digits[:2].lower() == "0x":
            value = int(digits, 16)
        else:
            value = int(digits, 8) if digits.startswith("0") else int(digits)
    elif re.fullmatch(r"[0-9]+", text):
        value = int(text)
    else:
        raise _fail(where, path, f"expected a whole number {_got(raw)}")
    if value > _INT_MAX:
        raise _fail(where, path, f"expected at most {_INT_MAX} (pgBouncer keeps a size in a C int) {_got(raw)}")
    return value


def _unquote(value: str) -> str:
    """A [databases] connection-string value as pgBouncer reads it: one in single quotes is its text ('' a quote)."""
    return value[1:-1].replace("''", "'") if len(value) >= 2 and value[0] == value[-1] == "'" else value


# "[name]", with a comment after it if any, as pgBouncer accepts.
_SECTION_HEADER = re.compile(r"\[([^\]]*)\]\s*(?:[;#].*)?")
# The next ``key=value`` of a [databases] connection string, read in order from where the last one ended:
# spaces around ``=``, a value in single quotes that may hold spaces ('' inside it is a quote), or a bare one
# up to the next space, as pgBouncer's own parser reads them. Only a space separates: a tab is part of the
# value before it, so "host=db<TAB>pool_size=7" sets no pool size (pgBouncer applies its default).
_CONNECTION_PARAMETER = re.compile(r" *([A-Za-z_][A-Za-z0-9_]*) *= *('(?:[^']|'')*'|[^ ']*)(?= |$)")


class ConnectionParameter(NamedTuple):
    """One ``key=value`` of a [databases] or [users] connection string, and where its value is in the string
    (so a writer can replace exactly that value)."""

    name: str  # as written
    value: str  # as written: a quoted one keeps its quotes (``_unquote`` reads it)
    value_at: int  # the index of the value's first character in the connection string


def connection_parameters(text: str, *, where: str) -> list[ConnectionParameter]:
    """A [databases] connection string's ``key=value`` pairs in order; anything else (an unclosed quote, a
    key pgBouncer would not take) is refused rather than searched past."""
    parameters: list[ConnectionParameter] = []
    at = 0
    while text[at:].strip(" "):
        match = _CONNECTION_PARAMETER.match(text, at)
        if match is None:
            raise WorkloadSpecError(f"{where}: not a key=value connection string from {text[at:].strip()!r} "
                                    f"(got {text!r})")
        parameters.append(ConnectionParameter(match.group(1), match.group(2), match.start(2)))
        at = match.end()
    return parameters


class IniLine(NamedTuple):
    """A line of pgbouncer.ini that pgBouncer reads (a [section] header or a setting; not a blank line or a
    comment), and where its value is in the line (so a writer can replace exactly that value)."""

    line_index: int  # in ``text.splitlines()``, from 0 (error messages count lines from 1)
    section: str  # the section a header starts, or the one a setting is in
    name: str | None  # a setting's name as written (stripped); None for a header
    value: str  # a setting's value, stripped; "" for a header
    value_at: int  # the index of the value's first character in the line; 0 for a header


def pgbouncer_ini_lines(text: str, *, where: str) -> list[IniLine]:
    """pgbouncer.ini's headers and settings in order, as pgBouncer reads them: comments start a line with
    ``;`` or ``#``, indented lines are lines like any other, a section header may carry a comment. Section
    and setting names are matched exactly, as pgBouncer matches them; one that differs from a name perfpilot
    reads only in case is refused, as pgBouncer refuses the file (``[PgBouncer]``, ``Default_Pool_Size``):
    the sizes read from it would not be the live ones. ``%include`` pulls in a file the manifests do not
    hold: refused."""
    lines: list[IniLine] = []
    current: str | None = None
    for index, raw in enumerate(text.splitlines()):
        number = index + 1
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("%include"):
            raise WorkloadSpecError(f"{where}: line {number}: the included file is not among the manifests, so the "
                                    f"pool sizes are unknown (got {line!r})")
        if line.startswith("["):
            header = _SECTION_HEADER.fullmatch(line)
            if header is None or not header.group(1).strip():
                raise WorkloadSpecError(f"{where}: line {number}: not a [section] header (got {line!r})")
            current = _exact_name(header.group(1).strip(), _SECTIONS, where=f"{where}: line {number}")
            lines.append(IniLine(index, current, None, "", 0))
            continue
        # Split the raw line, so value_at counts from its start: strip() took only whitespace off its ends,
        # which the stripped name and value lose either way.
        key, equals, value = raw.partition("=")
        if not equals or not key.strip():
            raise WorkloadSpecError(f"{where}: line {number}: expected name = value (got {line!r})")
        if current is None:
            raise WorkloadSpecError(f"{where}: line {number}: a setting before any [section] (got {line!r})")
        name = key.strip()
        if current not in ("databases", "users"):
            name = _exact_name(name, _POOL_SETTINGS, where=f"{where}: line {number}")
        value_at = len(key) + 1 + len(value) - len(value.lstrip())
        lines.append(IniLine(index, current, name, value.strip(), value_at))
    return lines


def _ini_sections(text: str, *, where: str) -> dict[str, dict[str, str]]:
    """pgbouncer.ini's sections as pgBouncer reads them (``pgbouncer_ini_lines``): [databases] names are matched
    exactly, a later setting wins, and a second [pgbouncer] section starts again from the defaults."""
    sections: dict[str, dict[str, str]] = {}
    for line in pgbouncer_ini_lines(text, where=where):
        if line.name is None:
            if line.section == "pgbouncer":
                # pgBouncer fills a settings section's defaults when it starts: given again, it starts afresh.
                sections[line.section] = {}
            sections.setdefault(line.section, {})
        else:
            sections[line.section][line.name] = line.value
    return sections


_SECTIONS = ("pgbouncer", "databases", "users", "peers")
_POOL_SETTINGS = ("default_pool_size", "reserve_pool_size", "max_db_connections", "max_user_connections")
_POOL_PARAMETERS = ("pool_size", "reserve_pool", "reserve_pool_size", "max_db_connections")
_USER_PARAMETERS = ("pool_size", "reserve_pool_size", "max_user_connections")


def _exact_name(name: str, known: tuple[str, ...], *, where: str) -> str:
    """``name`` as written; refused when it is one of ``known`` in other case, which pgBouncer does not read."""
    if name not in known and name.lower() in known:
        raise WorkloadSpecError(f"{where}: pgBouncer reads names as written and refuses {name!r} "
                                f"(it is not {name.lower()!r}): the pool sizes it holds are not the live ones")
    return name


def _section_pool(section: Mapping[str, str], *, where: str) -> tuple[int, int]:
    return (_ini_int(where, "[pgbouncer] default_pool_size", section.get("default_pool_size"),
                     default=PGBOUNCER_DEFAULT_POOL_SIZE, base_prefixes=True),
            _ini_int(where, "[pgbouncer] reserve_pool_size", section.get("reserve_pool_size"),
                     default=PGBOUNCER_DEFAULT_RESERVE_POOL_SIZE, base_prefixes=True))


def parse_pgbouncer_defaults(text: str, *, where: str = "pgbouncer.ini") -> PoolLive:
    """The [pgbouncer] section's ``default_pool_size`` and ``reserve_pool_size`` (pgBouncer's own defaults when
    not written): the sizes of every database whose line does not set its own."""
    size, reserve = _section_pool(_ini_sections(text, where=where).get("pgbouncer", {}), where=where)
    return PoolLive(default_pool_size=size, reserve_pool_size=reserve)


def pgbouncer_serves(text: str, *, database: str, where: str = "pgbouncer.ini") -> bool:
    """Whether pgBouncer has a pool for ``database`` at all: its own [databases] line, or the ``*`` line."""
    databases = _ini_sections(text, where=where).get("databases", {})
    return database in databases or "*" in databases


def parse_pgbouncer_ini(text: str, *, database: str, where: str = "pgbouncer.ini", size_max: int = 0) -> PoolLive:
    """Pool sizes from pgbouncer.ini, as pgBouncer applies them to ``database``.

    A ``pool_size=`` / ``reserve_pool_size=`` (``reserve_pool=`` before pgBouncer 1.24) on the database's line
    in ``[databases]`` (or, when the database has no line, on the ``*`` fallback line pgBouncer uses for it)
    overrides ``default_pool_size`` / ``reserve_pool_size``: the size reported is the one the pool really
    has. A ``pool_size`` set per user in ``[users]`` is refused (see below), and so is a cap on server
    connections below the pool size or ``size_max`` (the largest perfpilot may set, ``_check_connection_caps``).
    """
    sections = _ini_sections(text, where=where)
    section = sections.get("pgbouncer", {})
    pool_size, reserve = _section_pool(section, where=where)
    caps = {f"[pgbouncer] {name}": _ini_int(where, f"[pgbouncer] {name}", section.get(name), default=0,
                                            base_prefixes=True)
            for name in ("max_db_connections", "max_user_connections")}
    for user, settings in sections.get("users", {}).items():
        for written, value, _ in connection_parameters(settings, where=f"{where}: [users] {user}"):
            key = _exact_name(written, _USER_PARAMETERS, where=f"{where}: [users] {user}")
            if key in ("pool_size", "reserve_pool_size"):
                # pgBouncer sizes that user's pools by it, before the database line: a pool per user, which
                # perfpilot (one pool per database) would read and size wrong.
                raise WorkloadSpecError(f"{where}: [users] {user}: a per-user {key} is not supported: perfpilot "
                                        f"sizes the database's pool (got {settings!r})")
            if key == "max_user_connections":
                # Which user the application connects as is not in the manifests: every user's cap is checked
                # (a user's own replaces the [pgbouncer] one for that user only, so that one stays checked).
                caps[f"[users] {user} max_user_connections"] = _ini_int(
                    where, f"[users] {user} max_user_connections", _unquote(value), default=0, base_prefixes=False)
    databases = sections.get("databases", {})
    line = next((name for name in (database, "*") if name in databases), None)
    if line is not None:
        for written, value, _ in connection_parameters(databases[line], where=f"{where}: [databases] {line}"):
            key = _exact_name(written, _POOL_PARAMETERS, where=f"{where}: [databases] {line}")
            if key == "pool_size":
                pool_size = _ini_int(where, f"[databases] {line} pool_size", _unquote(value), default=pool_size,
                                     base_prefixes=False)
            elif key in ("reserve_pool", "reserve_pool_size"):  # 1.24 renamed it; the old name stays
                reserve = _ini_int(where, f"[databases] {line} {key}", _unquote(value), default=reserve,
                                   base_prefixes=False)
            elif key == "max_db_connections":
                own = _ini_int(where, f"[databases] {line} max_db_connections", _unquote(value), default=0,
                               base_prefixes=False)
                if own > 0:
                    # The database's own cap replaces the [pgbouncer] one for it; 0 falls back to that one, as
                    # pgBouncer's database_max_connections() reads it.
                    caps["[pgbouncer] max_db_connections"] = 0
                    caps[f"[databases] {line} max_db_connections"] = own
    _check_connection_caps(caps, pool_size=max(pool_size, size_max), where=where)
    return PoolLive(default_pool_size=pool_size, reserve_pool_size=reserve)


def _check_connection_caps(caps: Mapping[str, int], *, pool_size: int, where: str) -> None:
    """Refuses a cap on server connections (``max_db_connections``, ``max_user_connections``; 0 is none) below
    ``pool_size`` (the larger of the live size and the most perfpilot may set): the pool never opens more than
    the cap, so its size is not what binds, its use read against it looks low, and a grow changes nothing."""
    for name, cap in caps.items():
        if 0 < cap < pool_size:
            raise WorkloadSpecError(f"{where}: {name} = {cap} caps the pool under {pool_size} (its size, or "
                                    f"spec.pool.size.max if larger): perfpilot tunes the pool size, which the cap "
                                    f"overrides (raise the cap to spec.pool.size.max, or remove it)")


def _mounted_config_maps(where: str, volume: Mapping[str, Any], path: str) -> list[str | None]:
    """The ConfigMaps a volume mounts: its ``configMap``, or those among a ``projected`` volume's sources."""
    names = [_str(where, f"{path}.configMap.name", _mapping(where, f"{path}.configMap", volume.get("configMap"))
                  .get("name"))]
    projected = _mapping(where, f"{path}.projected", volume.get("projected"))
    for index, raw in enumerate(_list(where, f"{path}.projected.sources", projected.get("sources"))):
        source = _mapping(where, f"{path}.projected.sources[{index}]", raw)
        config_map = _mapping(where, f"{path}.projected.sources[{index}].configMap", source.get("configMap"))
        names.append(_str(where, f"{path}.projected.sources[{index}].configMap.name", config_map.get("name")))
    return names


def pgbouncer_listen_port(text: str, *, where: str = "pgbouncer.ini") -> int:
    """The port pgBouncer listens on (``listen_port`` of the [pgbouncer] section pgBouncer applies), where its
    admin console is reached."""
    section = _ini_sections(text, where=where).get("pgbouncer", {})
    raw = section.get("listen_port")
    port = _ini_int(where, "[pgbouncer] listen_port", raw, default=PGBOUNCER_DEFAULT_LISTEN_PORT,
                    base_prefixes=True)
    if not 1 <= port <= 65535:
        raise _fail(where, "[pgbouncer] listen_port", f"expected a port from 1 to 65535 {_got(raw)}")
    return port


class PoolerPod(NamedTuple):
    """A running pgBouncer replica, by the address its admin console is reached at."""

    name: str
    ip: str
    # False when the ini is mounted only with subPath, which the kubelet never updates: a RELOAD there reads
    # the file the Pod started with.
    file_follows: bool = True


def _ready(where: str, pod: Mapping[str, Any]) -> bool:
    conditions = _list(where, "status.conditions", _status(pod).get("conditions"))
    return any(isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _file_follows(where: str, pod: Mapping[str, Any], volumes: set[str]) -> bool:
    """Whether some container mounts one of ``volumes`` whole (a folder the kubelet keeps in step with the
    ConfigMap), rather than only with subPath (a file it never updates). Which container is pgBouncer is not
    known: one whole mount is taken to be its."""
    spec = _spec(pod)
    containers = [*_list(where, "spec.initContainers", spec.get("initContainers")),
                  *_list(where, "spec.containers", spec.get("containers"))]
    mounts = [mount for container in containers if isinstance(container, Mapping)
              for mount in _list(where, "volumeMounts", container.get("volumeMounts"))
              if isinstance(mount, Mapping) and mount.get("name") in volumes]
    return not mounts or any(not (mount.get("subPath") or mount.get("subPathExpr")) for mount in mounts)


def pooler_pods(objects: Iterable[Mapping[str, Any]], config_map: str) -> list[PoolerPod]:
    """The Ready Pods that mount ``config_map`` (each a pgBouncer with a pool of its own), by name. A Pod
    being deleted, not Running or not Ready (a pgBouncer starting, which reads the ConfigMap as it starts), or
    without an IP is left out."""
    pods: list[PoolerPod] = []
    for pod in objects:
        if pod.get("kind") != "Pod":
            continue
        where = _where(pod)
        metadata = _mapping(where, "metadata", pod.get("metadata"))
        status = _status(pod)
        ip = _str(where, "status.podIP", status.get("podIP"))
        if metadata.get("deletionTimestamp") or status.get("phase") != "Running" or not ip or not _ready(where, pod):
            continue
        volumes = _list(where, "spec.volumes", _spec(pod).get("volumes"))
        mounting = {str(_mapping(where, f"spec.volumes[{index}]", raw).get("name"))
                    for index, raw in enumerate(volumes)
                    if config_map in _mounted_config_maps(where, _mapping(where, f"spec.volumes[{index}]", raw),
                                                          f"spec.volumes[{index}]")}
        if mounting:
            pods.append(PoolerPod(name=_name_of(pod) or "?", ip=ip, file_follows=_file_follows(where, pod, mounting)))
    return sorted(pods)


def _most_replicas(objects: Iterable[Mapping[str, Any]], *, kind: str, name: str, replicas: int) -> int:
    """``replicas``, or the maxReplicas of an HPA scaling ``kind/name`` when larger: a pooler scaled out runs
    that many pools, each opening its own server connections, so the budget is checked at its most."""
    for hpa in objects:
        if hpa.get("kind") == "HorizontalPodAutoscaler" and _scales(hpa, kind, name):
            most = _required_int(_where(hpa), "spec.maxReplicas", _spec(hpa).get("maxReplicas"), minimum=1)
            replicas = max(replicas, most)
    return replicas


def _workloads_mounting(objects: Iterable[Mapping[str, Any]], config_map: str) -> list[Mapping[str, Any]]:
    """The Deployments and StatefulSets whose pods mount the ConfigMap (its pgBouncers), in the order given."""
    mounting = []
    for workload in objects:
        if workload.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        where = _where(workload)
        volumes = _list(where, "spec.template.spec.volumes", _pod_spec(workload).get("volumes"))
        if any(config_map in _mounted_config_maps(where, _mapping(where, f"spec.template.spec.volumes[{index}]", raw),
                                                  f"spec.template.spec.volumes[{index}]")
               for index, raw in enumerate(volumes)):
            mounting.append(workload)
    return mounting


def _replicas_mounting(objects: Iterable[Mapping[str, Any]], config_map: str) -> int:
    """Replicas of the pgBouncer workload that mounts the ConfigMap (at most, when an HPA scales it): each runs
    a pool of its own. Not guessed when no workload among the manifests mounts it: the server-connection
    budget multiplies by it."""
    objects = list(objects)
    for workload in _workloads_mounting(objects, config_map)[:1]:
        replicas = _int(_where(workload), "spec.replicas", _spec(workload).get("replicas"))
        return _most_replicas(objects, kind=str(workload.get("kind")), name=_name_of(workload) or "",
                              replicas=1 if replicas is None else replicas)  # 1: the API server's default
    raise WorkloadSpecError(f"spec.pool.pgbouncer.configMapRef.name {config_map}: no Deployment or StatefulSet among "
                            f"the manifests mounts that ConfigMap, so how many pgBouncer replicas run a pool of their "
                            f"own is unknown (add the pgBouncer workload to kubectl get)")


def pool_of(objects: Iterable[Mapping[str, Any]], profile: PerformanceProfile) -> PoolLive | None:
    pgbouncer = profile.spec.pool.pgbouncer
    if not profile.spec.pool.enabled or pgbouncer is None:
        return None
    if pgbouncer.config_map_ref is not None:
        ref = pgbouncer.config_map_ref
        config_map = _find(objects, "ConfigMap", ref.name)
        if config_map is None:
            raise WorkloadSpecError(f"spec.pool.pgbouncer.configMapRef.name {ref.name}: no ConfigMap of that name "
                                    f"among the manifests (add configmap to kubectl get)")
        where = _where(config_map)
        data = _mapping(where, "data", config_map.get("data"))
        ini = _str(where, f"data.{ref.key}", data.get(ref.key))
        if ini is None:
            raise _fail(where, f"data.{ref.key}", "is required (the pgbouncer.ini named by configMapRef.key)")
        pool = parse_pgbouncer_ini(ini, database=pgbouncer.database, where=f"{where}: data.{ref.key}",
                                   size_max=profile.spec.pool.size.max)
        objects = list(objects)
        replicas = _replicas_mounting(objects, ref.name)
        mounting = tuple(_name_of(workload) or "" for workload in _workloads_mounting(objects, ref.name))
        return PoolLive(pool.default_pool_size, pool.reserve_pool_size, pooler_replicas=replicas,
                        pooler_workloads=mounting)
    if pgbouncer.pooler_ref is not None:
        pooler = _find(objects, "Pooler", pgbouncer.pooler_ref.name)
        if pooler is None:
            raise WorkloadSpecError(f"spec.pool.pgbouncer.poolerRef.name {pgbouncer.pooler_ref.name}: no Pooler of "
                                    f"that name among the manifests (add poolers.postgresql.cnpg.io to kubectl get)")
        where = _where(pooler)
        spec = _spec(pooler)
        settings = _mapping(where, "spec.pgbouncer", spec.get("pgbouncer"))
        parameters = _mapping(where, "spec.pgbouncer.parameters", settings.get("parameters"))
        instances = _int(where, "spec.instances", spec.get("instances"))
        # CloudNativePG writes the parameters into the [pgbouncer] section: read as pgBouncer reads them.
        pool_size = _ini_int(where, "spec.pgbouncer.parameters.default_pool_size",
                             parameters.get("default_pool_size"), default=PGBOUNCER_DEFAULT_POOL_SIZE,
                             base_prefixes=True)
        caps = {f"spec.pgbouncer.parameters.{name}": _ini_int(where, f"spec.pgbouncer.parameters.{name}",
                                                              parameters.get(name), default=0, base_prefixes=True)
                for name in ("max_db_connections", "max_user_connections")}
        _check_connection_caps(caps, pool_size=max(pool_size, profile.spec.pool.size.max), where=where)
        return PoolLive(
            default_pool_size=pool_size,
            reserve_pool_size=_ini_int(where, "spec.pgbouncer.parameters.reserve_pool_size",
                                       parameters.get("reserve_pool_size"),
                                       default=PGBOUNCER_DEFAULT_RESERVE_POOL_SIZE, base_prefixes=True),
            pooler_replicas=_most_replicas(objects, kind="Pooler", name=pgbouncer.pooler_ref.name,
                                           replicas=1 if instances is None else instances),  # CloudNativePG's default
        )
    return None


# --- the workload's state ---------------------------------------------------------------------------------


def _statefulset_update_strategy(workload: Mapping[str, Any]) -> tuple[bool, int]:
    """(whether ``updateStrategy`` is OnDelete, its ``rollingUpdate.partition``, 0 when unset) of a StatefulSet."""
    where = _where(workload)
    strategy = _mapping(where, "spec.updateStrategy", _spec(workload).get("updateStrategy"))
    if _str(where, "spec.updateStrategy.type", strategy.get("type")) == "OnDelete":
        return True, 0
    rolling = _mapping(where, "spec.updateStrategy.rollingUpdate", strategy.get("rollingUpdate"))
    return False, _int(where, "spec.updateStrategy.rollingUpdate.partition", rolling.get("partition")) or 0


def describe_template_held(workload: Mapping[str, Any]) -> str:
    """Why a new pod template would reach no pod by itself, and what would let it, or "": a StatefulSet with
    ``updateStrategy: OnDelete`` (its controller makes a pod anew from the new template only once someone
    deletes it), one whose ``partition`` is at or above its replicas (a deleted pod comes back on the old
    revision), or a paused Deployment (its old ReplicaSet replaces a deleted pod, on the old template)."""
    where = _where(workload)
    spec = _spec(workload)
    if workload.get("kind") == "Deployment":
        paused = spec.get("paused")
        if paused is not None and not isinstance(paused, bool):
            raise _fail(where, "spec.paused", f"expected a boolean {_got(paused)}")
        return ("the Deployment is paused (spec.paused): its pods take a new template only once the rollout is "
                "resumed (kubectl rollout resume)") if paused else ""
    if workload.get("kind") != "StatefulSet":
        return ""
    on_delete, partition = _statefulset_update_strategy(workload)
    if on_delete:
        return "the StatefulSet's updateStrategy is OnDelete: its pods take a new template only once deleted"
    replicas = _int(where, "spec.replicas", spec.get("replicas"))
    wanted = 1 if replicas is None else replicas  # the API server's default
    if 0 < wanted <= partition:
        return (f"the StatefulSet's rollingUpdate.partition {partition} is at or above its replicas {wanted}: no "
                f"pod takes a new template until the partition is lowered")
    return ""


def rollout_in_progress(workload: Mapping[str, Any]) -> bool:
    """Whether the Deployment/StatefulSet has not finished rolling out, from its status.

    In progress when the controller has not seen the latest spec (``observedGeneration < generation``), or
    fewer pods than wanted run the latest template (``updatedReplicas``), or pods of an older one remain
    (``replicas > updatedReplicas``), or the ``Progressing`` condition still says ``ReplicaSetUpdated`` (the
    last new pod coming up). Availability alone does not count: pods still starting after a scale-up, or one
    crash-looping after the rollout completed, are no rollout, and the memory raise that would end an OOM loop
    must not wait for that loop to end. A StatefulSet rolls out until its ``currentRevision`` is its
    ``updateRevision``, or, with a ``partition``, the pods at or above it; with ``updateStrategy: OnDelete``
    it never rolls out by itself.
    No status at all: not known to roll out (a manifest written by hand).
    """
    where = _where(workload)
    status = _status(workload)
    if not status:
        return False
    metadata = _mapping(where, "metadata", workload.get("metadata"))
    generation = _int(where, "metadata.generation", metadata.get("generation"))
    observed = _int(where, "status.observedGeneration", status.get("observedGeneration"))
    if generation is not None and observed is not None and observed < generation:
        return True
    replicas = _int(where, "status.replicas", status.get("replicas"))
    spec_replicas = _int(where, "spec.replicas", _spec(workload).get("replicas"))
    wanted = next((n for n in (spec_replicas, replicas) if n is not None), 1)
    if workload.get("kind") == "StatefulSet":
        on_delete, partition = _statefulset_update_strategy(workload)
        if on_delete:
            return False
        updated = _int(where, "status.updatedReplicas", status.get("updatedReplicas")) or 0
        if partition > 0:
            # Only the pods with an ordinal at or above the partition take the new template (the current revision
            # stays the old one for good).
            return updated < max(0, wanted - partition)
        current = _str(where, "status.currentRevision", status.get("currentRevision"))
        update = _str(where, "status.updateRevision", status.get("updateRevision"))
        if current and update:
            # The StatefulSet controller moves currentRevision to updateRevision once every pod runs the new
            # one and is ready: that is its rollout complete. A scale-up under OrderedReady (5 wanted, 3 updated, one
            # revision) is no rollout; the last updated pod coming up (3 of 3 updated, revisions apart) still is.
            return current != update
        return updated < (replicas if replicas is not None else wanted)
    updated = _int(where, "status.updatedReplicas", status.get("updatedReplicas")) or 0  # absent: none yet
    if updated < wanted or (replicas or 0) > updated:
        return True
    # The counts are done, but the controller still reports the new ReplicaSet coming up (its last pod not yet
    # available): the rollout's tail, as kubectl rollout status waits for it. Once it reported the rollout
    # complete (NewReplicaSetAvailable), a pod that becomes unavailable later is no rollout.
    return _progressing_reason(workload) == "ReplicaSetUpdated"


def _progressing_reason(workload: Mapping[str, Any]) -> str | None:
    where = _where(workload)
    for index, raw in enumerate(_list(where, "status.conditions", _status(workload).get("conditions"))):
        condition = _mapping(where, f"status.conditions[{index}]", raw)
        if condition.get("type") == "Progressing":
            return _str(where, f"status.conditions[{index}].reason", condition.get("reason"))
    return None


def _selects(where: str, selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions, as a Deployment's ``spec.selector``)
    selects ``labels``."""
    match_labels = _mapping(where, "spec.selector.matchLabels", selector.get("matchLabels"))
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    for index, raw in enumerate(_list(where, "spec.selector.matchExpressions", selector.get("matchExpressions"))):
        path = f"spec.selector.matchExpressions[{index}]"
        expression = _mapping(where, path, raw)
        key = _str(where, f"{path}.key", expression.get("key"))
        if key is None:
            raise _fail(where, f"{path}.key", "is required")
        operator = _str(where, f"{path}.operator", expression.get("operator"))
        values = _list(where, f"{path}.values", expression.get("values"))
        present = key in labels
        if operator == "In":
            matched = present and labels[key] in values
        elif operator == "NotIn":
            matched = not present or labels[key] not in values
        elif operator == "Exists":
            matched = present
        elif operator == "DoesNotExist":
            matched = not present
        else:
            raise _fail(where, f"{path}.operator", f"not In, NotIn, Exists or DoesNotExist {_got(operator)}")
        if not matched:
            return False
    return True


def _finished_at(where: str, path: str, terminated: Mapping[str, Any]) -> datetime | None:
    raw = terminated.get("finishedAt")
    if raw is None:
        return None
    finished: datetime | None = raw if isinstance(raw, datetime) else None  # YAML reads an unquoted time
    if isinstance(raw, str):
        try:
            finished = datetime.fromisoformat(raw.upper())  # RFC 3339 allows a lowercase t and z
        except ValueError:
            finished = None
    if finished is None or finished.tzinfo is None:  # RFC 3339 always carries its offset (Z from the API)
        raise _fail(where, f"{path}.finishedAt", f"not an RFC 3339 time {_got(raw)}")
    return finished


def _owned_by(pod: Mapping[str, Any], workload: Mapping[str, Any]) -> bool:
    """Whether the Pod's controller is the workload (a StatefulSet) or one of its ReplicaSets (a Deployment's
    are named ``<name>-<pod-template-hash>``): a canary whose labels the selector also matches is another
    workload's. A Pod written without ``ownerReferences`` is taken on its labels alone."""
    where = _where(pod)
    metadata = _mapping(where, "metadata", pod.get("metadata"))
    owners = [_mapping(where, f"metadata.ownerReferences[{index}]", raw)
              for index, raw in enumerate(_list(where, "metadata.ownerReferences", metadata.get("ownerReferences")))]
    controller = next((owner for owner in owners if owner.get("controller") is True), None)
    if controller is None:
        return True
    name = _name_of(workload) or ""
    if workload.get("kind") == "StatefulSet":
        return controller.get("kind") == "StatefulSet" and controller.get("name") == name
    owner_name = controller.get("name")
    labels = _mapping(where, "metadata.labels", metadata.get("labels"))
    template_hash = labels.get("pod-template-hash")
    if isinstance(template_hash, str) and template_hash:
        # The Deployment controller names its ReplicaSets <deployment>-<pod-template-hash>, and labels the pods.
        return controller.get("kind") == "ReplicaSet" and owner_name == f"{name}-{template_hash}"
    return (controller.get("kind") == "ReplicaSet" and isinstance(owner_name, str)
            and re.fullmatch(rf"{re.escape(name)}-[a-z0-9]+", owner_name) is not None)


def oom_kills_of(objects: Iterable[Mapping[str, Any]], workload: Mapping[str, Any], *, containers: Iterable[str],
                 namespace: str, since: datetime, until: datetime) -> dict[str, int] | Unknown:
    """OOMKilled terminations between ``since`` and ``until`` of each of the template's ``containers`` in the
    Pods ``workload`` selects in ``namespace`` (a Pod or workload written without one is taken to be in it).

    A container status shows its current state and the one before it, so a container killed several times
    counts once, and a kill followed by another termination, or in a pod since deleted, is not seen: enough
    to say "killed in the window" when it is, which is what the classification asks. An injected sidecar's
    kills are left out, as its usage is (``docs/metrics.md``). Without any Pod among the objects nothing is
    known; a workload that wants pods but has none among them, or a Pod without its status, is not known
    either.
    """
    where = _where(workload)
    pods = [o for o in objects if o.get("kind") == "Pod"]
    if not pods:
        return Unknown("no Pods among the manifests (add pods to kubectl get): OOMKilled terminations not read")
    selector = _mapping(where, "spec.selector", _spec(workload).get("selector"))
    if not selector:
        return Unknown(f"{where} has no spec.selector to find its Pods by: OOMKilled terminations not read")
    own = []
    for pod in pods:
        metadata = _mapping(_where(pod), "metadata", pod.get("metadata"))
        if metadata.get("namespace") not in (None, namespace):
            continue
        if (_selects(where, selector, _mapping(_where(pod), "metadata.labels", metadata.get("labels")))
                and _owned_by(pod, workload)):
            own.append(pod)
    wanted = _int(where, "spec.replicas", _spec(workload).get("replicas"))
    if not own and wanted != 0:
        return Unknown(f"no Pod of {where} among the manifests: OOMKilled terminations not read")
    kills = dict.fromkeys(containers, 0)
    for pod in own:
        pod_where = _where(pod)
        pod_status = _status(pod)
        if not pod_status:
            return Unknown(f"{pod_where} has no status: OOMKilled terminations not read")
        statuses = [(f"status.{key}[{index}]", raw)  # a native sidecar's status is among the init containers'
                    for key in ("containerStatuses", "initContainerStatuses")
                    for index, raw in enumerate(_list(pod_where, f"status.{key}", pod_status.get(key)))]
        for path, raw in statuses:
            status = _mapping(pod_where, path, raw)
            name = _str(pod_where, f"{path}.name", status.get("name"))
            if name not in kills:
                continue  # a sidecar injected at admission
            for state_key in ("state", "lastState"):
                state = _mapping(pod_where, f"{path}.{state_key}", status.get(state_key))
                terminated = _mapping(pod_where, f"{path}.{state_key}.terminated", state.get("terminated"))
                if terminated.get("reason") != "OOMKilled":
                    continue
                finished = _finished_at(pod_where, f"{path}.{state_key}.terminated", terminated)
                # No time: a kill still being reported is recent. After ``until``: not yet, at that time.
                if finished is None or since <= finished <= until:
                    kills[name] += 1
    return kills


def _paused(workload: Mapping[str, Any]) -> bool:
    where = _where(workload)
    metadata = _mapping(where, "metadata", workload.get("metadata"))
    annotations = _mapping(where, "metadata.annotations", metadata.get("annotations"))
    value = _str(where, f"metadata.annotations[{PAUSED_ANNOTATION}]", annotations.get(PAUSED_ANNOTATION))
    return (value or "").lower() == "true"


def live_config_from_manifests(documents: Iterable[Any], profile: PerformanceProfile, *,
                               now: datetime) -> LiveConfig:
    """The ``LiveConfig`` of ``profile``'s workload from its manifests at ``now`` (OOMKilled terminations
    count over ``guardrails.window`` before it); raises ``WorkloadSpecError``."""
    # kubectl get -A lists every namespace's objects: only the profile's (or those written without one) count.
    namespace = profile.metadata.namespace
    objects = [o for o in flatten(documents) if _namespace_of(o) in (None, namespace)]
    target = profile.spec.target_ref
    workload = _find(objects, target.kind.value, target.name)
    if workload is None:
        elsewhere = sorted({_namespace_of(o) or "" for o in flatten(documents)
                            if o.get("kind") == target.kind.value and _name_of(o) == target.name})
        where_else = f" (there is one in namespace {', '.join(elsewhere)})" if elsewhere else ""
        raise WorkloadSpecError(f"no {target.kind.value} named {target.name} in namespace {namespace} among the "
                                f"manifests{where_else}")
    containers = containers_of(workload)
    kills = oom_kills_of(
        objects, workload, containers=[c.name for c in containers], namespace=profile.metadata.namespace,
        since=now - timedelta(seconds=profile.spec.guardrails.window.seconds), until=now)
    return LiveConfig(
        hpa=hpa_of(objects, profile, workload),
        containers=containers,
        pool=pool_of(objects, profile),
        oom_kills_in_window=kills if isinstance(kills, Unknown) else sum(kills.values()),
        oom_kills_by_container=None if isinstance(kills, Unknown) else kills,
        paused=profile.paused or _paused(workload),
        rollout_in_progress=rollout_in_progress(workload),
        template_held_by=describe_template_held(workload),
    )


def live_config_without_manifests(profile: PerformanceProfile) -> LiveConfig:
    """No manifests given: nothing is known about requests, the HPA or the pool (the engine says what it needs)."""
    return LiveConfig(hpa=None, containers=(), pool=None, paused=profile.paused)
