"""The ``PerformanceProfile`` status, including the tuning state machine that lives in it.

The verify/rollback state machine is kept in the object's status (not in the operator's memory) so a
restarted operator resumes a pending verification where it stopped. ``TuningState`` is the part of the
status the pure engine reads and returns; ``PerformanceProfileStatus`` adds what is shown to people.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from perfpilot.api.spec import ApiModel

HISTORY_LIMIT = 20


class Phase(StrEnum):
    OBSERVING = "Observing"
    VERIFYING = "Verifying"
    HOLDING = "Holding"
    PAUSED = "Paused"
    INVALID = "Invalid"
    OFF = "Off"


class Verdict(StrEnum):
    PENDING = "Pending"
    KEPT = "Kept"
    ROLLED_BACK = "RolledBack"
    INCONCLUSIVE = "Inconclusive"
    # Found back at its previous values without a rollback on record (a rollback whose status was lost in a
    # restart, someone's revert, or a write that never took place): not in effect, so not judged; its move
    # is barred as after a rollback.
    REVERTED = "Reverted"


class Setting(StrEnum):
    """Every value perfpilot may move; the name is also the ``field`` of a change record."""

    HPA_CPU_TARGET = "hpa.cpuTarget"
    HPA_MEMORY_TARGET = "hpa.memoryTarget"
    HPA_SCALE_UP = "hpa.scaleUp"
    HPA_SCALE_DOWN = "hpa.scaleDown"
    HPA_MAX_REPLICAS = "hpa.maxReplicas"
    RESOURCES = "resources"
    POOL_SIZE = "pool.size"


class ScalingPolicy(ApiModel):
    type: Literal["Pods", "Percent"]
    value: int = Field(ge=1)
    period_seconds: int = Field(ge=1, le=1800)


class ScalingRules(ApiModel):
    """One direction of an HPA's ``spec.behavior`` exactly as autoscaling/v2 writes it."""

    stabilization_window_seconds: int | None = Field(None, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] | None = None
    policies: list[ScalingPolicy] = Field(default_factory=list)


class ContainerResources(ApiModel):
    """Requests and limits of one container; ``None`` is "not set" (which is not the same as 0)."""

    name: str
    cpu_request_millicores: int | None = Field(None, ge=0)
    cpu_limit_millicores: int | None = Field(None, ge=0)
    memory_request_bytes: int | None = Field(None, ge=0)
    memory_limit_bytes: int | None = Field(None, ge=0)


class PoolSize(ApiModel):
    default_pool_size: int = Field(ge=1)
    reserve_pool_size: int = Field(ge=0)


# A value of a Setting: a percent or a replica count, behaviour rules, per-container resources, a pool.
SettingValue = int | ScalingRules | PoolSize | list[ContainerResources] | None
_ANY_JSON = {"x-kubernetes-preserve-unknown-fields": True}


class Edit(ApiModel):
    """One value moved on one object."""

    setting: Setting
    from_value: Annotated[SettingValue, Field(alias="from", json_schema_extra=_ANY_JSON)] = None
    to_value: Annotated[SettingValue, Field(alias="to", json_schema_extra=_ANY_JSON)] = None


class Baseline(ApiModel):
    """What the service looked like just before a change; the verdict compares against it."""

    p95_latency_seconds: float | None = None
    error_ratio: float | None = None
    request_rate_per_second: float | None = Field(None, alias="requestRate")


class ChangeRecord(ApiModel):
    """One change perfpilot made: when, on which object, which value from what to what, why, and its
    verdict with what the verdict needs."""

    at: datetime
    target: str = Field(description="kind/name of the object changed, e.g. HorizontalPodAutoscaler/api.")
    setting: Setting = Field(alias="field", description="The value moved, e.g. hpa.cpuTarget.")
    from_value: Annotated[SettingValue, Field(alias="from", json_schema_extra=_ANY_JSON)] = None
    to_value: Annotated[SettingValue, Field(alias="to", json_schema_extra=_ANY_JSON)] = None
    coupled: Edit | None = Field(
        None, description="A second value moved with the first so the two do not fight (CPU request + target)."
    )
    coupled_target: str = Field(
        "", description="kind/name of the object the coupled value lives on (empty: none, or a record from "
                        "before this field, read as the object of that kind found live).",
    )
    reason: str = ""
    table_row: str = ""
    emergency: bool = False
    baseline: Baseline = Field(default_factory=Baseline)
    verdict: Verdict = Verdict.PENDING
    verdict_at: datetime | None = None
    verdict_reason: str = ""
    rollback_due_at: datetime | None = Field(
        None, description="When this change's rollback was last found due but not written (Recommend mode, a "
                          "failed write, a rollout in progress): the verdict's lateness counts from then.",
    )

    @property
    def edit(self) -> Edit:
        """The value moved, as one Edit (what the engine compares and rolls back)."""
        return Edit(setting=self.setting, from_value=self.from_value, to_value=self.to_value)


class BarredMove(ApiModel):
    """A move that made things worse, or was found reverted, barred until ``until`` (6 x cooldown after,
    doubled for each earlier rollback of the same move, at most peakWindow)."""

    setting: Setting
    # The value the move started from: a resources move is barred per container and request it changed, so a
    # later change bundling it with another move (the memory cut beside a CPU cut) is barred too.
    from_value: Annotated[SettingValue, Field(alias="from", json_schema_extra=_ANY_JSON)] = None
    to_value: Annotated[SettingValue, Field(alias="to", json_schema_extra=_ANY_JSON)] = None
    until: datetime


class TuningState(ApiModel):
    """The state machine the engine reads and returns: last change, its verdict, history, barred moves."""

    last_change: ChangeRecord | None = None
    history: list[ChangeRecord] = Field(default_factory=list, max_length=HISTORY_LIMIT)
    barred: list[BarredMove] = Field(default_factory=list)
    off_peak_wait_since: datetime | None = Field(
        None, description="When a resources change began waiting for off-peak. The wait ends a day after it, "
        "except for a cut held by p95 near the SLO, which waits as long as that lasts."
    )


def parse_tuning_state(status: Mapping[str, Any] | None) -> TuningState | None:
    """The state machine a profile's status holds (every field of it, the wait for off-peak too: without it a
    cut a day into its wait would wait again); a fresh one when it holds none, None when it is unreadable."""
    fields = [field.alias or name for name, field in TuningState.model_fields.items()]
    known = {key: status[key] for key in fields if key in status} if status else {}
    try:
        return TuningState.model_validate(known)
    except ValidationError:
        return None


class Condition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None


class ObservedStatus(ApiModel):
    """The latest snapshot of the signals; ``None`` means unknown, and ``unknown`` says why."""

    at: datetime | None = None
    p95_latency_seconds: float | None = None
    request_rate_per_second: float | None = Field(None, alias="requestRate")
    error_ratio: float | None = None
    cpu_utilization_percent: float | None = Field(None, alias="cpuUtilization")
    memory_utilization_percent: float | None = Field(None, alias="memoryUtilization")
    replicas: float | None = None
    pool_utilization_percent: float | None = Field(None, alias="poolUtilization")
    pool_waiting_clients: float | None = None
    # The pool size pgBouncer serves for the database, smallest and largest over the pooler pods (the
    # exporter's SHOW DATABASES): a pool change is verified once both are the size written.
    pool_size_served_min: float | None = None
    pool_size_served_max: float | None = None
    samples: int | None = None
    unknown: dict[str, str] = Field(default_factory=dict)


class ClassificationStatus(ApiModel):
    load_pattern: str = ""
    memory: str = ""
    provisioning: str = ""
    pool_load: str = ""


class Recommendation(ApiModel):
    """The next change perfpilot would make, shaped as ``lastChange`` is (field, from, to), with its table row
    and reason; empty when it would make none."""

    at: datetime | None = None
    target: str = ""
    setting: Setting | None = Field(None, alias="field", description="The value it would move.")
    from_value: Annotated[SettingValue, Field(alias="from", json_schema_extra=_ANY_JSON)] = None
    to_value: Annotated[SettingValue, Field(alias="to", json_schema_extra=_ANY_JSON)] = None
    coupled: Edit | None = None
    reason: str = ""
    table_row: str = ""


class PerformanceProfileStatus(TuningState):
    phase: Phase = Phase.OBSERVING
    observed_generation: int | None = None
    last_evaluated_at: datetime | None = Field(
        None, description="When the operator last looked at this profile (evaluated it, or found why not): the "
                          "next look is guardrails.interval later, or at once when the spec changes."
    )
    conditions: list[Condition] = Field(default_factory=list)
    observed: ObservedStatus = Field(default_factory=ObservedStatus)
    classification: ClassificationStatus = Field(default_factory=ClassificationStatus)
    recommendation: Recommendation = Field(default_factory=Recommendation)
