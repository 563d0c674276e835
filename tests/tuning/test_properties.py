"""Properties of decide() over generated profiles, observations and states (hypothesis)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import timedelta
from typing import Any

import tuning_builders as b
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import (
    Baseline,
    ChangeRecord,
    ContainerResources,
    Edit,
    PoolSize,
    ScalingRules,
    Setting,
    TuningState,
    Verdict,
)
from perfpilot.tuning.decision import Decision, ProposedChange
from perfpilot.tuning.engine import decide
from perfpilot.tuning.guardrails import (
    find_bounds_left,
    is_toward_capacity,
    raises_pod_cpu,
    raises_pod_memory,
    reduces_capacity,
)
from perfpilot.tuning.observations import LiveConfig, Observations, PoolLive, Series, Unknown
from perfpilot.tuning.state import compute_next_state
from perfpilot.tuning.tables import SCALE_DOWN_ROWS, SCALE_UP_ROWS
from perfpilot.tuning.verify import decide_unfinished_write

SIGNALS = ("latency_p95_seconds", "request_rate_per_second", "error_ratio", "cpu_usage_millicores_per_pod",
           "cpu_throttled_ratio", "memory_working_set_bytes_per_pod", "replicas", "pool_server_active",
           "pool_client_waiting", "pool_max_wait_seconds")

# The least each kind of change needs to have been seen; a change made while one is unknown acted blind.
NEEDS: dict[Setting, tuple[str, ...]] = {
    Setting.HPA_CPU_TARGET: ("latency_p95_seconds",),
    Setting.HPA_MEMORY_TARGET: ("memory_working_set_bytes_per_pod",),
    Setting.HPA_MAX_REPLICAS: ("latency_p95_seconds",),
    Setting.HPA_SCALE_UP: ("latency_p95_seconds",),
    Setting.HPA_SCALE_DOWN: ("replicas",),
    Setting.RESOURCES: ("latency_p95_seconds", "cpu_usage_millicores_per_pod", "cpu_throttled_ratio",
                        "memory_working_set_bytes_per_pod"),
    Setting.POOL_SIZE: ("pool_server_active", "pool_client_waiting"),
}

# Each test still runs max_examples valid cases however many its assume() discards (35-65% for the tests
# that need a change or a bound crossed), so an unlucky start that discards many must not fail CI: the
# filter_too_much health check made a clean clone fail once, on the cooldown test (since given its own
# strategy).
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@st.composite
def shapes(draw: st.DrawFn, *, low: float, high: float) -> list[float]:
    kind = draw(st.sampled_from(["flat", "ramp", "alternating", "spike", "step"]))
    a = draw(st.floats(low, high))
    c = draw(st.floats(low, high))
    n = b.SAMPLES
    if kind == "flat":
        return [a] * n
    if kind == "ramp":
        return b.ramp(a, c)
    if kind == "alternating":
        return [a if i % 2 else c for i in range(n)]
    if kind == "spike":
        return [a] * (n - 3) + [c] * 3
    return [a] * (n // 2) + [c] * (n - n // 2)


@st.composite
def profiles(draw: st.DrawFn) -> PerformanceProfileSpec:
    cpu_min = draw(st.integers(30, 70))
    memory_min = draw(st.integers(50, 80))
    size_min = draw(st.integers(2, 20))
    return b.profile(
        mode=draw(st.sampled_from(["Auto", "Auto", "Recommend", "Off"])),
        objective=draw(st.sampled_from(["Balanced", "Cost", "Reliability"])),
        slo={"latencyP95": draw(st.sampled_from(["200ms", "500ms", "1s"]))},
        hpa={
            "cpuTarget": {"min": cpu_min, "max": draw(st.integers(cpu_min, 90))},
            "memoryTarget": {"min": memory_min, "max": draw(st.integers(memory_min, 90))},
            "scaleUp": draw(st.sampled_from(["Auto", "Auto", "Aggressive", "Moderate", "Conservative"])),
            "scaleDown": draw(st.sampled_from(["Auto", "Auto", "Slow", "Moderate", "Fast"])),
            "maxReplicasCeiling": draw(st.sampled_from([0, 12, 30])),
        },
        resources={
            "cpu": {"min": "100m", "max": draw(st.sampled_from(["1500m", "4"]))},
            "memory": {"min": "128Mi", "max": draw(st.sampled_from(["1536Mi", "8Gi"]))},
            "limits": draw(st.sampled_from(["KeepRatio", "Guaranteed", "RequestsOnly"])),
        },
        pool={
            "size": {"min": size_min, "max": draw(st.integers(size_min, 120))},
            "maxServerConnections": draw(st.sampled_from([0, 0, 60, 200])),
        },
        guardrails={
            "maxStepPercent": draw(st.integers(5, 100)),
            "maxTargetStep": draw(st.integers(1, 20)),
            "rollback": draw(st.booleans()),
        },
    )


def _rules(row: str | None, *, up: bool) -> ScalingRules | None:
    if row is None:
        return None
    return (SCALE_UP_ROWS if up else SCALE_DOWN_ROWS)[row].to_rules()


def around(low: int, high: int, *, below: int, above: int) -> st.SearchStrategy[int]:
    """Mostly within [low, high]; sometimes below it (down to ``below``) or above it (up to ``above``): a live
    value someone set by hand, or one set before the profile's bounds changed."""
    return st.one_of(
        st.integers(low, high), st.integers(low, high),
        st.integers(min(below, low), low), st.integers(high, max(above, high)),
    )


@st.composite
def live_configs(draw: st.DrawFn, profile: PerformanceProfileSpec) -> LiveConfig:
    cpu_bounds, memory_bounds = profile.hpa.cpu_target, profile.hpa.memory_target
    resources = profile.resources
    cpu_low, cpu_high = resources.cpu.min.millicores, resources.cpu.max.millicores
    cpu_request = draw(around(cpu_low, cpu_high, below=cpu_low // 2, above=cpu_high * 3 // 2))
    memory_low, memory_high = resources.memory.min.bytes // b.MI, resources.memory.max.bytes // b.MI
    memory_request = draw(around(memory_low, memory_high, below=memory_low // 2, above=memory_high * 3 // 2)) * b.MI
    limit_factor = draw(st.sampled_from([1.0, 1.5, 2.0]))
    size = profile.pool.size
    default = draw(around(size.min, size.max, below=1, above=size.max * 3 // 2))
    max_replicas = draw(st.integers(2, 12))
    return b.live(
        hpa=b.hpa(
            cpu_target_percent=draw(around(cpu_bounds.min, cpu_bounds.max, below=max(1, cpu_bounds.min - 25),
                                           above=min(100, cpu_bounds.max + 25))),
            memory_target_percent=draw(st.one_of(st.none(), around(
                memory_bounds.min, memory_bounds.max, below=max(1, memory_bounds.min - 25),
                above=min(100, memory_bounds.max + 25)))),
            max_replicas=max_replicas,
            current_replicas=draw(st.integers(2, max_replicas)),
            scale_up=_rules(draw(st.sampled_from([None, "Aggressive", "Moderate", "Conservative"])), up=True),
            scale_down=_rules(draw(st.sampled_from([None, "Slow", "Moderate", "Fast"])), up=False),
        ),
        containers=(b.container(
            cpu_request_millicores=cpu_request, cpu_limit_millicores=round(cpu_request * limit_factor),
            memory_request_bytes=memory_request, memory_limit_bytes=round(memory_request * limit_factor),
        ),),
        pool=PoolLive(default_pool_size=default, reserve_pool_size=default // 2,
                      pooler_replicas=draw(st.integers(1, 3))),
        oom_kills_in_window=draw(st.sampled_from([0, 0, 1, Unknown("not read")])),
        paused=draw(st.booleans()) and draw(st.booleans()),
        rollout_in_progress=draw(st.booleans()) and draw(st.booleans()),
    )


@st.composite
def observation_sets(draw: st.DrawFn, profile: PerformanceProfileSpec) -> Observations:
    live = draw(live_configs(profile))
    slo = profile.slo.latency_p95.seconds
    values: dict[str, Any] = {
        "latency_p95_seconds": draw(shapes(low=0.1 * slo, high=3 * slo)),
        "request_rate_per_second": draw(shapes(low=0.0, high=500.0)),
        "error_ratio": draw(shapes(low=0.0, high=0.05)),
        "cpu_usage_millicores_per_pod": draw(shapes(low=0.0, high=2.0 * 4000)),
        "cpu_throttled_ratio": draw(shapes(low=0.0, high=0.5)),
        "memory_working_set_bytes_per_pod": draw(shapes(low=32.0 * b.MI, high=4.0 * b.GI)),
        "replicas": [float(round(v)) for v in draw(shapes(low=1.0, high=12.0))],
        "pool_server_active": draw(shapes(low=0.0, high=150.0)),
        "pool_client_waiting": [float(round(v)) for v in draw(shapes(low=0.0, high=5.0))],
        "pool_max_wait_seconds": draw(shapes(low=0.0, high=2.0)),
    }
    unknown = draw(st.sets(st.sampled_from(SIGNALS), max_size=4))
    signals: dict[str, Series | Unknown] = {
        name: Unknown("generated") if name in unknown else b.series(series_values)
        for name, series_values in values.items()
    }
    peaks = {
        "peak_cpu_usage_millicores_total": draw(st.one_of(st.just(Unknown("generated")), st.floats(0.0, 60000.0))),
        "peak_memory_working_set_bytes_per_pod": draw(
            st.one_of(st.just(Unknown("generated")), st.floats(32.0 * b.MI, 4.0 * b.GI))),
        "peak_request_rate_per_second": draw(st.one_of(st.just(Unknown("generated")), st.floats(0.0, 500.0))),
        "peak_pool_demand_connections": draw(st.one_of(st.just(Unknown("generated")), st.floats(0.0, 160.0))),
        "cpu_history_seconds": draw(st.one_of(st.just(Unknown("generated")), st.floats(0.0, 7 * 86400.0),
                                              st.just(7 * 86400.0))),
        "pool_history_seconds": draw(st.one_of(st.just(Unknown("generated")), st.floats(0.0, 7 * 86400.0),
                                               st.just(7 * 86400.0))),
    }
    return replace(b.observations(live=live, **signals), **peaks)


@st.composite
def states(draw: st.DrawFn, *, within_minutes: float | None = None) -> TuningState:
    """A state with no change, a pending one or a judged one; with ``within_minutes``, always a change
    written less than that long ago (drawn directly, so the tests that need one do not filter for it)."""
    kinds = ["pending", "judged"] if within_minutes is not None else ["empty", "pending", "judged"]
    kind = draw(st.sampled_from(kinds))
    if kind == "empty":
        return TuningState()
    minutes_ago = draw(st.floats(0.5, max(0.5, (within_minutes or 40) - 0.01)))
    record = ChangeRecord(
        at=b.NOW - timedelta(minutes=minutes_ago), target="HorizontalPodAutoscaler/api",
        setting=Setting.HPA_MEMORY_TARGET, from_value=75, to_value=80,
        baseline=Baseline(p95_latency_seconds=draw(st.floats(0.05, 2)), error_ratio=0.001,
                          request_rate_per_second=100),
    )
    if kind == "judged":
        record = record.model_copy(update={
            "verdict": draw(st.sampled_from([Verdict.KEPT, Verdict.ROLLED_BACK, Verdict.INCONCLUSIVE,
                                             Verdict.REVERTED])),
            "verdict_at": record.at + timedelta(minutes=draw(st.floats(0, minutes_ago))),
        })
    return TuningState(last_change=record)


@st.composite
def cases(draw: st.DrawFn) -> tuple[PerformanceProfileSpec, Observations, TuningState]:
    profile = draw(profiles())
    return profile, draw(observation_sets(profile)), draw(states())


@st.composite
def cases_in_cooldown(draw: st.DrawFn) -> tuple[PerformanceProfileSpec, Observations, TuningState]:
    """Cases whose last change was written within the profile's cooldown."""
    profile = draw(profiles())
    cooldown_minutes = profile.guardrails.cooldown.seconds / 60
    return profile, draw(observation_sets(profile)), draw(states(within_minutes=cooldown_minutes))


def _edits(change: ProposedChange) -> list[Edit]:
    return [change.edit] + ([change.coupled] if change.coupled is not None else [])


def _requests(value: object) -> list[ContainerResources]:
    assert isinstance(value, list)
    return [c for c in value if isinstance(c, ContainerResources)]


def assert_within_or_toward(old: int, new: int, low: int, high: int) -> None:
    """A value inside [low, high] stays inside. A value outside moves toward the bounds, never away from them
    and never past them (how far it moves is the step-limit property's business)."""
    if low <= old <= high:
        assert low <= new <= high, (old, new, low, high)
    elif old < low:
        assert old <= new <= high, (old, new, low, high)
    else:
        assert low <= new <= old, (old, new, low, high)


@PROPERTY_SETTINGS
@given(cases())
def test_a_decision_never_leaves_the_bounds_and_moves_a_value_outside_them_only_toward_them(
    case: tuple[PerformanceProfileSpec, Observations, TuningState],
) -> None:
    profile, observations, state = case
    change = decide(profile, observations, state, b.NOW).change
    assume(change is not None and not change.rollback)
    assert change is not None
    for edit in _edits(change):
        old, new = edit.from_value, edit.to_value
        if edit.setting is Setting.HPA_CPU_TARGET:
            assert isinstance(old, int) and isinstance(new, int)
            assert_within_or_toward(old, new, profile.hpa.cpu_target.min, profile.hpa.cpu_target.max)
        elif edit.setting is Setting.HPA_MEMORY_TARGET:
            assert isinstance(old, int) and isinstance(new, int)
            assert_within_or_toward(old, new, profile.hpa.memory_target.min, profile.hpa.memory_target.max)
        elif edit.setting is Setting.HPA_MAX_REPLICAS:
            assert isinstance(new, int) and new <= profile.hpa.max_replicas_ceiling
        elif edit.setting is Setting.RESOURCES:
            for before, container in zip(_requests(old), _requests(new), strict=True):
                assert container.cpu_request_millicores is not None and container.memory_request_bytes is not None
                assert before.cpu_request_millicores is not None and before.memory_request_bytes is not None
                assert_within_or_toward(before.cpu_request_millicores, container.cpu_request_millicores,
                                        profile.resources.cpu.min.millicores, profile.resources.cpu.max.millicores)
                assert_within_or_toward(before.memory_request_bytes, container.memory_request_bytes,
                                        profile.resources.memory.min.bytes, profile.resources.memory.max.bytes)
                if container.cpu_limit_millicores is not None:
                    assert container.cpu_request_millicores <= container.cpu_limit_millicores
                if container.memory_limit_bytes is not None:
                    assert container.memory_request_bytes <= container.memory_limit_bytes
        elif edit.setting is Setting.POOL_SIZE:
            assert isinstance(old, PoolSize) and isinstance(new, PoolSize) and observations.live.pool is not None
            assert_within_or_toward(old.default_pool_size, new.default_pool_size,
                                    profile.pool.size.min, profile.pool.size.max)
            budget = profile.pool.max_server_connections
            if budget:
                replicas = observations.live.pool.pooler_replicas
                total = (new.default_pool_size + new.reserve_pool_size) * replicas
                live_total = (observations.live.pool.default_pool_size + observations.live.pool.reserve_pool_size) * (
                    replicas)
                assert total <= budget or total < live_total  # within the budget, or shrinking toward it


def _relative_step(old: int, new: int) -> float:
    return abs(new - old) / old


@PROPERTY_SETTINGS
@given(cases())
def test_a_decision_never_steps_further_than_the_step_limits(
    case: tuple[PerformanceProfileSpec, Observations, TuningState],
) -> None:
    profile, observations, state = case
    change = decide(profile, observations, state, b.NOW).change
    assume(change is not None and not change.rollback)
    assert change is not None
    guard = profile.guardrails
    limit = guard.max_step_percent / 100 + 1e-9
    for edit in _edits(change):
        old, new = edit.from_value, edit.to_value
        if edit.setting in (Setting.HPA_CPU_TARGET, Setting.HPA_MEMORY_TARGET):
            assert isinstance(old, int) and isinstance(new, int)
            assert 0 < abs(new - old) <= guard.max_target_step_points
        elif edit.setting is Setting.RESOURCES:
            for before, after in zip(_requests(old), _requests(new), strict=True):
                assert before.cpu_request_millicores and after.cpu_request_millicores
                assert before.memory_request_bytes and after.memory_request_bytes
                assert _relative_step(before.cpu_request_millicores, after.cpu_request_millicores) <= limit
                assert _relative_step(before.memory_request_bytes, after.memory_request_bytes) <= limit
        elif edit.setting is Setting.POOL_SIZE:
            assert isinstance(old, PoolSize) and isinstance(new, PoolSize)
            # A grow takes at least one connection (as maxReplicas), else maxStepPercent of the live size.
            assert (new.default_pool_size == old.default_pool_size + 1
                    or _relative_step(old.default_pool_size, new.default_pool_size) <= limit)
        elif edit.setting is Setting.HPA_MAX_REPLICAS:
            assert isinstance(old, int) and isinstance(new, int)
            assert new - old <= max(1, old * guard.max_step_percent // 100)


@PROPERTY_SETTINGS
@given(cases())
def test_a_decision_changes_one_thing_and_a_proposed_value_differs_from_the_live_one(
    case: tuple[PerformanceProfileSpec, Observations, TuningState],
) -> None:
    profile, observations, state = case
    change = decide(profile, observations, state, b.NOW).change
    assume(change is not None)
    assert change is not None
    assert change.edit.from_value != change.edit.to_value
    if change.coupled is not None:
        # The only pair is a CPU request with the CPU target that keeps the replica count.
        assert (change.edit.setting, change.coupled.setting) == (Setting.RESOURCES, Setting.HPA_CPU_TARGET)
        assert change.coupled.from_value != change.coupled.to_value
        before, after = change.edit.from_value, change.edit.to_value
        target_before, target_after = change.coupled.from_value, change.coupled.to_value
        assert isinstance(before, list) and isinstance(after, list)
        assert isinstance(target_before, int) and isinstance(target_after, int)
        raised = sum(c.cpu_request_millicores or 0 for c in after) > sum(c.cpu_request_millicores or 0 for c in before)
        assert (target_after < target_before) == raised  # never a higher target with bigger pods, or the reverse


@PROPERTY_SETTINGS
@given(st.one_of(cases(), cases_in_cooldown()))
def test_during_verification_or_cooldown_only_an_emergency_toward_capacity_acts(
    case: tuple[PerformanceProfileSpec, Observations, TuningState],
) -> None:
    profile, observations, state = case
    last = state.last_change
    assume(last is not None)
    assert last is not None
    written = last.verdict_at if last.verdict is Verdict.ROLLED_BACK and last.verdict_at else last.at
    in_cooldown = written + timedelta(seconds=profile.guardrails.cooldown.seconds) > b.NOW
    # A pending change whose values are not live is judged at once (Reverted: it is not in effect, so there is
    # nothing to verify, and the rules go on once its cooldown is over).
    at_once = (decide_unfinished_write(profile, observations, last, now=b.NOW)
               if last.verdict is Verdict.PENDING else None)
    verifying = last.verdict is Verdict.PENDING and last.at + timedelta(
        seconds=profile.guardrails.verify_for.seconds) > b.NOW and (
        at_once is None or at_once.verdict is not Verdict.REVERTED)
    assume(in_cooldown or verifying)
    change = decide(profile, observations, state, b.NOW).change
    if change is not None and not change.rollback:
        assert change.emergency and is_toward_capacity(change)


@PROPERTY_SETTINGS
@given(cases())
def test_a_decision_never_acts_on_unknown_signals(
    case: tuple[PerformanceProfileSpec, Observations, TuningState],
) -> None:
    profile, observations, state = case
    change = decide(profile, observations, state, b.NOW).change
    assume(change is not None and not change.rollback)
    assert change is not None
    setting = change.edit.setting
    pinned = (setting is Setting.HPA_SCALE_UP and profile.hpa.scale_up.value != "Auto") or (
        setting is Setting.HPA_SCALE_DOWN and profile.hpa.scale_down.value != "Auto")
    assume(not pinned)  # a pinned row is the user's choice, written without looking at signals
    def known(name: str) -> bool:
        return not isinstance(getattr(observations, name), Unknown)

    if setting is Setting.RESOURCES and (raises_pod_cpu(change.edit) or raises_pod_memory(change.edit)) \
            and not reduces_capacity(change):
        # A raise stands on its own evidence: OOM kills or the working set for memory, throttling or usage
        # (or p95, for an emergency or the spike headroom) for CPU; a side it does not move needs nothing.
        oom = observations.live.oom_kills_in_window
        if raises_pod_memory(change.edit):
            assert (isinstance(oom, int) and oom > 0) or known("memory_working_set_bytes_per_pod"), change.reason
        if raises_pod_cpu(change.edit):
            assert any(known(name) for name in ("cpu_throttled_ratio", "cpu_usage_millicores_per_pod",
                                                "latency_p95_seconds")), change.reason
        return
    for name in NEEDS[setting]:
        assert known(name), (setting, name)


@PROPERTY_SETTINGS
@given(cases())
def test_decide_is_deterministic_and_does_not_mutate_its_inputs(
    case: tuple[PerformanceProfileSpec, Observations, TuningState],
) -> None:
    profile, observations, state = case
    profile_before, observations_before = profile.model_copy(deep=True), copy.deepcopy(observations)
    state_before = state.model_copy(deep=True)
    assert decide(profile, observations, state, b.NOW) == decide(profile, observations, state, b.NOW)
    assert (profile, observations, state) == (profile_before, observations_before, state_before)


@PROPERTY_SETTINGS
@given(cases())
def test_off_recommend_and_paused_never_apply(case: tuple[PerformanceProfileSpec, Observations, TuningState]) -> None:
    profile, observations, state = case
    decision = decide(profile, observations, state, b.NOW)
    if profile.mode.value != "Auto" or observations.live.paused:
        assert decision.apply is False
    if profile.mode.value == "Off" or observations.live.paused:
        assert decision.change is None


def _write(live: LiveConfig, edit: Edit) -> LiveConfig:
    """What the cluster looks like after an edit is written (the test's stand-in for the actuator)."""
    hpa = live.hpa
    assert hpa is not None
    value = edit.to_value
    if edit.setting is Setting.HPA_CPU_TARGET:
        assert isinstance(value, int)
        return replace(live, hpa=replace(hpa, cpu_target_percent=value))
    if edit.setting is Setting.HPA_MEMORY_TARGET:
        assert isinstance(value, int)
        return replace(live, hpa=replace(hpa, memory_target_percent=value))
    if edit.setting is Setting.HPA_MAX_REPLICAS:
        assert isinstance(value, int)
        return replace(live, hpa=replace(hpa, max_replicas=value))
    if edit.setting is Setting.HPA_SCALE_UP:
        assert value is None or isinstance(value, ScalingRules)
        return replace(live, hpa=replace(hpa, scale_up=value))
    if edit.setting is Setting.HPA_SCALE_DOWN:
        assert value is None or isinstance(value, ScalingRules)
        return replace(live, hpa=replace(hpa, scale_down=value))
    if edit.setting is Setting.RESOURCES:
        by_name = {c.name: c for c in _requests(value)}
        return replace(live, containers=tuple(by_name.get(c.name, c) for c in live.containers))
    assert isinstance(value, PoolSize) and live.pool is not None
    return replace(live, pool=replace(live.pool, default_pool_size=value.default_pool_size,
                                      reserve_pool_size=value.reserve_pool_size))


def _written(live: LiveConfig, change: ProposedChange) -> LiveConfig:
    for edit in _edits(change):
        live = _write(live, edit)
    return live


@PROPERTY_SETTINGS
@given(cases())
def test_a_rollback_restores_exactly_the_previous_values_including_the_coupled_edit_within_the_bounds(
    case: tuple[PerformanceProfileSpec, Observations, TuningState],
) -> None:
    profile, observations, _ = case
    profile = profile.model_copy(update={"mode": profile.mode.__class__.AUTO})
    profile.guardrails.rollback = True
    observations = replace(
        observations, live=replace(observations.live, paused=False), request_rate_per_second=b.series(100),
        latency_p95_seconds=b.series(0.5 * profile.slo.latency_p95.seconds), error_ratio=b.series(0.001),
    )
    first: Decision = decide(profile, observations, TuningState(), b.NOW)
    assume(first.change is not None)
    assert first.change is not None
    state = compute_next_state(TuningState(), decision=first, observations=observations, now=b.NOW, applied=True)
    later = b.NOW + timedelta(seconds=profile.guardrails.verify_for.seconds)
    slo = profile.slo.latency_p95.seconds
    # An error regression with p95 within the SLO: a rollback that takes capacity away is only allowed then.
    worse = b.observations(
        at=later, latency_p95_seconds=b.series(0.9 * slo, at=later), error_ratio=b.series(0.2, at=later),
        request_rate_per_second=b.series(100, at=later), live=_written(observations.live, first.change),
    )
    rollback = decide(profile, worse, state, later)
    # A change that stepped a value from outside the bounds toward them is not undone: no write leaves them.
    if any(find_bounds_left(edit.setting, live=edit.to_value, new=edit.from_value, profile=profile)
           for edit in _edits(first.change)):
        assert rollback.verdict is Verdict.INCONCLUSIVE and "would leave the profile's bounds" in \
            rollback.verdict_reason
        assert rollback.change is None or not rollback.change.rollback
        return
    assert rollback.verdict is Verdict.ROLLED_BACK
    change = rollback.change
    assert change is not None and change.rollback
    assert _written(worse.live, change) == observations.live
    assert change.edit.to_value == first.change.edit.from_value
    if first.change.coupled is not None:
        assert change.coupled is not None and change.coupled.to_value == first.change.coupled.from_value


def _shrinks(edit: Edit) -> tuple[bool, bool, bool]:
    """(CPU request lowered, memory request lowered, pool lowered) by an edit."""
    if edit.setting is Setting.RESOURCES:
        pairs = list(zip(_requests(edit.from_value), _requests(edit.to_value), strict=True))
        cpu = any((n.cpu_request_millicores or 0) < (o.cpu_request_millicores or 0) for o, n in pairs)
        memory = any((n.memory_request_bytes or 0) < (o.memory_request_bytes or 0) for o, n in pairs)
        return cpu, memory, False
    if edit.setting is Setting.POOL_SIZE:
        assert isinstance(edit.from_value, PoolSize) and isinstance(edit.to_value, PoolSize)
        return False, False, edit.to_value.default_pool_size < edit.from_value.default_pool_size
    return False, False, False


@PROPERTY_SETTINGS
@given(cases())
def test_a_decision_never_shrinks_with_an_unknown_peak_or_little_history(
    case: tuple[PerformanceProfileSpec, Observations, TuningState],
) -> None:
    profile, observations, state = case
    change = decide(profile, observations, state, b.NOW).change
    assume(change is not None and not change.rollback)
    assert change is not None
    cpu, memory, pool = _shrinks(change.edit)
    if cpu:
        assert not isinstance(observations.peak_cpu_usage_millicores_total, Unknown)
    if memory:
        assert not isinstance(observations.peak_memory_working_set_bytes_per_pod, Unknown)
    if pool:
        assert not isinstance(observations.peak_pool_demand_connections, Unknown)
    if not (cpu or memory or pool):
        return
    # ... nor on less than a day of the history its peak was read from (or nearly all of a shorter peakWindow).
    history = observations.pool_history_seconds if pool else observations.cpu_history_seconds
    assert not isinstance(history, Unknown)
    own_window = profile.guardrails.peak_window.seconds
    assert history >= min(86400, 0.95 * own_window)  # docs/tuning-tables.md section 4: a day, or 95% of it


@PROPERTY_SETTINGS
@given(cases())
def test_a_decision_never_changes_resources_during_a_rollout_but_in_an_emergency_toward_capacity(
    case: tuple[PerformanceProfileSpec, Observations, TuningState],
) -> None:
    profile, observations, state = case
    rolling = replace(observations, live=replace(observations.live, rollout_in_progress=True))
    change = decide(profile, rolling, state, b.NOW).change
    if change is None or change.edit.setting is not Setting.RESOURCES:
        return
    # ... but an emergency toward capacity: a new template supersedes a stuck rollout.
    assert change.emergency and is_toward_capacity(change), change.reason


@PROPERTY_SETTINGS
@given(cases())
def test_no_emergency_follows_a_write_within_two_intervals(
    case: tuple[PerformanceProfileSpec, Observations, TuningState],
) -> None:
    profile, observations, state = case
    change = decide(profile, observations, state, b.NOW).change
    last = state.last_change
    if last is None or change is None or change.rollback:
        return
    # Written at the change, or at its rollback (a rollback is a write too).
    written = max(last.at, last.verdict_at) if last.verdict is Verdict.ROLLED_BACK and last.verdict_at else last.at
    if b.NOW - written < 2 * timedelta(seconds=profile.guardrails.interval.seconds):
        assert not change.emergency


@st.composite
def pools_outside_their_bounds(draw: st.DrawFn) -> tuple[PerformanceProfileSpec, Observations]:
    """A live pool below size.min or above size.max, with clients waiting or the pool idle."""
    size_min = draw(st.integers(2, 60))
    size_max = draw(st.integers(size_min, 120))
    profile = b.profile(pool={"size": {"min": size_min, "max": size_max}},
                        guardrails={"maxStepPercent": draw(st.integers(5, 100))})
    default = draw(st.one_of(st.integers(1, size_min), st.integers(size_max, 2 * size_max)))
    busy = draw(st.booleans())
    pool = PoolLive(default_pool_size=default, reserve_pool_size=default // 2)
    observations = replace(b.observations(
        live=b.live(pool=pool),
        pool_server_active=b.series(default if busy else 0.1 * default),
        pool_client_waiting=b.series(draw(st.integers(1, 5)) if busy else 0),
    ), peak_pool_demand_connections=0.1 * default)
    return profile, observations


@PROPERTY_SETTINGS
@given(pools_outside_their_bounds())
def test_a_pool_outside_its_bounds_moves_toward_them_by_at_most_one_step_never_away(
    case: tuple[PerformanceProfileSpec, Observations],
) -> None:
    profile, observations = case
    change = decide(profile, observations, TuningState(), b.NOW).change
    assume(change is not None and change.edit.setting is Setting.POOL_SIZE)
    assert change is not None
    old, new = change.edit.from_value, change.edit.to_value
    assert isinstance(old, PoolSize) and isinstance(new, PoolSize)
    assert_within_or_toward(old.default_pool_size, new.default_pool_size, profile.pool.size.min, profile.pool.size.max)
    step = profile.guardrails.max_step_percent / 100
    grow_floor = 1.0 if new.default_pool_size > old.default_pool_size else 0.0  # a grow takes at least one
    assert abs(new.default_pool_size - old.default_pool_size) <= max(grow_floor, old.default_pool_size * step + 1e-9)
