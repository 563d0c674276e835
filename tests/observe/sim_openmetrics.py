"""The simulator's cluster model, scraped as the simulator scrapes it, written out as OpenMetrics.

``run_workload`` drives ``perfpilot.sim.cluster.Cluster`` in 15 s ticks at a trace's request rate and hands
every tick to the simulator's own ``perfpilot.sim.prometheus.Prometheus`` (``scrape``, then ``evaluate`` once
a minute, as ``sim.replay`` does). After each scrape, ``Prometheus.latest_samples()`` — the samples that
object just recorded, at the instant it recorded them — is copied into an ``OpenMetricsWriter`` with the
labels real exporters give them, so a real Prometheus can be backfilled with exactly the numbers (and
timestamps) the simulator computes its own ``Observations`` from:

- cAdvisor: ``container_cpu_usage_seconds_total``, ``container_cpu_cfs_periods_total``,
  ``container_cpu_cfs_throttled_periods_total``, ``container_memory_working_set_bytes`` per pod, labelled
  ``namespace``, ``pod``, ``container="app"``, plus the pod-level cgroup (``container=""``) with the same
  values, which the reader must leave out;
- the application: ``http_request_duration_seconds_bucket{le}`` (prometheus_client's default buckets),
  its ``_count`` (the ``+Inf`` bucket) and ``http_requests_total{code}``, per pod as the simulator keeps
  them: a pod's series begin with its first request served (``code="503"`` with its first failure), as
  prometheus_client creates a labelled child on its first increment, and restart from zero with its
  container;
- the pgBouncer exporter's gauges, which the simulator gives under the prometheus-community exporter's
  names, renamed to the workload's preset (``observe.presets``) and labelled ``namespace``, ``pod`` (the
  pooler's), ``database``, ``user``. CloudNativePG's oldest wait is split here into whole seconds plus the
  microseconds beyond them, as pgBouncer's SHOW POOLS gives it: the one value the files do not hold
  exactly (to half a microsecond). The pool size served (SHOW DATABASES) names the database in the preset's
  ``pool_size_database_label``, with the server-side database in ``database`` beside it.

The model's pod names (``api-<template>-<serial>``) are not Kubernetes names: the reader's ``pod`` ->
``workload`` mapping reads ``api-0-3`` as StatefulSet ``api-0``. Each pod is therefore written as
``<deployment>-<pod-template-hash>-<suffix>``, derived from the model pod's template version and name.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from promharness import OpenMetricsWriter

from perfpilot.api.spec import PoolExporter
from perfpilot.api.status import ContainerResources, PoolSize
from perfpilot.observe.presets import CADVISOR, POOL_PRESETS
from perfpilot.sim.cluster import TICK_SECONDS, Cluster, ClusterParams
from perfpilot.sim.prometheus import (
    LATENCY_BUCKET_METRIC,
    POOL_NAMES,
    REQUESTS_METRIC,
    Prometheus,
    ScrapedSample,
)
from perfpilot.sim.trace import Trace

LATENCY_HISTOGRAM = LATENCY_BUCKET_METRIC.removesuffix("_bucket")  # spec.metrics defaults
REQUESTS_TOTAL = REQUESTS_METRIC
TICKS_PER_MINUTE = round(60 / TICK_SECONDS)
CADVISOR_METRICS = frozenset({CADVISOR.cpu_usage_seconds_total, CADVISOR.cfs_periods_total,
                              CADVISOR.cfs_throttled_periods_total, CADVISOR.memory_working_set_bytes})
CADVISOR_COUNTERS = CADVISOR_METRICS - {CADVISOR.memory_working_set_bytes}


@dataclass(frozen=True)
class SimWorkload:
    """One Deployment of the model, its pgBouncer pooler, and a scale-up done halfway as an HPA would."""

    namespace: str
    deployment: str
    pooler: str
    exporter: PoolExporter  # PROMETHEUS_COMMUNITY or CLOUDNATIVE_PG: the names its pool gauges are written as
    resources: ContainerResources
    pool: PoolSize
    replicas: int
    params: ClusterParams = field(default_factory=ClusterParams)
    rate_factor: float = 1.0  # applied to the trace's rates
    scale_up: tuple[int, int] | None = None  # (minute index, replicas): spec.replicas set before that minute


@dataclass
class SimRun:
    """A workload after the run: the simulator's Prometheus (its evaluated signals) and what it was fed."""

    workload: SimWorkload
    prometheus: Prometheus
    start_seconds: int
    end_seconds: int
    pod_names: dict[str, str] = field(default_factory=dict)  # model pod name -> Kubernetes pod name


# apimachinery's rand alphabet, which pod suffixes are drawn from, and the ten characters of it that a
# pod-template-hash (decimal digits, encoded) is made of.
_RAND_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_HASH_ALPHABET = "456789bcdf"


def _token(text: str, length: int, alphabet: str = _RAND_ALPHABET) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:length])


def kubernetes_pod_name(workload: SimWorkload, *, template_version: int, model_name: str) -> str:
    """``<deployment>-<pod-template-hash>-<suffix>``: what the reader maps back to ``workload.deployment``."""
    template_hash = _token(f"{workload.namespace}/{workload.deployment}/{template_version}", 10, _HASH_ALPHABET)
    return f"{workload.deployment}-{template_hash}-{_token(model_name, 5)}"


def _pooler_pod(workload: SimWorkload) -> str:
    return f"{workload.pooler}-{_token(workload.pooler, 10, _HASH_ALPHABET)}-{_token(workload.pooler + '-0', 5)}"


def _whole_seconds(value: float) -> int:
    stamp = round(value)
    if abs(stamp - value) > 1e-6:
        raise ValueError(f"the model's clock is off whole seconds: {value}")
    return stamp


def run_workload(workload: SimWorkload, trace: Trace, writer: OpenMetricsWriter) -> SimRun:
    """Replay ``trace`` through the model (one 15 s tick at a time) and write every scrape into ``writer``."""
    cluster = Cluster.started(
        params=workload.params, resources=workload.resources, pool=workload.pool, replicas=workload.replicas,
        now_seconds=trace.start_seconds,
    )
    prometheus = Prometheus(pool_enabled=True)
    start = _whole_seconds(trace.start_seconds)
    run = SimRun(workload, prometheus, start, start)
    for minute, rate in enumerate(trace.rates_per_second):
        if workload.scale_up is not None and minute == workload.scale_up[0]:
            cluster.spec_replicas = workload.scale_up[1]
        for _ in range(TICKS_PER_MINUTE):
            tick = cluster.advance(rate_per_second=rate * workload.rate_factor, dt_seconds=TICK_SECONDS)
            prometheus.scrape(cluster=cluster, tick=tick, now=cluster.now_seconds)
            for pod in cluster.pods:
                run.pod_names.setdefault(
                    pod.name, kubernetes_pod_name(workload, template_version=pod.version, model_name=pod.name))
            for sample in prometheus.latest_samples():
                _copy(run, sample, writer)
        prometheus.evaluate(cluster.now_seconds)
        run.end_seconds = _whole_seconds(cluster.now_seconds)
    return run


def _copy(run: SimRun, sample: ScrapedSample, writer: OpenMetricsWriter) -> None:
    """Write one of the simulator's samples with a real exporter's labels (and, for the pool, names)."""
    at = _whole_seconds(sample.timestamp_seconds)
    namespace = run.workload.namespace
    if sample.metric in CADVISOR_METRICS:
        pod = run.pod_names[sample.labels["pod"]]
        # The container, and the pod cgroup with the same values, which the reader must not count twice.
        for container in (sample.labels["container"], ""):
            labels = {"namespace": namespace, "pod": pod, "container": container}
            if sample.metric in CADVISOR_COUNTERS:
                writer.counter(sample.metric, labels, at_seconds=at, value=sample.value)
            else:
                writer.gauge(sample.metric, labels, at_seconds=at, value=sample.value)
    elif sample.metric == LATENCY_BUCKET_METRIC:
        labels = {"namespace": namespace, "pod": run.pod_names[sample.labels["pod"]]}
        writer.add(LATENCY_HISTOGRAM, "histogram", LATENCY_BUCKET_METRIC, {**labels, "le": sample.labels["le"]},
                   at_seconds=at, value=sample.value)
        if sample.labels["le"] == "+Inf":
            writer.add(LATENCY_HISTOGRAM, "histogram", f"{LATENCY_HISTOGRAM}_count", labels, at_seconds=at,
                       value=sample.value)
    elif sample.metric == REQUESTS_METRIC:
        labels = {"namespace": namespace, "pod": run.pod_names[sample.labels["pod"]], "code": sample.labels["code"]}
        writer.counter(REQUESTS_METRIC, labels, at_seconds=at, value=sample.value)
    else:
        _copy_pool(run.workload, sample, writer, at_seconds=at)


def _copy_pool(workload: SimWorkload, sample: ScrapedSample, writer: OpenMetricsWriter, *, at_seconds: int) -> None:
    names = POOL_PRESETS[workload.exporter]
    labels = {"namespace": workload.namespace, "pod": _pooler_pod(workload), "database": "app", "user": "app",
              **sample.labels}
    if sample.metric == POOL_NAMES.server_active:
        writer.gauge(names.server_active, labels, at_seconds=at_seconds, value=sample.value)
    elif sample.metric == POOL_NAMES.client_waiting:
        writer.gauge(names.client_waiting, labels, at_seconds=at_seconds, value=sample.value)
    elif sample.metric == POOL_NAMES.max_wait_seconds:
        if names.max_wait_microseconds_part is None:
            writer.gauge(names.max_wait_seconds, labels, at_seconds=at_seconds, value=sample.value)
        else:
            whole = math.floor(sample.value)
            writer.gauge(names.max_wait_seconds, labels, at_seconds=at_seconds, value=float(whole))
            writer.gauge(names.max_wait_microseconds_part, labels, at_seconds=at_seconds,
                         value=float(round((sample.value - whole) * 1e6)))
    elif sample.metric == POOL_NAMES.pool_size:
        # SHOW DATABASES' series: no user; the database's name where the preset's exporter keeps it, and the
        # server-side database in `database` when that is another label.
        named = {"namespace": workload.namespace, "pod": _pooler_pod(workload), names.pool_size_database_label: "app"}
        if names.pool_size_database_label != "database":
            named["database"] = "app_db"
        writer.gauge(names.pool_size, named, at_seconds=at_seconds, value=sample.value)
    else:
        raise ValueError(f"the simulator scraped a sample this writer does not know: {sample}")
