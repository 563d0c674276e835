"""One evaluation of every due profile: observe -> classify -> decide -> apply -> status (DESIGN section 3).

Every profile due in a tick shares one Prometheus snapshot per server (``fetch_observations``), so the number
of queries does not grow with the number of profiles. Writes follow the contract of ``tuning.state``: the
state that records a change is saved before the change is written (a crash in between leaves the change
Pending, and the next evaluation finds out from the live values what was written); a rollback is written
before its verdict is saved. Before each write the object is read again, and the value is written only if it
is still the one the decision moved from: a value someone else changed since is theirs, and the change is
not written (``Conflict``). The patch itself carries the object's resourceVersion, so nothing changed in
between is overwritten either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from perfpilot.actuate.kube import KubeApi, KubeError
from perfpilot.actuate.patches import PatchError, compute_edit_patch
from perfpilot.api.quantities import parse_duration_seconds
from perfpilot.api.spec import KIND, Mode, PerformanceProfile
from perfpilot.api.status import (
    Condition,
    Edit,
    PerformanceProfileStatus,
    Phase,
    TuningState,
    parse_tuning_state,
)
from perfpilot.api.validate import prune_null_fields, validate_profile
from perfpilot.control.status import (
    ConditionUpdate,
    compute_evaluated_status,
    compute_stopped_status,
)
from perfpilot.observe.observed import observed_status
from perfpilot.observe.reader import PrometheusSettings
from perfpilot.observe.snapshot import CycleObservations, ProfileTarget, fetch_observations, unreachable_reason
from perfpilot.observe.workload import WorkloadSpecError, live_config_from_manifests
from perfpilot.tuning.decision import Decision, ProposedChange
from perfpilot.tuning.engine import decide
from perfpilot.tuning.observations import LiveConfig, Observations
from perfpilot.tuning.state import compute_next_state
from perfpilot.tuning.values import compute_live_value, values_equal

DEFAULT_INTERVAL = "60s"


@dataclass(frozen=True)
class ProfileOutcome:
    """What one evaluation of one profile did (for logs, metrics and tests)."""

    namespace: str
    name: str
    phase: Phase
    decision: Decision | None = None
    written: bool = False
    problem: str = ""  # why it was not evaluated, or why its change was not written


@dataclass
class _Profile:
    raw: Mapping[str, Any]
    profile: PerformanceProfile
    previous: PerformanceProfileStatus
    state: TuningState
    live: LiveConfig | None = None
    outcome: ProfileOutcome | None = None
    updates: list[ConditionUpdate] = field(default_factory=list)


def _metadata(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = raw.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _generation(raw: Mapping[str, Any]) -> int | None:
    generation = _metadata(raw).get("generation")
    return generation if isinstance(generation, int) else None


def parse_previous_status(raw: Mapping[str, Any]) -> tuple[PerformanceProfileStatus, TuningState]:
    """The status as last written, and its state machine; what cannot be read starts afresh (a status
    someone else wrote over cannot stop the profile from being evaluated)."""
    status = raw.get("status")
    status = status if isinstance(status, Mapping) else {}
    state = parse_tuning_state(status) or TuningState()
    conditions: list[Condition] = []
    for item in status.get("conditions") or []:
        try:
            conditions.append(Condition.model_validate(item))
        except ValidationError:
            continue
    previous = PerformanceProfileStatus(**state.model_dump(by_alias=False), conditions=conditions)
    return previous, state


def is_due(raw: Mapping[str, Any], *, now: datetime) -> bool:
    """Whether the profile's ``interval`` has passed since its last evaluation (``status.observed.at``), or
    its spec changed since (a new generation is evaluated at once)."""
    status = raw.get("status")
    status = status if isinstance(status, Mapping) else {}
    if status.get("observedGeneration") != _generation(raw):
        return True
    observed = status.get("observed")
    at = observed.get("at") if isinstance(observed, Mapping) else None
    if not isinstance(at, str):
        return True
    try:
        last = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return True
    spec = raw.get("spec")
    guardrails = spec.get("guardrails") if isinstance(spec, Mapping) else None
    interval = guardrails.get("interval") if isinstance(guardrails, Mapping) else None
    try:
        seconds = float(parse_duration_seconds(interval if interval is not None else DEFAULT_INTERVAL))
    except ValueError:
        return True
    return now - last >= timedelta(seconds=seconds)


def _target_key(profile: PerformanceProfile) -> tuple[str, str, str]:
    ref = profile.spec.target_ref
    return profile.metadata.namespace, ref.kind.value, ref.name


def _created(raw: Mapping[str, Any]) -> tuple[str, str]:
    return str(_metadata(raw).get("creationTimestamp") or ""), str(_metadata(raw).get("name") or "")


def fetch_live_objects(kube: KubeApi, profile: PerformanceProfile) -> list[dict[str, Any]]:
    """The objects the profile's ``LiveConfig`` is read from: its workload, the namespace's HPAs, the
    workload's Pods (for OOMKilled terminations) and, with a pool, the pgBouncer ConfigMap or Pooler and the
    workloads that may mount it. Raises ``WorkloadSpecError`` when the workload is not there."""
    namespace = profile.metadata.namespace
    ref = profile.spec.target_ref
    workload = kube.fetch_object(ref.kind.value, namespace, ref.name)
    if workload is None:
        raise WorkloadSpecError(f"spec.targetRef: no {ref.kind.value} named {ref.name} in namespace {namespace}")
    workload = {**workload, "kind": ref.kind.value, "apiVersion": "apps/v1"}
    objects = [workload, *kube.fetch_objects("HorizontalPodAutoscaler", namespace),
               *kube.fetch_objects("Pod", namespace)]
    pgbouncer = profile.spec.pool.pgbouncer
    if profile.spec.pool.enabled and pgbouncer is not None:
        if pgbouncer.config_map_ref is not None:
            config_map = kube.fetch_object("ConfigMap", namespace, pgbouncer.config_map_ref.name)
            objects += [{**config_map, "kind": "ConfigMap", "apiVersion": "v1"}] if config_map else []
            # The pooler replicas sharing the server budget are the workloads mounting the ConfigMap.
            others = [o for kind in ("Deployment", "StatefulSet") for o in kube.fetch_objects(kind, namespace)]
            objects += [o for o in others if _metadata(o).get("name") != ref.name or o.get("kind") != ref.kind.value]
        elif pgbouncer.pooler_ref is not None:
            pooler = kube.fetch_object("Pooler", namespace, pgbouncer.pooler_ref.name)
            objects += [{**pooler, "kind": "Pooler", "apiVersion": "postgresql.cnpg.io/v1"}] if pooler else []
    return objects


def fetch_live_config(kube: KubeApi, profile: PerformanceProfile, *, now: datetime
                      ) -> tuple[LiveConfig, list[dict[str, Any]]]:
    objects = fetch_live_objects(kube, profile)
    return live_config_from_manifests(objects, profile, now=now), objects


def _find(objects: Iterable[Mapping[str, Any]], target: str) -> Mapping[str, Any] | None:
    kind, _, name = target.partition("/")
    return next((o for o in objects if o.get("kind") == kind and _metadata(o).get("name") == name), None)


class EditNotWritten(Exception):
    """An edit not written: the value moved since the decision, the object changed, or the API refused."""


def apply_edit(kube: KubeApi, profile: PerformanceProfile, edit: Edit, *, target: str, now: datetime) -> bool:
    """Write one edit if the live value is still the one it moves from; False when it was already there
    (a write repeated after a crash is a no-op). Raises ``EditNotWritten``."""
    try:
        live, objects = fetch_live_config(kube, profile, now=now)
    except (KubeError, WorkloadSpecError) as error:
        raise EditNotWritten(f"{target} not read again before writing: {error}") from error
    now_value = compute_live_value(edit.setting, profile=profile.spec, live=live)
    if values_equal(edit.setting, now_value, edit.to_value):
        return False
    if not values_equal(edit.setting, now_value, edit.from_value):
        raise EditNotWritten(f"{edit.setting.value} on {target} is no longer the value the decision moved from "
                          f"(someone else changed it): not written")
    obj = _find(objects, target)
    if obj is None:
        raise EditNotWritten(f"{target} is gone: not written")
    try:
        patch = compute_edit_patch(obj, edit, profile=profile.spec)
        kind, _, name = target.partition("/")
        kube.apply_json_patch(kind, profile.metadata.namespace, name, patch)
    except (PatchError, WorkloadSpecError) as error:
        raise EditNotWritten(f"{target}: {error}") from error
    except KubeError as error:
        why = "changed since it was read" if error.conflict else "refused"
        raise EditNotWritten(f"{target} {why}: {error}") from error
    return True


def _edits(change: ProposedChange) -> list[tuple[Edit, str]]:
    """Coupled edit first, then the main one (``ProposedChange``'s docstring says why)."""
    first = [(change.coupled, change.coupled_target or change.target)] if change.coupled is not None else []
    return [*first, (change.edit, change.target)]


def _save(kube: KubeApi, item: _Profile, status: PerformanceProfileStatus) -> Phase:
    meta = item.profile.metadata
    kube.apply_status(meta.namespace, meta.name, status.model_dump(by_alias=True, mode="json"))
    return status.phase


def _evaluate(kube: KubeApi, item: _Profile, observations: Observations, *, now: datetime,
              metrics: ConditionUpdate) -> ProfileOutcome:
    profile, state = item.profile, item.state
    decision = decide(profile.spec, observations, state, now)
    change = decision.change
    observed = observed_status(observations)
    meta = profile.metadata
    updates = [*item.updates, metrics]

    def status(next_state: TuningState, *, written: bool, problem: str = "") -> PerformanceProfileStatus:
        conflict = (ConditionUpdate("Conflict", "True", "WriteNotApplied", problem) if problem
                    else ConditionUpdate("Conflict", "False", "NoConflict"))
        return compute_evaluated_status(
            item.previous, spec=profile.spec, state=next_state, decision=decision, observed=observed,
            written=written, paused=observations.live.paused, conditions=[*updates, conflict],
            generation=_generation(item.raw), now=now)

    if change is None or not decision.apply:
        next_state = compute_next_state(state, decision=decision, observations=observations, now=now, applied=False)
        phase = _save(kube, item, status(next_state, written=False))
        return ProfileOutcome(meta.namespace, meta.name, phase, decision)

    problem = ""
    written_any = False
    if not change.rollback:
        # Saved first: a crash after the write leaves the change Pending, never an unrecorded step.
        recorded = compute_next_state(state, decision=decision, observations=observations, now=now, applied=True)
        phase = _save(kube, item, status(recorded, written=True))
        try:
            for edit, target in _edits(change):
                written_any = apply_edit(kube, profile, edit, target=target, now=now) or written_any
        except EditNotWritten as error:
            problem = str(error)
        if problem and not written_any:
            unrecorded = compute_next_state(state, decision=decision, observations=observations, now=now,
                                            applied=False)
            phase = _save(kube, item, status(unrecorded, written=False, problem=problem))
        elif problem:  # the coupled edit went in alone: the next evaluation finds and undoes it
            phase = _save(kube, item, status(recorded, written=True, problem=problem))
        else:
            kube.apply_event(item.raw, reason="Changed", message=f"{change.target} {change.edit.setting.value}: "
                             f"{change.reason}", warning=False, now=now)
        return ProfileOutcome(meta.namespace, meta.name, phase, decision, written=not problem, problem=problem)

    try:
        for edit, target in _edits(change):
            apply_edit(kube, profile, edit, target=target, now=now)
    except EditNotWritten as error:
        problem = str(error)
    next_state = compute_next_state(state, decision=decision, observations=observations, now=now,
                                    applied=not problem)
    phase = _save(kube, item, status(next_state, written=not problem, problem=problem))
    if not problem:
        kube.apply_event(item.raw, reason="RolledBack", message=f"{change.target} {change.edit.setting.value}: "
                         f"{change.reason}", warning=True, now=now)
    return ProfileOutcome(meta.namespace, meta.name, phase, decision, written=not problem, problem=problem)


def _stop(kube: KubeApi, item: _Profile, *, phase: Phase, reason: str, updates: list[ConditionUpdate],
          now: datetime) -> ProfileOutcome:
    status = compute_stopped_status(item.previous, phase=phase, conditions=[*item.updates, *updates],
                                    generation=_generation(item.raw), reason=reason, now=now)
    _save(kube, item, status)
    meta = item.profile.metadata
    return ProfileOutcome(meta.namespace, meta.name, phase, problem=reason)


def _metrics_condition(cycle: CycleObservations, profile: PerformanceProfile, url: str) -> ConditionUpdate:
    unreachable = cycle.unreachable.get(url)
    if unreachable is not None:
        return ConditionUpdate("MetricsAvailable", "False", "PrometheusUnreachable", unreachable_reason(unreachable))
    if url in cycle.without_result:
        return ConditionUpdate("MetricsAvailable", "False", "NoResult",
                               "; ".join(str(failure) for failure in cycle.without_result[url])[:1024])
    if not url:
        return ConditionUpdate("MetricsAvailable", "False", "NoPrometheusURL",
                               "no Prometheus URL: set spec.metrics.prometheusURL or the operator's --prometheus-url")
    return ConditionUpdate("MetricsAvailable", "True", "Read", f"read from {url}")


def _invalid(kube: KubeApi, raw: Mapping[str, Any], problems: Sequence[str], *, now: datetime) -> ProfileOutcome:
    """A spec the API server let through (no CEL on this cluster) that the models refuse: nothing is read
    or written but the status saying what is wrong."""
    meta = _metadata(raw)
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    previous, _ = parse_previous_status(raw)
    message = "; ".join(problems)
    status = compute_stopped_status(previous, phase=Phase.INVALID,
                                    conditions=[ConditionUpdate("SpecValid", "False", "Invalid", message)],
                                    generation=_generation(raw), reason=f"spec invalid: {message}", now=now)
    kube.apply_status(namespace, name, status.model_dump(by_alias=True, mode="json"))
    return ProfileOutcome(namespace, name, Phase.INVALID, problem=message)


def run_cycle(kube: KubeApi, profiles: Sequence[Mapping[str, Any]], *, now: datetime,
              settings: PrometheusSettings) -> list[ProfileOutcome]:
    """Evaluate ``profiles`` (as the API lists them) at ``now``; every one gets its status written."""
    outcomes: list[ProfileOutcome] = []
    items: list[_Profile] = []
    for raw in profiles:
        problems = validate_profile({**raw, "status": None, "kind": raw.get("kind", KIND)})
        if problems:
            outcomes.append(_invalid(kube, raw, [str(problem) for problem in problems], now=now))
            continue
        profile = PerformanceProfile.model_validate(prune_null_fields({**raw, "status": None}))
        previous, state = parse_previous_status(raw)
        items.append(_Profile(raw=raw, profile=profile, previous=previous, state=state,
                              updates=[ConditionUpdate("SpecValid", "True", "Valid")]))

    # Two profiles on one workload would fight: the older one is evaluated, the newer one waits.
    owners: dict[tuple[str, str, str], _Profile] = {}
    for item in sorted(items, key=lambda i: _created(i.raw)):
        owner = owners.setdefault(_target_key(item.profile), item)
        if owner is not item:
            reason = (f"{owner.profile.metadata.name} (older) already tunes "
                      f"{item.profile.spec.target_ref.kind.value}/{item.profile.spec.target_ref.name}")
            item.outcome = _stop(kube, item, phase=Phase.HOLDING, reason=reason,
                                 updates=[ConditionUpdate("Conflict", "True", "AnotherProfile", reason)], now=now)

    targets: list[ProfileTarget] = []
    for item in items:
        if item.outcome is not None:
            continue
        if item.profile.spec.mode is Mode.OFF:
            item.outcome = _stop(kube, item, phase=Phase.OFF, reason="Off: perfpilot neither recommends nor writes",
                                 updates=[], now=now)
            continue
        try:
            item.live, _ = fetch_live_config(kube, item.profile, now=now)
        except (KubeError, WorkloadSpecError) as error:
            item.outcome = _stop(kube, item, phase=Phase.HOLDING, reason=str(error),
                                 updates=[ConditionUpdate("TargetFound", "False", "NotRead", str(error))], now=now)
            continue
        item.updates.append(ConditionUpdate("TargetFound", "True", "Found"))
        targets.append(ProfileTarget(item.profile, item.live))

    cycle = fetch_observations(targets, at=now, settings=settings)
    for item in items:
        if item.outcome is None:
            profile = item.profile
            url = profile.spec.metrics.prometheus_url or settings.url
            observations = cycle[(profile.metadata.namespace, profile.metadata.name)]
            try:
                item.outcome = _evaluate(kube, item, observations, now=now,
                                         metrics=_metrics_condition(cycle, profile, url))
            except KubeError as error:  # its status not written: the next tick evaluates it again
                item.outcome = ProfileOutcome(profile.metadata.namespace, profile.metadata.name, Phase.OBSERVING,
                                              problem=f"status not written: {error}")
        outcomes.append(item.outcome)
    return outcomes
