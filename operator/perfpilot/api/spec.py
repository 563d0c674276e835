"""The ``PerformanceProfile`` spec (group ``perfpilot.io``, version ``v1alpha1``) as pydantic models.

These models are the single source of the API: the CRD's openAPIV3Schema is generated from them
(``perfpilot.api.crd``), and the operator validates every profile with them again because not every
cluster enforces the CRD's CEL rules. Field names are the API's camelCase; Python code uses snake_case.
Cross-field rules live in ``model_validator``s here *and* as ``x-kubernetes-validations`` (see
``CEL_RULES``) so both validators say the same thing.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from perfpilot.api.quantities import CpuQuantity, Duration, MemoryQuantity
from perfpilot.api.urls import prometheus_url_problem

GROUP = "perfpilot.io"
VERSION = "v1alpha1"
KIND = "PerformanceProfile"
PLURAL = "performanceprofiles"
API_VERSION = f"{GROUP}/{VERSION}"

# Kubernetes object names (RFC 1123 subdomain) and label names/values, as the API server checks them.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
# A ConfigMap key, as the API server checks it (IsConfigMapKey: at most 253 characters of these).
CONFIG_MAP_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
# What the API server can check of a Prometheus base URL before the operator does (the model checks the
# rest: the port's range, brackets, control characters): empty, or http(s)://host[/path], no query or fragment.
PROMETHEUS_URL_PATTERN = r"^$|^[hH][tT][tT][pP][sS]?://[^\s/?#]+(/[^\s?#]*)?$"
PROMETHEUS_URL_MAX_LENGTH = 2048
# PostgreSQL's max_connections cannot exceed this (MAX_BACKENDS, 2^18 - 1): a larger budget is a typo.
POSTGRES_MAX_CONNECTIONS = 262_143


Ordered = TypeVar("Ordered", int, CpuQuantity, MemoryQuantity)
Quantity = TypeVar("Quantity", CpuQuantity, MemoryQuantity)


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields rejected, values re-validated."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
        frozen=False,
    )
    # (CEL rule, message) pairs with `self` = this object; api.crd emits them as its x-kubernetes-validations.
    CEL_RULES: ClassVar[tuple[tuple[str, str], ...]] = ()


ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=NAME_PATTERN)]
OPTIONAL_NAME_PATTERN = rf"^$|{NAME_PATTERN}"
CONTAINER_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # an RFC 1123 label, as Kubernetes requires


# Prometheus label names, and one-or-more PromQL label matchers as written inside braces.
LABEL_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
_ONE_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=~|!~|!=|=)\s*"([^"\\]|\\.)*"\s*'
MATCHER_LIST_PATTERN = rf"^{_ONE_MATCHER}(,{_ONE_MATCHER})*,?\s*$"
# Labels perfpilot sets itself in every query; a matcher on them would fight the grouping.
RESERVED_LABELS = ("namespace", "workload")
_MATCHER_KEYS_CEL = (
    "self.all(k, k.matches('" + LABEL_NAME_PATTERN + "') && !k.startsWith('__') && "
    + " && ".join(f"k != '{label}'" for label in RESERVED_LABELS) + ")"
)


# The API server estimates a CEL rule's cost from the largest value the schema allows: a rule over every key
# of a map with no maxProperties is refused at CRD creation ("estimated rule cost exceeds budget").
MAX_MATCHERS = 16
MatcherMap = Annotated[
    dict[str, Annotated[str, Field(max_length=1024)]],
    Field(max_length=MAX_MATCHERS),
]


def check_matcher_labels(matchers: dict[str, str]) -> dict[str, str]:
    """Extra label matchers must be plain label names that perfpilot does not set itself."""
    for label in matchers:
        if not re.fullmatch(LABEL_NAME_PATTERN, label) or label.startswith("__"):
            raise ValueError(f"not a Prometheus label name usable as a matcher (got {label!r})")
        if label in RESERVED_LABELS:
            raise ValueError(f"the {label!r} label is set by perfpilot, not by matchers (got {label!r})")
    return matchers


class Mode(StrEnum):
    OFF = "Off"
    RECOMMEND = "Recommend"
    AUTO = "Auto"


class Objective(StrEnum):
    BALANCED = "Balanced"
    COST = "Cost"
    RELIABILITY = "Reliability"


class WorkloadKind(StrEnum):
    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"


class ScaleUpSpeed(StrEnum):
    AUTO = "Auto"
    AGGRESSIVE = "Aggressive"
    MODERATE = "Moderate"
    CONSERVATIVE = "Conservative"


class ScaleDownSpeed(StrEnum):
    AUTO = "Auto"
    SLOW = "Slow"
    MODERATE = "Moderate"
    FAST = "Fast"


class LimitsPolicy(StrEnum):
    KEEP_RATIO = "KeepRatio"
    GUARANTEED = "Guaranteed"
    REQUESTS_ONLY = "RequestsOnly"


class PoolExporter(StrEnum):
    """Which exporter's metric names to read pool signals with (``Auto``: CloudNativePG for a Pooler)."""

    AUTO = "Auto"
    PROMETHEUS_COMMUNITY = "PrometheusCommunity"
    CLOUDNATIVE_PG = "CloudNativePG"
    PYPI = "PgbouncerExporterPyPI"


class TargetRef(ApiModel):
    api_version: str = Field("apps/v1", pattern=r"^apps/v1$", description="API version of the workload; apps/v1.")
    kind: WorkloadKind = Field(description="Kind of the workload: Deployment or StatefulSet.")
    name: ObjectName = Field(description="Name of the workload in the profile's namespace.")


class Slo(ApiModel):
    CEL_RULES = (("duration(self.latencyP95) > duration('0s')", "latencyP95 must be greater than 0s"),)
    latency_p95: Duration = Field(
        Duration(0.5),
        description="p95 latency objective. Drives the latency feedback and the rollback verdict. "
        "Default 500ms, the 'target' row of the auditor guide's latency table.",
    )
    max_error_ratio: float | None = Field(
        None, ge=0, le=1, allow_inf_nan=False,
        description="Optional objective for the ratio of failed requests (0-1)."
    )

    @field_validator("latency_p95")
    @classmethod
    def _latency_positive(cls, value: Duration) -> Duration:
        if value.seconds <= 0:
            raise ValueError(f"must be greater than 0s (got {value})")
        return value


class Metrics(ApiModel):
    prometheus_url: str = Field(
        "",
        alias="prometheusURL",
        max_length=PROMETHEUS_URL_MAX_LENGTH,
        description="Prometheus (or compatible) base URL; empty means the operator's own (plan: --prometheus).",
        # In the CRD only: the model's own check (below) says more than a pattern can.
        json_schema_extra={"pattern": PROMETHEUS_URL_PATTERN},
    )
    latency_histogram: str = Field(
        "http_request_duration_seconds",
        min_length=1,
        pattern=METRIC_NAME_PATTERN,
        description="Name of the request-latency histogram; '_bucket' is appended.",
    )
    requests_total: str = Field(
        "http_requests_total",
        min_length=1,
        pattern=METRIC_NAME_PATTERN,
        description="Name of the request counter.",
    )
    error_matcher: str = Field(
        'code=~"5.."',
        pattern=MATCHER_LIST_PATTERN,
        description="Label matcher that selects failed requests on the request counter.",
    )
    matchers: MatcherMap = Field(
        default_factory=dict, description="Extra label matchers (label: value) for the application series."
    )
    CEL_RULES = ((_MATCHER_KEYS_CEL.replace("self.all", "self.matchers.all"),
                  "matchers keys must be Prometheus label names other than namespace and workload"),)

    @field_validator("matchers")
    @classmethod
    def _matcher_labels(cls, value: dict[str, str]) -> dict[str, str]:
        return check_matcher_labels(value)

    @field_validator("prometheus_url")
    @classmethod
    def _usable_url(cls, value: str) -> str:
        problem = prometheus_url_problem(value) if value else None  # empty: the operator's own URL
        if problem is not None:
            raise ValueError(f"{problem} (got {value!r})")
        return value


class _Bounds(ApiModel, Generic[Ordered]):
    """A [min, max] range of one kind of value. The model and the CRD's CEL rule check min <= max alike."""

    min: Ordered
    max: Ordered
    CEL_RULES: ClassVar[tuple[tuple[str, str], ...]] = (("self.min <= self.max", "min must not exceed max"),)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min must not exceed max (got min={self.min}, max={self.max})")
        return self


class PercentRange(_Bounds[int]):
    min: int = Field(ge=1, le=100, description="Lowest value perfpilot may set, percent.")
    max: int = Field(ge=1, le=100, description="Highest value perfpilot may set, percent.")


class Hpa(ApiModel):
    enabled: bool = Field(True, description="Tune the HorizontalPodAutoscaler of the workload.")
    name: str = Field(
        "", max_length=253, pattern=OPTIONAL_NAME_PATTERN,
        description="HPA name; empty means the HPA whose scaleTargetRef is the profile's targetRef.",
    )
    cpu_target: PercentRange = Field(
        default_factory=lambda: PercentRange(min=50, max=80),
        description="Bounds for the CPU averageUtilization target, percent.",
    )
    memory_target: PercentRange = Field(
        default_factory=lambda: PercentRange(min=70, max=80),
        description="Bounds for the memory averageUtilization target, percent.",
    )
    scale_up: ScaleUpSpeed = Field(
        ScaleUpSpeed.AUTO, description="Scale-up behaviour row; Auto lets perfpilot choose from the load."
    )
    scale_down: ScaleDownSpeed = Field(
        ScaleDownSpeed.AUTO, description="Scale-down behaviour row; Auto lets perfpilot choose from the load."
    )
    max_replicas_ceiling: int = Field(
        0, ge=0, le=10000, description="When > 0, perfpilot may raise maxReplicas up to this when saturated."
    )


class _RequestBounds(_Bounds[Quantity]):
    """Bounds of a request: compared as quantities by CEL, and never down to zero."""

    CEL_RULES = (("quantity(string(self.min)).compareTo(quantity(string(self.max))) <= 0",
                  "min must not exceed max"),
                 ("quantity(string(self.min)).compareTo(quantity('0')) > 0", "min must be greater than 0"))

    @field_validator("min")
    @classmethod
    def _min_positive(cls, value: Quantity) -> Quantity:
        # A zero request would let the HPA divide by zero and the scheduler pack pods without limit.
        if value <= type(value).parse(0):
            raise ValueError(f"must be greater than 0 (got {value})")
        return value


class CpuRange(_RequestBounds[CpuQuantity]):
    min: CpuQuantity = Field(description="Smallest CPU request perfpilot may set.")
    max: CpuQuantity = Field(description="Largest CPU request perfpilot may set.")


class MemoryRange(_RequestBounds[MemoryQuantity]):
    min: MemoryQuantity = Field(description="Smallest memory request perfpilot may set.")
    max: MemoryQuantity = Field(description="Largest memory request perfpilot may set.")


class Resources(ApiModel):
    enabled: bool = Field(True, description="Tune the containers' resource requests (and limits).")
    containers: list[Annotated[str, Field(min_length=1, max_length=63, pattern=CONTAINER_NAME_PATTERN)]] = Field(
        default_factory=list, description="Containers to size; empty means every container."
    )
    cpu: CpuRange = Field(
        default_factory=lambda: CpuRange(min=CpuQuantity(50), max=CpuQuantity(4000)),
        description="Bounds for each container's CPU request.",
    )
    memory: MemoryRange = Field(
        default_factory=lambda: MemoryRange(min=MemoryQuantity(64 * 2**20), max=MemoryQuantity(8 * 2**30)),
        description="Bounds for each container's memory request.",
    )
    limits: LimitsPolicy = Field(
        LimitsPolicy.KEEP_RATIO,
        description="KeepRatio scales limits with requests; Guaranteed sets limits = requests; "
        "RequestsOnly leaves limits alone.",
    )


class ConfigMapRef(ApiModel):
    name: ObjectName = Field(description="ConfigMap that holds pgbouncer.ini.")
    key: str = Field("pgbouncer.ini", min_length=1, max_length=253, pattern=CONFIG_MAP_KEY_PATTERN,
                     description="Key of the ini file in the ConfigMap.")
    # The rest of IsConfigMapKey: a key is a file name in the mounted volume, so not "." nor ".." and up.
    CEL_RULES = (("self.key != '.' && !self.key.startsWith('..')", "key must not be '.' or begin with '..'"),)

    @field_validator("key")
    @classmethod
    def _not_a_dot_path(cls, key: str) -> str:
        if key == "." or key.startswith(".."):
            raise ValueError(f"key must not be '.' or begin with '..' (got {key!r})")
        return key


class LocalObjectRef(ApiModel):
    name: ObjectName = Field(description="Name of the object in the profile's namespace.")


class Pgbouncer(ApiModel):
    config_map_ref: ConfigMapRef | None = Field(
        None, description="pgBouncer configured by a ConfigMap's pgbouncer.ini (exclusive with poolerRef)."
    )
    pooler_ref: LocalObjectRef | None = Field(
        None, description="A CloudNativePG Pooler (exclusive with configMapRef)."
    )
    admin_secret_ref: LocalObjectRef | None = Field(
        None, description="Optional Secret (keys username and password, a user of the ini's admin_users; labelled "
                          "perfpilot.io/pgbouncer-admin: \"true\") for the admin console: with a configMapRef, each "
                          "evaluation in Auto mode sends the running pgBouncers the pool the ConfigMap gives (SET, or "
                          "RELOAD for a size on the database's line). Not used with a poolerRef (CloudNativePG "
                          "reloads its Poolers)."
    )
    database: str = Field("app", min_length=1, description="Database (pool) whose size is tuned.")
    exporter: PoolExporter = Field(
        PoolExporter.AUTO, description="Metric-name preset of the pgBouncer exporter that Prometheus scrapes."
    )
    matchers: MatcherMap = Field(
        default_factory=dict, description="Label matchers (label: value) of the exporter's series."
    )
    CEL_RULES = (
        ("has(self.configMapRef) != has(self.poolerRef)", "exactly one of configMapRef and poolerRef is required"),
        (_MATCHER_KEYS_CEL.replace("self.all", "self.matchers.all"),
         "matchers keys must be Prometheus label names other than namespace and workload"),
    )

    @field_validator("matchers")
    @classmethod
    def _matcher_labels(cls, value: dict[str, str]) -> dict[str, str]:
        return check_matcher_labels(value)

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Pgbouncer:
        if (self.config_map_ref is None) == (self.pooler_ref is None):
            given = "both" if self.config_map_ref is not None else "neither"
            raise ValueError(f"exactly one of configMapRef and poolerRef is required (got {given})")
        return self


class IntRange(_Bounds[int]):
    min: int = Field(ge=1, le=10000, description="Smallest value perfpilot may set.")
    max: int = Field(ge=1, le=10000, description="Largest value perfpilot may set.")


class Pool(ApiModel):
    enabled: bool = Field(False, description="Tune the pgBouncer pool size.")
    pgbouncer: Pgbouncer | None = Field(None, description="Where the pool is configured and observed.")
    size: IntRange = Field(
        default_factory=lambda: IntRange(min=5, max=100), description="Bounds for default_pool_size."
    )
    max_server_connections: int = Field(
        0, ge=0, le=POSTGRES_MAX_CONNECTIONS,
        description="Postgres connection budget for all pooler replicas; 0 means not checked."
    )
    CEL_RULES = (("!self.enabled || has(self.pgbouncer)", "pgbouncer is required when the pool is enabled"),)

    @model_validator(mode="after")
    def _pgbouncer_when_enabled(self) -> Pool:
        if self.enabled and self.pgbouncer is None:
            raise ValueError("pgbouncer is required when the pool is enabled (got none)")
        return self


# A week, like the VPA recommender's 8-day and KRR's 14-day histories: a cut sized on one quiet day must not
# miss the busy day of the week.
DEFAULT_PEAK_WINDOW_SECONDS = 7 * 86400


class Guardrails(ApiModel):
    interval: Duration = Field(Duration(60), description="Evaluation period.")
    window: Duration = Field(Duration(1800), description="Look-back of the observations.")
    peak_window: Duration = Field(
        Duration(DEFAULT_PEAK_WINDOW_SECONDS),
        description="Look-back of the peaks a shrink must still cover (CPU, memory, request rate, pool demand); "
        "at least window. A week covers the daily peak a night-time cut would miss and the weekly one (Monday "
        "after a quiet weekend, the weekly match or sale) a day would miss.",
    )
    cooldown: Duration = Field(
        Duration(600), description="Least time between two changes (emergencies toward capacity excepted)."
    )
    verify_for: Duration = Field(
        Duration(900),
        description="How long a change is watched before its verdict (its first third is the rollout's, left "
                    "out; under three Prometheus rate windows the verdict comes later, once the samples judged "
                    "lie wholly after the change).",
    )
    max_step_percent: int = Field(
        50, ge=1, le=100, description="Largest relative step of a resource request or pool size, percent."
    )
    max_target_step_points: int = Field(
        10, ge=1, le=50, alias="maxTargetStep", description="Largest step of a utilisation target, percentage points."
    )
    rollback: bool = Field(True, description="Roll back a change that made latency or errors worse.")
    CEL_RULES = (
        ("duration(self.interval) >= duration('10s')", "interval must be at least 10s"),
        ("duration(self.window) >= duration(self.interval)", "window must be at least one interval"),
        ("duration(self.peakWindow) >= duration(self.window)", "peakWindow must be at least window"),
        ("duration(self.verifyFor) >= duration(self.interval)", "verifyFor must be at least one interval"),
    )

    @model_validator(mode="after")
    def _durations_consistent(self) -> Guardrails:
        if self.interval.seconds < 10:
            raise ValueError(f"interval must be at least 10s (got {self.interval})")
        if self.window < self.interval:
            raise ValueError(f"window must be at least one interval (got window={self.window}, "
                             f"interval={self.interval})")
        if self.peak_window < self.window:
            raise ValueError(f"peakWindow must be at least window (got peakWindow={self.peak_window}, "
                             f"window={self.window})")
        if self.verify_for < self.interval:
            raise ValueError(f"verifyFor must be at least one interval (got verifyFor={self.verify_for}, "
                             f"interval={self.interval})")
        return self


class PerformanceProfileSpec(ApiModel):
    target_ref: TargetRef = Field(description="The workload this profile tunes.")
    mode: Mode = Field(
        Mode.RECOMMEND,
        description="Off does nothing; Recommend writes only the profile's status; Auto applies changes.",
    )
    objective: Objective = Field(
        Objective.BALANCED,
        description="Balanced, Cost or Reliability: picks the row of the CPU-target table. Cost also takes the "
                    "Conservative scale-up and Fast scale-down rows under steady load; Reliability also grows "
                    "the minReplicas pods for the largest rise of the peak window before it breaches the SLO.",
    )
    slo: Slo = Field(default_factory=Slo, description="Service-level objectives that drive tuning.")
    metrics: Metrics = Field(default_factory=Metrics, description="How this workload is found in Prometheus.")
    hpa: Hpa = Field(default_factory=Hpa, description="HorizontalPodAutoscaler tuning.")
    resources: Resources = Field(default_factory=Resources, description="Container requests and limits.")
    pool: Pool = Field(default_factory=Pool, description="pgBouncer pool tuning.")
    guardrails: Guardrails = Field(default_factory=Guardrails, description="Pace and safety of changes.")


class ObjectMeta(BaseModel):
    """The part of ``metadata`` perfpilot reads; everything else is kept as it is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    name: str = ""
    namespace: str = ""
    annotations: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _read_nulls_as_unset(cls, data: object) -> object:
        """A null name, namespace or annotations is unset, as kubectl apply sends it (Helm renders such nulls)."""
        if isinstance(data, dict):
            return {key: value for key, value in data.items()
                    if not (value is None and key in ("name", "namespace", "annotations"))}
        return data


PAUSED_ANNOTATION = "perfpilot.io/paused"


class PerformanceProfile(BaseModel):
    """A whole object as ``kubectl`` shows it; ``status`` is read loosely (it is ours to write)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    api_version: str = Field(alias="apiVersion", pattern=rf"^{GROUP}/{VERSION}$")
    kind: str = Field(pattern=rf"^{KIND}$")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PerformanceProfileSpec
    status: dict[str, Any] | None = None

    @property
    def paused(self) -> bool:
        return self.metadata.annotations.get(PAUSED_ANNOTATION, "").lower() == "true"
