"""One evaluation of every due profile: observe -> classify -> decide -> apply -> status (DESIGN section 3).

Every profile due in a tick shares one Prometheus snapshot per server (``fetch_observations``), so the number
of queries does not grow with the number of profiles. Writes follow the contract of ``tuning.state``: the
state that records a change is saved before the change is written (a crash in between leaves the change
Pending, and the next evaluation finds out from the live values what was written); a rollback is written
before its verdict is saved. Before each write the object is read again, and the value is written only if it
is still the one the decision moved from: a value someone else changed since is theirs, and the change is
not written (``Conflict``). The patch itself carries the object's resourceVersion, so nothing changed in
between is overwritten either.

A profile's failure is its own: whatever goes wrong with one (the API refusing its status, a bug met by its
odd spec) is logged and reported in its outcome, and the others are evaluated as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from pydantic import ValidationError

from perfpilot.actuate.kube import KubeApi, KubeError
from perfpilot.actuate.patches import PatchError, compute_edit_patch, compute_scaled_object_patch
from perfpilot.api.spec import KIND, Guardrails, Mode, PerformanceProfile
from perfpilot.api.status import (
    ClassificationStatus,
    Condition,
    Edit,
    ObservedStatus,
    PerformanceProfileStatus,
    Phase,
    TuningState,
    parse_tuning_state,
)
from perfpilot.api.urls import redact_url
from perfpilot.api.validate import prune_null_fields, validate_profile
from perfpilot.control.leader import LeadershipLost
from perfpilot.control.pooler_sync import apply_pooler_sync, compute_sync_off
from perfpilot.control.status import ConditionUpdate, compute_evaluated_status, compute_stopped_status
from perfpilot.observe.observed import observed_status
from perfpilot.observe.reader import PrometheusSettings
from perfpilot.observe.snapshot import CycleObservations, ProfileTarget, fetch_observations, unreachable_reason
from perfpilot.observe.workload import WorkloadSpecError, live_config_from_manifests
from perfpilot.tuning.decision import Decision, ProposedChange
from perfpilot.tuning.engine import decide
from perfpilot.tuning.observations import LiveConfig, Observations
from perfpilot.tuning.state import compute_next_state
from perfpilot.tuning.values import compute_live_value, values_equal

log = structlog.get_logger("perfpilot")

# An invalid profile has no interval of its own: it is looked at again as often as a default one.
DEFAULT_INTERVAL_SECONDS = float(Guardrails().interval.seconds)


@dataclass(frozen=True, kw_only=True)
class ProfileOutcome:
    """What one evaluation of one profile did (for logs, the liveness probe and tests)."""

    namespace: str
    name: str
    phase: Phase | None  # None: its status could not be written
    decision: Decision | None = None
    written: bool = False
    problem: str = ""  # why it was not evaluated, or why its change was not written
    pooler_synced: str = ""  # the PoolerSynced reason this evaluation found ("": no pooler synced)


@dataclass
class _Profile:
    raw: Mapping[str, Any]
    namespace: str
    name: str
    previous: PerformanceProfileStatus
    state: TuningState | None  # None: the status holds a state machine that cannot be read
    profile: PerformanceProfile | None = None  # None: the spec is invalid
    problems: list[str] = field(default_factory=list)
    live: LiveConfig | None = None
    outcome: ProfileOutcome | None = None
    updates: list[ConditionUpdate] = field(default_factory=list)


def _metadata(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = raw.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _status(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    status = raw.get("status")
    return status if isinstance(status, Mapping) else {}


def _generation(raw: Mapping[str, Any]) -> int | None:
    generation = _metadata(raw).get("generation")
    return generation if isinstance(generation, int) else None


def _parsed(model: type[Any], raw: object, default: Any) -> Any:
    try:
        return model.model_validate(raw) if raw is not None else default
    except ValidationError:
        return default


def parse_previous_status(raw: Mapping[str, Any]) -> tuple[PerformanceProfileStatus, TuningState | None]:
    """The status as last written, and its state machine (None when it holds one that cannot be read: a
    profile must not be tuned from a fresh state while a change of its may be pending). What else cannot be
    read (a condition someone wrote by hand) is left out."""
    status = _status(raw)
    try:
        previous = PerformanceProfileStatus.model_validate(status)
        return previous, TuningState.model_validate(previous.model_dump(include=set(TuningState.model_fields)))
    except ValidationError:
        pass
    state = parse_tuning_state(status)
    conditions = [found for found in (_parsed(Condition, item, None) for item in status.get("conditions") or [])
                  if found is not None]
    previous = PerformanceProfileStatus(
        **(state or TuningState()).model_dump(by_alias=False), conditions=conditions,
        observed=_parsed(ObservedStatus, status.get("observed"), ObservedStatus()),
        classification=_parsed(ClassificationStatus, status.get("classification"), ClassificationStatus()),
    )
    # When it was last looked at, read on its own: without it a held profile would be due at every tick.
    for key in ("observedGeneration", "lastEvaluatedAt"):
        try:
            previous = PerformanceProfileStatus.model_validate({**previous.model_dump(by_alias=True),
                                                                key: status.get(key)})
        except ValidationError:
            continue
    return previous, state


def decide_due(previous: PerformanceProfileStatus, *, generation: int | None, interval_seconds: float,
               now: datetime) -> bool:
    """Whether a profile is to be looked at now: never looked at, its spec changed since (a new generation is
    looked at at once), or its interval has passed since it last was."""
    if previous.observed_generation != generation or previous.last_evaluated_at is None:
        return True
    return now - previous.last_evaluated_at >= timedelta(seconds=interval_seconds)


def _created(item: _Profile) -> tuple[str, str]:
    return str(_metadata(item.raw).get("creationTimestamp") or ""), item.name


class TickReads:
    """The namespace lists of one tick, each read once however many profiles share the namespace (so the reads
    grow with the namespaces, not with profiles times namespace size). A write reads afresh instead."""

    def __init__(self, kube: KubeApi) -> None:
        self._kube = kube
        self._lists: dict[tuple[str, str | None], list[dict[str, Any]]] = {}

    def ensure_may_write(self) -> None:
        self._kube.ensure_may_write()

    def fetch_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._kube.fetch_object(kind, namespace, name)

    def fetch_objects(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        key = (kind, namespace)
        if key not in self._lists:
            self._lists[key] = self._kube.fetch_objects(kind, namespace)
        return self._lists[key]


def fetch_live_objects(kube: KubeApi | TickReads, profile: PerformanceProfile) -> list[dict[str, Any]]:
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


def fetch_live_config(kube: KubeApi | TickReads, profile: PerformanceProfile, *, now: datetime
                      ) -> tuple[LiveConfig, list[dict[str, Any]]]:
    objects = fetch_live_objects(kube, profile)
    return live_config_from_manifests(objects, profile, now=now), objects


def _find(objects: Iterable[Mapping[str, Any]], target: str) -> Mapping[str, Any] | None:
    kind, _, name = target.partition("/")
    return next((o for o in objects if o.get("kind") == kind and _metadata(o).get("name") == name), None)


def _keda_owner(obj: Mapping[str, Any]) -> str | None:
    owners = _metadata(obj).get("ownerReferences")
    for owner in owners if isinstance(owners, list) else []:
        if isinstance(owner, Mapping) and owner.get("kind") == "ScaledObject":
            return str(owner.get("name"))
    return None


class EditNotWritten(Exception):
    """An edit not written. ``sure`` says whether it is known to have changed nothing: False when the patch was
    sent and its answer lost or a server error (the API server may have applied it)."""

    def __init__(self, message: str, *, sure: bool = True) -> None:
        super().__init__(message)
        self.sure = sure


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
    kind, _, name = target.partition("/")
    try:
        scaled_object = _keda_owner(obj)
        if scaled_object is not None:
            # KEDA writes its HPA from the ScaledObject and would undo a change made to the HPA itself.
            owner = kube.fetch_object("ScaledObject", profile.metadata.namespace, scaled_object)
            if owner is None:
                raise EditNotWritten(f"{target} belongs to KEDA ScaledObject {scaled_object}, which is gone: "
                                     f"not written")
            kind, name, patch = "ScaledObject", scaled_object, compute_scaled_object_patch(owner, edit)
        else:
            patch = compute_edit_patch(obj, edit, profile=profile.spec)
        kube.apply_json_patch(kind, profile.metadata.namespace, name, patch)
    except (PatchError, WorkloadSpecError) as error:
        raise EditNotWritten(f"{target}: {error}") from error
    except KubeError as error:
        if error.conflict:
            raise EditNotWritten(f"{target} changed since it was read: {error}") from error
        # Refused (4xx), or never sent (no connection), it changed nothing; a lost answer or a 5xx may have.
        sure = 400 <= error.status < 500 or not error.sent
        why = "refused" if 400 <= error.status < 500 else "not sent" if not error.sent else "not known to be written"
        raise EditNotWritten(f"{target} {why}: {error}", sure=sure) from error
    return True


def _edits(change: ProposedChange) -> list[tuple[Edit, str]]:
    """Coupled edit first, then the main one (``ProposedChange``'s docstring says why)."""
    first = [(change.coupled, change.coupled_target or change.target)] if change.coupled is not None else []
    return [*first, (change.edit, change.target)]


# The status fields of the state machine, as the API holds them.
_STATE_KEYS = tuple(field.alias or name for name, field in TuningState.model_fields.items())


def _apply_status(kube: KubeApi, item: _Profile, status: PerformanceProfileStatus) -> Phase:
    written = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    if item.state is None:
        # A state that cannot be read is kept as it is, for a person to mend: the status is written whole.
        raw = _status(item.raw)
        written.update({key: raw[key] for key in _STATE_KEYS if key in raw})
    kube.apply_status(item.namespace, item.name, written)
    return status.phase


def _apply_event(kube: KubeApi, item: _Profile, *, reason: str, message: str, warning: bool, now: datetime) -> None:
    # The change and its status are written: an Event refused must not make them look unwritten.
    try:
        kube.apply_event(item.raw, reason=reason, message=message, warning=warning, now=now)
    except KubeError as error:
        log.warning("event not recorded", namespace=item.namespace, profile=item.name, reason=reason,
                    error=str(error))


@dataclass(frozen=True, kw_only=True)
class _Writes:
    """What writing a change's edits came to."""

    written_any: bool = False
    problem: str = ""
    sure: bool = True  # the problem is known to have left the objects as they were


def _apply_edits(kube: KubeApi, profile: PerformanceProfile, change: ProposedChange, *, now: datetime) -> _Writes:
    written_any = False
    for edit, target in _edits(change):
        try:
            written_any = apply_edit(kube, profile, edit, target=target, now=now) or written_any
        except EditNotWritten as error:
            return _Writes(written_any=written_any, problem=str(error), sure=error.sure)
    return _Writes(written_any=written_any)


def _apply_evaluation(kube: KubeApi, item: _Profile, observations: Observations, *, now: datetime,
                      metrics: ConditionUpdate, reads: TickReads) -> ProfileOutcome:
    profile, state = item.profile, item.state
    assert profile is not None and state is not None
    decision = decide(profile.spec, observations, state, now)
    change = decision.change
    observed = observed_status(observations)
    updates = [*item.updates, metrics]

    def status(next_state: TuningState, *, written: bool, problem: str = "") -> PerformanceProfileStatus:
        conflict = (ConditionUpdate(type="Conflict", status="True", reason="WriteNotApplied", message=problem)
                    if problem else ConditionUpdate(type="Conflict", status="False", reason="NoConflict"))
        return compute_evaluated_status(
            item.previous, spec=profile.spec, state=next_state, decision=decision, observed=observed,
            written=written, paused=observations.live.paused, conditions=[*updates, conflict],
            generation=_generation(item.raw), now=now)

    synced_reasons: list[str] = []

    def outcome(phase: Phase, *, written: bool = False, problem: str = "") -> ProfileOutcome:
        return ProfileOutcome(namespace=item.namespace, name=item.name, phase=phase, decision=decision,
                              written=written, problem=problem, pooler_synced="".join(synced_reasons))

    def next_state(*, applied: bool) -> TuningState:
        return compute_next_state(state, decision=decision, observations=observations, now=now, applied=applied)

    def sync_pooler() -> bool:
        # After the writes: a pool change is live on the running pgBouncers within the evaluation that wrote it.
        # The tick's lists: the namespace's Pods were listed for this tick already.
        synced = apply_pooler_sync(reads, profile, paused=observations.live.paused,
                                   previous=item.previous.conditions)
        updates.extend([synced] if synced is not None else [])
        if synced is not None and synced.reason != "SyncOff":
            synced_reasons.append(synced.reason)
        return synced is not None

    if change is None or not decision.apply:
        sync_pooler()
        return outcome(_apply_status(kube, item, status(next_state(applied=False), written=False)))

    if not change.rollback:
        # Saved first: a crash after the write leaves the change Pending, never an unrecorded step.
        recorded = next_state(applied=True)
        phase = _apply_status(kube, item, status(recorded, written=True))
        writes = _apply_edits(kube, profile, change, now=now)
        if writes.problem and not writes.written_any and writes.sure:
            sync_pooler()
            phase = _apply_status(kube, item, status(next_state(applied=False), written=False, problem=writes.problem))
        elif writes.problem:
            # Part written (the coupled edit alone), or not known: the change stays Pending, and the next
            # evaluation reads the live values to find what was written (tuning.verify.decide_unfinished_write).
            sync_pooler()
            phase = _apply_status(kube, item, status(recorded, written=True, problem=writes.problem))
        else:
            _apply_event(kube, item, reason="Changed", message=f"{change.target} {change.edit.setting.value}: "
                         f"{change.reason}", warning=False, now=now)
            if sync_pooler():
                # The change is written and recorded: a status refused now leaves only PoolerSynced as it was.
                try:
                    phase = _apply_status(kube, item, status(recorded, written=True))
                except KubeError as error:
                    log.warning("pooler sync not recorded", namespace=item.namespace, profile=item.name,
                                error=str(error))
        return outcome(phase, written=not writes.problem, problem=writes.problem)

    writes = _apply_edits(kube, profile, change, now=now)
    sync_pooler()
    # A rollback not (known to be) written leaves its change Pending: the next evaluation tries again, or finds
    # it written (Reverted, or finished when cut short between its edits).
    phase = _apply_status(kube, item, status(next_state(applied=not writes.problem), written=not writes.problem,
                                             problem=writes.problem))
    if not writes.problem:
        _apply_event(kube, item, reason="RolledBack", message=f"{change.target} {change.edit.setting.value}: "
                     f"{change.reason}", warning=True, now=now)
    return outcome(phase, written=not writes.problem, problem=writes.problem)


def _apply_stopped(kube: KubeApi, item: _Profile, *, phase: Phase, reason: str, updates: list[ConditionUpdate],
                   now: datetime) -> ProfileOutcome:
    # Not evaluated, so no pooler is synced either: an old PoolerSynced is not left saying otherwise.
    sync_off = compute_sync_off(item.previous.conditions, f"not evaluated ({phase.value}): {reason}")
    updates = [*updates, *([sync_off] if sync_off is not None else [])]
    status = compute_stopped_status(item.previous, phase=phase, conditions=[*item.updates, *updates],
                                    generation=_generation(item.raw), reason=reason, now=now,
                                    state_readable=item.state is not None)
    return ProfileOutcome(namespace=item.namespace, name=item.name, phase=_apply_status(kube, item, status),
                          problem=reason)


def _metrics_condition(cycle: CycleObservations, url: str) -> ConditionUpdate:
    unreachable = cycle.unreachable.get(url)
    if unreachable is not None:
        return ConditionUpdate(type="MetricsAvailable", status="False", reason="PrometheusUnreachable",
                               message=unreachable_reason(unreachable))
    if url in cycle.without_result:
        return ConditionUpdate(type="MetricsAvailable", status="False", reason="NoResult",
                               message="; ".join(str(failure) for failure in cycle.without_result[url]))
    if not url:
        return ConditionUpdate(type="MetricsAvailable", status="False", reason="NoPrometheusURL",
                               message="no Prometheus URL: set spec.metrics.prometheusURL or the operator's "
                                       "--prometheus-url")
    # The operator's URL may carry a password, and a profile's status is read by whoever may read profiles.
    return ConditionUpdate(type="MetricsAvailable", status="True", reason="Read",
                           message=f"read from {redact_url(url)}")


def _read(raw: Mapping[str, Any]) -> _Profile:
    """The profile as listed: its previous status, and its spec validated as `perfpilot validate` does."""
    meta = _metadata(raw)
    previous, state = parse_previous_status(raw)
    item = _Profile(raw=raw, namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""),
                    previous=previous, state=state)
    document = {**raw, "status": None, "kind": raw.get("kind", KIND)}
    item.problems = [str(problem) for problem in validate_profile(document)]
    if not item.problems:
        item.profile = PerformanceProfile.model_validate(prune_null_fields(document))
    return item


def _guarded(item: _Profile, step: Callable[[], ProfileOutcome | None]) -> None:
    """Run one step of one profile; whatever it raises is that profile's outcome, not the cycle's end."""
    if item.outcome is not None:
        return
    try:
        item.outcome = step()
    except LeadershipLost:
        raise  # the tick's end, not this profile's: another replica leads now
    except KubeError as error:
        item.outcome = ProfileOutcome(namespace=item.namespace, name=item.name, phase=None,
                                      problem=f"status not written: {error}")
    except Exception as error:  # a bug met by this profile alone must not stop the others
        log.exception("evaluation failed", namespace=item.namespace, profile=item.name)
        item.outcome = ProfileOutcome(namespace=item.namespace, name=item.name, phase=None,
                                      problem=f"evaluation failed: {type(error).__name__}: {error}")


def _check(kube: KubeApi, item: _Profile, owners: Mapping[tuple[str, str, str], _Profile], *, reads: TickReads,
           now: datetime) -> ProfileOutcome | None:
    """Why the profile is not to be evaluated (its status written saying so), or None."""
    if item.profile is None:
        message = "; ".join(item.problems)
        return _apply_stopped(kube, item, phase=Phase.INVALID, reason=f"spec invalid: {message}", now=now, updates=[
            ConditionUpdate(type="SpecValid", status="False", reason="Invalid", message=message)])
    item.updates.append(ConditionUpdate(type="SpecValid", status="True", reason="Valid"))
    profile = item.profile
    if profile.spec.mode is Mode.OFF:
        return _apply_stopped(kube, item, phase=Phase.OFF, reason="Off: perfpilot neither recommends nor writes",
                              updates=[], now=now)
    if item.state is None:
        reason = ("status.lastChange, history or barred cannot be read: fix or remove them (kubectl edit "
                  "--subresource status) for perfpilot to go on; nothing is written until then")
        return _apply_stopped(kube, item, phase=Phase.HOLDING, reason=reason, now=now, updates=[
            ConditionUpdate(type="StateReadable", status="False", reason="Unreadable", message=reason)])
    item.updates.append(ConditionUpdate(type="StateReadable", status="True", reason="Read"))
    owner = owners[_target_key(profile)]
    if owner is not item:
        ref = profile.spec.target_ref
        reason = f"{owner.name} (older) already tunes {ref.kind.value}/{ref.name}"
        return _apply_stopped(kube, item, phase=Phase.HOLDING, reason=reason, now=now, updates=[
            ConditionUpdate(type="Conflict", status="True", reason="AnotherProfile", message=reason)])
    try:
        item.live, _ = fetch_live_config(reads, profile, now=now)
    except (KubeError, WorkloadSpecError) as error:
        return _apply_stopped(kube, item, phase=Phase.HOLDING, reason=str(error), now=now, updates=[
            ConditionUpdate(type="TargetFound", status="False", reason="NotRead", message=str(error))])
    item.updates.append(ConditionUpdate(type="TargetFound", status="True", reason="Found"))
    return None


def _target_key(profile: PerformanceProfile) -> tuple[str, str, str]:
    ref = profile.spec.target_ref
    return profile.metadata.namespace, ref.kind.value, ref.name


def _interval_seconds(item: _Profile) -> float:
    return float(item.profile.spec.guardrails.interval.seconds) if item.profile else DEFAULT_INTERVAL_SECONDS


def run_cycle(kube: KubeApi, profiles: Sequence[Mapping[str, Any]], *, now: datetime,
              settings: PrometheusSettings) -> list[ProfileOutcome]:
    """Evaluate the due ones of ``profiles`` (every profile the operator sees, as the API lists them: which
    one owns a workload is decided among all of them) at ``now``; each gets its status written."""
    items: list[_Profile] = []
    for raw in profiles:
        meta = _metadata(raw)
        try:
            items.append(_read(raw))
        except Exception as error:  # a profile that cannot even be read is reported, not the others' end
            log.exception("profile not read", namespace=meta.get("namespace"), profile=meta.get("name"))
            items.append(_Profile(raw=raw, namespace=str(meta.get("namespace") or ""),
                                  name=str(meta.get("name") or ""), previous=PerformanceProfileStatus(), state=None,
                                  outcome=ProfileOutcome(namespace=str(meta.get("namespace") or ""),
                                                         name=str(meta.get("name") or ""), phase=None,
                                                         problem=f"not read: {type(error).__name__}: {error}")))

    # Two profiles on one workload would fight: the older one tunes it, whether or not it is due now. An Off
    # profile writes nothing, so it holds nothing.
    owners: dict[tuple[str, str, str], _Profile] = {}
    for item in sorted(items, key=_created):
        if item.profile is not None and item.profile.spec.mode is not Mode.OFF:
            owners.setdefault(_target_key(item.profile), item)

    unread = [item for item in items if item.outcome is not None]
    due = [item for item in items if item.outcome is None and decide_due(
        item.previous, generation=_generation(item.raw), interval_seconds=_interval_seconds(item), now=now)]
    reads = TickReads(kube)
    try:
        for item in due:
            _guarded(item, partial(_check, kube, item, owners, reads=reads, now=now))

        targets = [ProfileTarget(item.profile, item.live) for item in due
                   if item.outcome is None and item.profile is not None and item.live is not None]
        cycle = fetch_observations(targets, at=now, settings=settings)
        for item in due:
            if item.outcome is None and item.profile is not None:
                profile = item.profile
                url = profile.spec.metrics.prometheus_url or settings.url
                observations = cycle[(profile.metadata.namespace, profile.metadata.name)]
                _guarded(item, partial(_apply_evaluation, kube, item, observations, now=now,
                                       metrics=_metrics_condition(cycle, url), reads=reads))
    except LeadershipLost as lost:  # what was done before it still happened: it is logged and counted
        lost.outcomes = [item.outcome for item in [*unread, *due] if item.outcome is not None]
        raise
    return [item.outcome for item in [*unread, *due] if item.outcome is not None]
