"""PromQL builders: one pure function per signal, each query written in exactly one place.

Every query covers *all* profiles of a cycle that share a Prometheus and a query shape: it selects their
namespaces with one regex matcher (``namespace=~"shop|billing"``) and groups by ``namespace`` and
``workload``, so a cycle issues one query per signal and shape however many profiles there are
(``docs/metrics.md`` lists the queries). ``workload`` is derived from the ``pod`` label with
``label_replace`` — first the StatefulSet form ``<name>-<ordinal>``, then the Deployment form
``<name>-<pod-template-hash>-<suffix>``, which wins where both match — so kube-state-metrics is not needed.

A *shape* is everything in a profile that changes the query text other than its namespace: metric names,
label matchers, the error matcher. Profiles with equal shapes share a query; see ``snapshot.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from perfpilot.api.spec import MATCHER_LIST_PATTERN, RESERVED_LABELS, Metrics, Pgbouncer, check_matcher_labels
from perfpilot.observe.presets import CADVISOR, ContainerMetricNames, PoolMetricNames, pool_metric_names
from perfpilot.tuning.observations import RISE_SPAN_SECONDS

# Kubernetes' pod names: a Deployment's ReplicaSet adds the pod-template-hash and the pod a 5-character
# suffix; a StatefulSet adds the ordinal. The suffix is drawn from apimachinery's rand alphabet (no vowels, no
# 0, 1 or 3); the hash is a 32-bit hash's decimal digits (up to 10; fewer than 6 about once in 40,000), each
# encoded to one of ten of those characters (alphanums[ord(digit) % 27]). A Job's or DaemonSet's pod named
# after the workload (`api-migrations-x7k2p`) or a CronJob's (`backup-29456788-x7k2p`) does not match.
_RAND_ALPHABET = "[bcdfghjklmnpqrstvwxz2456789]"
_HASH_ALPHABET = "[4-9bcdf]"
DEPLOYMENT_POD_PATTERN = f"^(.+)-{_HASH_ALPHABET}{{6,10}}-{_RAND_ALPHABET}{{5}}$"
STATEFULSET_POD_PATTERN = "^(.+)-[0-9]+$"
WORKLOAD_LABEL = "workload"
BY_WORKLOAD = ("namespace", WORKLOAD_LABEL)
BY_POOL = ("namespace", WORKLOAD_LABEL, "database")
LATENCY_QUANTILE = 0.95

# A DNS-1123 label, as Kubernetes checks namespace and container names: never in need of regex escaping.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# The rules for matchers live in the API (its models and CRD reject bad ones); they are checked again here
# because the operator-wide container matchers and hand-built models do not pass through the API.
_MATCHER_LIST = re.compile(MATCHER_LIST_PATTERN)
# One matcher of a list the pattern above accepted: its label name, operator and quoted value.
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _matches_empty(operator: str, quoted: str) -> bool:
    """Whether a matcher selects a series without the label (PromQL reads a missing label as "")."""
    value = re.sub(r"\\(.)", r"\1", quoted)
    if operator in ("=", "!="):
        return (value == "") == (operator == "=")
    try:
        matched = re.fullmatch(value, "") is not None  # Prometheus anchors its regexes
    except re.error:
        matched = True  # RE2 syntax Python does not read: assume the worse, that it may
    return matched == (operator == "=~")


def list_labels_matched_when_missing(matchers: str) -> tuple[str, ...]:
    """The labels of a matcher list whose matcher also selects series that lack the label
    (``code!~"2.."``, ``code=~"5..|"``), in order; ``code=~"5.."`` or ``error_type!=""`` select none."""
    return tuple(match.group(1) for match in _MATCHER.finditer(matchers)
                 if _matches_empty(match.group(2), match.group(3)))


if set(BY_WORKLOAD) != set(RESERVED_LABELS):
    raise ImportError(f"the API reserves {RESERVED_LABELS}, the queries group by {BY_WORKLOAD}")


class QueryBuildError(ValueError):
    """A profile's metric settings cannot be turned into valid PromQL (the message says which field)."""


class SignalName(StrEnum):
    """The signals read from Prometheus; each value is the ``Observations`` field it fills."""

    LATENCY_P95 = "latency_p95_seconds"
    REQUEST_RATE = "request_rate_per_second"
    ERROR_RATIO = "error_ratio"
    CPU_USAGE = "cpu_usage_millicores_per_pod"
    CPU_THROTTLED = "cpu_throttled_ratio"
    MEMORY_WORKING_SET = "memory_working_set_bytes_per_pod"
    REPLICAS = "replicas"
    POOL_SERVER_ACTIVE = "pool_server_active"
    POOL_CLIENT_WAITING = "pool_client_waiting"
    POOL_MAX_WAIT = "pool_max_wait_seconds"
    POOL_SERVED_SIZE_MIN = "pool_served_size_min"
    POOL_SERVED_SIZE_MAX = "pool_served_size_max"


class PeakName(StrEnum):
    """What is read as one value over guardrails.peakWindow (the peaks, and how much of the window has data);
    each value is the ``Observations`` field it fills."""

    CPU_USAGE_TOTAL = "peak_cpu_usage_millicores_total"
    CPU_HISTORY = "cpu_history_seconds"
    MEMORY_WORKING_SET = "peak_memory_working_set_bytes_per_pod"
    REQUEST_RATE = "peak_request_rate_per_second"
    REQUEST_RATE_RISE = "peak_request_rate_rise_per_second"
    POOL_DEMAND = "peak_pool_demand_connections"
    POOL_HISTORY = "pool_history_seconds"


class ByContainerName(StrEnum):
    """What is read per container of the pod template (grouped by ``container`` as well: a container is bound
    or over-provisioned against its own request); each value is the ``Observations`` field it fills."""

    CPU_USAGE = "cpu_usage_millicores_by_container"
    CPU_THROTTLED = "cpu_throttled_ratio_by_container"
    MEMORY_WORKING_SET = "memory_working_set_bytes_by_container"
    PEAK_MEMORY_WORKING_SET = "peak_memory_working_set_bytes_by_container"  # over guardrails.peakWindow


BY_CONTAINER = (*BY_WORKLOAD, "container")


# The readings that count steps rather than take a maximum: several series of one profile (poolers) give
# the longest-watched one's, where peaks add up.
HISTORIES = frozenset({PeakName.CPU_HISTORY, PeakName.POOL_HISTORY})
APP_SIGNALS = (SignalName.LATENCY_P95, SignalName.REQUEST_RATE, SignalName.ERROR_RATIO)
POOL_SIGNALS = (SignalName.POOL_SERVER_ACTIVE, SignalName.POOL_CLIENT_WAITING, SignalName.POOL_MAX_WAIT,
                SignalName.POOL_SERVED_SIZE_MIN, SignalName.POOL_SERVED_SIZE_MAX)

Matchers = tuple[tuple[str, str], ...]  # sorted (label, value) pairs: hashable, order-independent


def freeze_matchers(matchers: Mapping[str, str]) -> Matchers:
    try:
        check_matcher_labels(dict(matchers))
    except ValueError as error:
        raise QueryBuildError(str(error)) from error
    return tuple(sorted(matchers.items()))


@dataclass(frozen=True)
class AppShape:
    """What shapes the application queries: the histogram and counter names and their matchers."""

    latency_histogram: str
    requests_total: str
    error_matcher: str
    matchers: Matchers = ()

    @classmethod
    def from_metrics(cls, metrics: Metrics) -> AppShape:
        error_matcher = metrics.error_matcher.strip()
        if not _MATCHER_LIST.match(error_matcher):
            raise QueryBuildError(f'errorMatcher is not a PromQL label matcher such as code=~"5..": {error_matcher!r}')
        return cls(
            latency_histogram=metrics.latency_histogram,
            requests_total=metrics.requests_total,
            error_matcher=error_matcher.rstrip(", "),
            matchers=freeze_matchers(metrics.matchers),
        )


@dataclass(frozen=True)
class ContainerShape:
    """cAdvisor names, the operator-wide extra matchers (e.g. ``cluster`` on a shared Thanos), and the
    containers counted: those of the profiles' pod templates, so a sidecar injected at admission (a service
    mesh's proxy), whose request the template does not carry, does not add its usage to the pod's. Empty:
    every container (a profile's template is not known)."""

    names: ContainerMetricNames = CADVISOR
    matchers: Matchers = ()
    containers: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoolShape:
    """One exporter's names and the profile's pool matchers."""

    names: PoolMetricNames
    matchers: Matchers = ()

    @classmethod
    def from_pgbouncer(cls, pgbouncer: Pgbouncer) -> PoolShape:
        return cls(names=pool_metric_names(pgbouncer), matchers=freeze_matchers(pgbouncer.matchers))


# --- text helpers -------------------------------------------------------------------------------------


def quote(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dns_label_matcher(label: str, names: Sequence[str]) -> str:
    """``label=~"a|b"`` over the distinct names, sorted so equal sets give equal text. The names must be DNS
    labels (as Kubernetes checks namespace and container names), so they never need regex escaping;
    anything else is refused."""
    distinct = sorted(set(names))
    for name in distinct:
        if not DNS_LABEL.fullmatch(name):
            raise QueryBuildError(f"not a Kubernetes {label} name: {name!r}")
    return f"{label}=~{quote('|'.join(distinct))}"


def namespace_matcher(namespaces: Sequence[str]) -> str:
    """``namespace=~"a|b"`` over the distinct namespaces."""
    if not namespaces:
        raise QueryBuildError("a query needs at least one namespace")
    return _dns_label_matcher("namespace", namespaces)


def selector(metric: str, *matchers: str) -> str:
    return metric + "{" + ", ".join(matcher for matcher in matchers if matcher) + "}"


def _equality_matchers(matchers: Matchers) -> list[str]:
    return [f"{label}={quote(value)}" for label, value in matchers]


def with_workload(expression: str) -> str:
    """Add the ``workload`` label derived from ``pod`` (StatefulSet form first, Deployment form wins)."""
    statefulset = f'label_replace({expression}, "{WORKLOAD_LABEL}", "$1", "pod", {quote(STATEFULSET_POD_PATTERN)})'
    return f'label_replace({statefulset}, "{WORKLOAD_LABEL}", "$1", "pod", {quote(DEPLOYMENT_POD_PATTERN)})'


def _by(labels: Sequence[str]) -> str:
    return "by (" + ", ".join(labels) + ")"


def _duration(seconds: int) -> str:
    if seconds < 1:
        raise QueryBuildError(f"a rate window must be at least 1s (got {seconds}s)")
    return f"{seconds}s"


def _app_selector(shape: AppShape, metric: str, namespaces: Sequence[str], *extra: str) -> str:
    return selector(metric, namespace_matcher(namespaces), *_equality_matchers(shape.matchers), *extra)


def container_matcher(containers: Sequence[str]) -> str:
    """``container=~"a|b"`` for the named containers; none for an empty list."""
    return _dns_label_matcher("container", containers) if containers else ""


def _container_selector(shape: ContainerShape, metric: str, namespaces: Sequence[str]) -> str:
    # container="" is the pod-level cgroup and "POD" the pause container: both would count usage twice.
    return selector(
        metric, namespace_matcher(namespaces), 'container!=""', 'container!="POD"',
        container_matcher(shape.containers), *_equality_matchers(shape.matchers),
    )


def _pool_selector(shape: PoolShape, metric: str, namespaces: Sequence[str], *, without: Sequence[str] = ()) -> str:
    kept = tuple((label, value) for label, value in shape.matchers if label not in without)
    return selector(metric, namespace_matcher(namespaces), *_equality_matchers(kept))


def _rate_by(labels: Sequence[str], series_selector: str, rate_window_seconds: int, *, offset_seconds: int = 0) -> str:
    offset = f" offset {_duration(offset_seconds)}" if offset_seconds else ""
    rated = f"rate({series_selector}[{_duration(rate_window_seconds)}]{offset})"
    return f"sum {_by(labels)} ({with_workload(rated)})"


# --- application signals ------------------------------------------------------------------------------


def latency_p95_query(shape: AppShape, *, namespaces: Sequence[str], rate_window_seconds: int) -> str:
    """p95 request latency, seconds: ``histogram_quantile`` over the buckets' rate, per workload."""
    buckets = _app_selector(shape, f"{shape.latency_histogram}_bucket", namespaces)
    return f"histogram_quantile({LATENCY_QUANTILE}, {_rate_by((*BY_WORKLOAD, 'le'), buckets, rate_window_seconds)})"


def request_rate_query(shape: AppShape, *, namespaces: Sequence[str], rate_window_seconds: int) -> str:
    """Requests per second, per workload."""
    return _rate_by(BY_WORKLOAD, _app_selector(shape, shape.requests_total, namespaces), rate_window_seconds)


def error_ratio_query(shape: AppShape, *, namespaces: Sequence[str], rate_window_seconds: int) -> str:
    """Failed over all requests, per workload.

    A service that never failed has no error series at all, so the numerator falls back to 0 x the total
    (``or``): that is a measured zero. With no requests the ratio is 0/0 = NaN, which becomes Unknown. A
    matcher that also selects series lacking its label (``code!~"2.."``) counts only where the counter's
    series carry that label (``and on``): on a counter without it, every request would read as failed. (A
    matcher that selects only series with the label, ``code=~"5.."``, stays a measured 0 when none has it: a
    label only failures carry, as OpenTelemetry's ``error_type``, looks the same.)
    """
    total = _rate_by(BY_WORKLOAD, _app_selector(shape, shape.requests_total, namespaces), rate_window_seconds)
    failed = _rate_by(
        BY_WORKLOAD, _app_selector(shape, shape.requests_total, namespaces, shape.error_matcher), rate_window_seconds
    )
    ratio = f"({failed} or (0 * {total})) / {total}"
    for label in dict.fromkeys(list_labels_matched_when_missing(shape.error_matcher)):
        carried = _app_selector(shape, shape.requests_total, namespaces, f'{label}!=""')
        ratio = f"({ratio}) and on ({', '.join(BY_WORKLOAD)}) (count {_by(BY_WORKLOAD)} ({with_workload(carried)}))"
    return ratio


# --- container signals (cAdvisor) ---------------------------------------------------------------------


def _per_pod(expression: str) -> str:
    return f"sum {_by((*BY_WORKLOAD, 'pod'))} ({with_workload(expression)})"


def _per_pod_of_gauges(expression: str) -> str:
    """A gauge per pod: each container's largest series, summed. A container restarted (an OOM kill, say) comes
    back under a new cAdvisor id, a new series, and the old one's last samples stay in a range (and in an
    instant lookback where no staleness marker was written): added up, the pod would hold both at once. The
    CPU counters' rates are summed as they are: each series' rate covers only its own share of the range."""
    by_container = f"max {_by((*BY_WORKLOAD, 'pod', 'container'))} ({with_workload(expression)})"
    return f"sum {_by((*BY_WORKLOAD, 'pod'))} ({by_container})"


def cpu_usage_query(shape: ContainerShape, *, namespaces: Sequence[str], rate_window_seconds: int) -> str:
    """CPU used per pod, millicores, averaged over the workload's pods (what the HPA averages)."""
    usage = _container_selector(shape, shape.names.cpu_usage_seconds_total, namespaces)
    per_pod = _per_pod(f"rate({usage}[{_duration(rate_window_seconds)}])")
    return f"1000 * avg {_by(BY_WORKLOAD)} ({per_pod})"


# A container that ran no CFS period in the rate window (idle) was throttled in none: 0 / this is a measured 0,
# where 0 / 0 would be NaN, an unknown that blocked the pod's provisioning.
_NO_PERIODS = "1e-9"


def _throttled_share(shape: ContainerShape, *, namespaces: Sequence[str], rate_window_seconds: int,
                     group: Callable[[str], str]) -> str:
    """Throttled CFS periods over all periods, each rate summed by ``group`` (per pod, or per pod and container)."""
    window = _duration(rate_window_seconds)
    throttled = _container_selector(shape, shape.names.cfs_throttled_periods_total, namespaces)
    periods = _container_selector(shape, shape.names.cfs_periods_total, namespaces)
    return f"{group(f'rate({throttled}[{window}])')} / clamp_min({group(f'rate({periods}[{window}])')}, {_NO_PERIODS})"


def cpu_throttled_query(shape: ContainerShape, *, namespaces: Sequence[str], rate_window_seconds: int) -> str:
    """Share of CFS periods throttled, worst pod of the workload (only pods with a CPU limit have these)."""
    ratio = _throttled_share(shape, namespaces=namespaces, rate_window_seconds=rate_window_seconds, group=_per_pod)
    return f"max {_by(BY_WORKLOAD)} ({ratio})"


def memory_working_set_query(shape: ContainerShape, *, namespaces: Sequence[str]) -> str:
    """Working set of the workload's largest pod, bytes (what an HPA's memory target compares with the pod's
    requests; the resources rows read each container's, below)."""
    working_set = _container_selector(shape, shape.names.memory_working_set_bytes, namespaces)
    return f"max {_by(BY_WORKLOAD)} ({_per_pod_of_gauges(working_set)})"


def cpu_usage_by_container_query(shape: ContainerShape, *, namespaces: Sequence[str], rate_window_seconds: int) -> str:
    """Each container's CPU, millicores, averaged over the workload's pods (several series of one container in
    one pod, a restart under another id, add up first)."""
    usage = _container_selector(shape, shape.names.cpu_usage_seconds_total, namespaces)
    per_pod = _per_pod_container(f"rate({usage}[{_duration(rate_window_seconds)}])")
    return f"1000 * avg {_by(BY_CONTAINER)} ({per_pod})"


def cpu_throttled_by_container_query(
    shape: ContainerShape, *, namespaces: Sequence[str], rate_window_seconds: int
) -> str:
    """Each container's share of CFS periods throttled, in the workload's worst pod for it (only containers
    with a CPU limit have these)."""
    ratio = _throttled_share(shape, namespaces=namespaces, rate_window_seconds=rate_window_seconds,
                             group=_per_pod_container)
    return f"max {_by(BY_CONTAINER)} ({ratio})"


def _per_pod_container(expression: str) -> str:
    return f"sum {_by((*BY_CONTAINER, 'pod'))} ({with_workload(expression)})"


def memory_working_set_by_container_query(shape: ContainerShape, *, namespaces: Sequence[str]) -> str:
    """Each container's largest working set among the workload's pods, bytes (the OOM killer acts per
    container, against its own limit)."""
    working_set = _container_selector(shape, shape.names.memory_working_set_bytes, namespaces)
    return f"max {_by(BY_CONTAINER)} ({with_workload(working_set)})"


def replicas_query(shape: ContainerShape, *, namespaces: Sequence[str]) -> str:
    """Pods of the workload that have CPU series at each step (the replica count over time)."""
    usage = _container_selector(shape, shape.names.cpu_usage_seconds_total, namespaces)
    return f"count {_by(BY_WORKLOAD)} ({_per_pod(usage)})"


# --- pool signals (pgBouncer exporter) ----------------------------------------------------------------


def pool_sum_query(shape: PoolShape, metric: str, *, namespaces: Sequence[str]) -> str:
    """A pool gauge summed over pooler pods and users, per pooler workload and database.

    ``metric`` is ``shape.names.server_active`` (server connections in use) or ``shape.names.client_waiting``
    (clients waiting for one).
    """
    return f"sum {_by(BY_POOL)} ({with_workload(_pool_selector(shape, metric, namespaces))})"


def pool_max_wait_query(shape: PoolShape, *, namespaces: Sequence[str]) -> str:
    """Age of the oldest waiting client, seconds, the worst pooler pod and user."""
    wait = _pool_selector(shape, shape.names.max_wait_seconds, namespaces)
    if shape.names.max_wait_microseconds_part:
        micros = _pool_selector(shape, shape.names.max_wait_microseconds_part, namespaces)
        wait = f"({wait} + {micros} / 1000000)"
    return f"max {_by(BY_POOL)} ({with_workload(wait)})"


def pool_served_size_query(shape: PoolShape, *, namespaces: Sequence[str], smallest: bool) -> str:
    """The pool size pgBouncer serves, the smallest (or largest) over the pooler pods, per pooler workload and
    database: when both equal the size written, every pod serves it (a ConfigMap's ini is served only once
    something reloads it). The database's name moves to the ``database`` label where the exporter keeps it in
    another (``pool_size_database_label``), so that these group like the other pool signals."""
    # SHOW DATABASES has no user: a matcher on ``user`` (natural for SHOW POOLS' series) would select nothing.
    series = _pool_selector(shape, shape.names.pool_size, namespaces, without=("user",))
    label = shape.names.pool_size_database_label
    if label != "database":
        series = f'label_replace({series}, "database", "$1", {quote(label)}, "(.*)")'
    return f"{'min' if smallest else 'max'} {_by(BY_POOL)} ({with_workload(series)})"


# --- peaks over guardrails.peakWindow -------------------------------------------------------------------
#
# Each is ``max_over_time(<the signal's grouped expression>[<peakWindow>:<step>])``: a subquery that evaluates
# the expression at every step of the peak window and keeps the largest value, read as a one-point range
# query at the evaluation time. One query per peak, covering every profile's namespace, like the signals.
# A gauge (working set, pool connections) enters as its largest sample of each step, ``max_over_time(g[step])``:
# at a step an instant selector sees only the latest scrape, and a spike between two steps (two 15 s scrapes at
# 3Gi of a pod at 1Gi, say) would be missed by the very peak a cut relies on. A rate covers its whole window
# already (the reader keeps it at least one step).


def _milliseconds(value: int) -> str:
    return f"{value // 1000}s" if value % 1000 == 0 else f"{value}ms"


@dataclass(frozen=True)
class PeakSubquery:
    """A peak, ``max_over_time((EXPRESSION)[RANGE:STEP] offset OFFSET)``, or a history, ``STEP *
    count_over_time(...)`` (the seconds of the span with a value), read as one point at the evaluation time
    over the span ``[at - OFFSET - RANGE, at - OFFSET]``.

    A span too heavy for the server (Prometheus refuses a query that would hold more than
    ``--query.max-samples`` points at once, 50 million by default: a week of every cAdvisor series of a large
    cluster at a one-minute step) is read in parts (``split``): the parts' peaks combine by their largest,
    their histories by their sum."""

    expression: str
    history: bool
    range_milliseconds: int
    step_seconds: int
    offset_milliseconds: int = 0

    @property
    def promql(self) -> str:
        offset = f" offset {_milliseconds(self.offset_milliseconds)}" if self.offset_milliseconds else ""
        over = (f"(({self.expression})[{_milliseconds(self.range_milliseconds)}:{_duration(self.step_seconds)}]"
                f"{offset})")
        return f"{self.step_seconds} * count_over_time{over}" if self.history else f"max_over_time{over}"

    def split(self, *, at_milliseconds: int) -> tuple[PeakSubquery, PeakSubquery] | None:
        """The span's older and newer parts when evaluated at ``at``, or None when a part would be shorter than
        one step. They meet at an instant halfway between two steps, near the middle of the span: no step lies
        on the boundary, so each step is read by one part alone whether the server closes a subquery's range
        at its start (Prometheus 2.x) or leaves it open (3.x), and the span's own ends stay the whole's."""
        step_milliseconds = self.step_seconds * 1000
        end_milliseconds = at_milliseconds - self.offset_milliseconds
        start_milliseconds = end_milliseconds - self.range_milliseconds
        middle_milliseconds = start_milliseconds + self.range_milliseconds // 2
        boundary_milliseconds = middle_milliseconds // step_milliseconds * step_milliseconds + step_milliseconds // 2
        shorter_milliseconds = min(boundary_milliseconds - start_milliseconds, end_milliseconds - boundary_milliseconds)
        if shorter_milliseconds < step_milliseconds:
            return None
        older = replace(self, range_milliseconds=boundary_milliseconds - start_milliseconds,
                        offset_milliseconds=at_milliseconds - boundary_milliseconds)
        return older, replace(self, range_milliseconds=end_milliseconds - boundary_milliseconds)


def _check_peak_window(peak_window_seconds: int) -> None:
    if peak_window_seconds < 1:
        raise QueryBuildError(f"a peak window must be at least 1s (got {peak_window_seconds}s)")


def _peak_over(expression: str, *, peak_window_seconds: int, step_seconds: int) -> PeakSubquery:
    _check_peak_window(peak_window_seconds)
    return PeakSubquery(expression, history=False, range_milliseconds=peak_window_seconds * 1000,
                        step_seconds=step_seconds)


def _largest_in_step(series_selector: str, *, step_seconds: int) -> str:
    return f"max_over_time({series_selector}[{_duration(step_seconds)}])"


def _cpu_usage_total(shape: ContainerShape, *, namespaces: Sequence[str], rate_window_seconds: int) -> str:
    usage = _container_selector(shape, shape.names.cpu_usage_seconds_total, namespaces)
    per_pod = _per_pod(f"rate({usage}[{_duration(rate_window_seconds)}])")
    return f"1000 * sum {_by(BY_WORKLOAD)} ({per_pod})"


def peak_cpu_usage_total_query(
    shape: ContainerShape, *, namespaces: Sequence[str], rate_window_seconds: int, peak_window_seconds: int,
    step_seconds: int,
) -> PeakSubquery:
    """Largest total CPU of the workload (all its pods), millicores, over the peak window."""
    return _peak_over(_cpu_usage_total(shape, namespaces=namespaces, rate_window_seconds=rate_window_seconds),
                      peak_window_seconds=peak_window_seconds, step_seconds=step_seconds)


def cpu_history_query(
    shape: ContainerShape, *, namespaces: Sequence[str], rate_window_seconds: int, peak_window_seconds: int,
    step_seconds: int,
) -> PeakSubquery:
    """Seconds of the peak window in which the workload had a CPU reading: the steps of the CPU peak's
    subquery that have a value, times the step. A peak read from less than a day of it may miss the day's
    high, which is what a cut must not rely on."""
    return _history_over(_cpu_usage_total(shape, namespaces=namespaces, rate_window_seconds=rate_window_seconds),
                         peak_window_seconds=peak_window_seconds, step_seconds=step_seconds)


def peak_memory_working_set_query(
    shape: ContainerShape, *, namespaces: Sequence[str], peak_window_seconds: int, step_seconds: int
) -> PeakSubquery:
    """Largest working set of any pod of the workload, bytes, over the peak window (each container at its largest
    sample of the step, summed per pod: at most one step's spread above the pod's own largest)."""
    working_set = _container_selector(shape, shape.names.memory_working_set_bytes, namespaces)
    largest = _largest_in_step(working_set, step_seconds=step_seconds)
    return _peak_over(f"max {_by(BY_WORKLOAD)} ({_per_pod_of_gauges(largest)})",
                      peak_window_seconds=peak_window_seconds, step_seconds=step_seconds)


def peak_memory_working_set_by_container_query(
    shape: ContainerShape, *, namespaces: Sequence[str], peak_window_seconds: int, step_seconds: int
) -> PeakSubquery:
    """Each container's largest working set among the workload's pods, bytes, over the peak window (every sample)."""
    working_set = _container_selector(shape, shape.names.memory_working_set_bytes, namespaces)
    largest = _largest_in_step(working_set, step_seconds=step_seconds)
    return _peak_over(f"max {_by(BY_CONTAINER)} ({with_workload(largest)})", peak_window_seconds=peak_window_seconds,
                      step_seconds=step_seconds)


def peak_request_rate_query(
    shape: AppShape, *, namespaces: Sequence[str], rate_window_seconds: int, peak_window_seconds: int,
    step_seconds: int,
) -> PeakSubquery:
    """Largest request rate of the workload, per second, over the peak window."""
    return _peak_over(request_rate_query(shape, namespaces=namespaces, rate_window_seconds=rate_window_seconds),
                      peak_window_seconds=peak_window_seconds, step_seconds=step_seconds)


def peak_request_rate_rise_query(
    shape: AppShape, *, namespaces: Sequence[str], rate_window_seconds: int, peak_window_seconds: int,
    step_seconds: int, rise_span_seconds: int = RISE_SPAN_SECONDS,
) -> PeakSubquery:
    """Largest rise of the workload's request rate within ``rise_span_seconds``, per second, over the peak window.

    The rate minus the same rate ``offset`` by the span; a workload without requests that long before has no
    point at that step (vector matching), as a new workload has no rise to speak of.
    """
    selector = _app_selector(shape, shape.requests_total, namespaces)
    now = _rate_by(BY_WORKLOAD, selector, rate_window_seconds)
    before = _rate_by(BY_WORKLOAD, selector, rate_window_seconds, offset_seconds=rise_span_seconds)
    return _peak_over(f"{now} - {before}", peak_window_seconds=peak_window_seconds, step_seconds=step_seconds)


def peak_pool_demand_query(
    shape: PoolShape, *, namespaces: Sequence[str], peak_window_seconds: int, step_seconds: int
) -> PeakSubquery:
    """Largest demand on the pool (server connections in use + clients waiting), over the peak window.

    A pooler that exports no waiting series counts as 0 waiting (``or 0 x active``), as for the error ratio.
    Each series enters at its largest sample of the step (the two gauges' largest may come at different scrapes
    of it: at most one step's spread above the true demand, which only makes a shrink more careful).
    """
    return _peak_over(_pool_demand(shape, namespaces=namespaces, largest_in_step_seconds=step_seconds),
                      peak_window_seconds=peak_window_seconds, step_seconds=step_seconds)


def _pool_demand(shape: PoolShape, *, namespaces: Sequence[str], largest_in_step_seconds: int | None = None) -> str:
    def summed(metric: str) -> str:
        series = _pool_selector(shape, metric, namespaces)
        if largest_in_step_seconds is not None:
            series = _largest_in_step(series, step_seconds=largest_in_step_seconds)
        return f"sum {_by(BY_POOL)} ({with_workload(series)})"

    active, waiting = summed(shape.names.server_active), summed(shape.names.client_waiting)
    return f"{active} + ({waiting} or 0 * {active})"


def _history_over(expression: str, *, peak_window_seconds: int, step_seconds: int) -> PeakSubquery:
    """Seconds of the peak window in which ``expression`` had a value: its steps there, times the step."""
    _check_peak_window(peak_window_seconds)
    return PeakSubquery(expression, history=True, range_milliseconds=peak_window_seconds * 1000,
                        step_seconds=step_seconds)


def pool_history_query(
    shape: PoolShape, *, namespaces: Sequence[str], peak_window_seconds: int, step_seconds: int
) -> PeakSubquery:
    """Seconds of the peak window with a pool-demand reading (per pooler workload): how much history the
    pool-demand peak, which a shrink relies on, was read from. An exporter added an hour ago has an hour."""
    # Instant selectors, not the peak's largest-in-step: a step counts when a scrape lies within the lookback (5
    # minutes), so an exporter scraped less often than the step still has its whole history.
    return _history_over(_pool_demand(shape, namespaces=namespaces), peak_window_seconds=peak_window_seconds,
                         step_seconds=step_seconds)
