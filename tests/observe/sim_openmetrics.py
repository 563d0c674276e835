"""The simulator's cluster model, scraped as the simulator scrapes it, written out as OpenMetrics.

``run_workload`` drives ``perfpilot.sim.cluster.Cluster`` in 15 s ticks at a trace's request rate and hands
every tick to the simulator's own ``perfpilot.sim.prometheus.Prometheus`` (``scrape``, then ``evaluate`` once
a minute, as ``sim.replay`` does). After each scrape, the samples that object just recorded are copied into
an ``OpenMetricsWriter`` with the labels real exporters give them, so a real Prometheus can be backfilled
with exactly the numbers the simulator computes its own ``Observations`` from:

- cAdvisor: ``container_cpu_usage_seconds_total``, ``container_cpu_cfs_periods_total``,
  ``container_cpu_cfs_throttled_periods_total``, ``container_memory_working_set_bytes`` per pod, labelled
  ``namespace``, ``pod``, ``container="app"``, plus the pod-level cgroup (``container=""``) with the same
  values, which the reader must leave out;
- the application: ``http_request_duration_seconds_bucket{le}`` (prometheus_client's default buckets) and
  ``http_requests_total{code}``. The model keeps these per workload, not per pod, so they are written under
  the pod label of the workload's first pod, which lives through the whole run;
- the pgBouncer exporter's gauges under a preset's names (``observe.presets``), labelled ``namespace``,
  ``pod`` (the pooler's), ``database``, ``user``. CloudNativePG's split oldest wait is written as whole
  seconds plus the microseconds beyond them, as pgBouncer's SHOW POOLS gives it.

The model's pod names (``api-<template>-<serial>``) are not Kubernetes names: the reader's ``pod`` ->
``workload`` mapping reads ``api-0-3`` as StatefulSet ``api-0``. Each pod is therefore written as
``<deployment>-<pod-template-hash>-<suffix>``, derived from the model pod's template version and name.

The one coupling to the simulator's internals: ``sim.prometheus.Prometheus`` has no public accessor for
the raw samples it holds, so ``_copy_scrape`` reads its latest per-pod samples, bucket counts and pool
gauges from its fields — reading, never recomputing, so the files hold what the simulator evaluates.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from promharness import OpenMetricsWriter

from perfpilot.api.spec import PoolExporter
from perfpilot.api.status import ContainerResources, PoolSize
from perfpilot.observe.presets import CADVISOR, POOL_PRESETS
from perfpilot.sim.cluster import CONTAINER, TICK_SECONDS, Cluster, ClusterParams
from perfpilot.sim.prometheus import LATENCY_BUCKETS_SECONDS, Prometheus
from perfpilot.sim.trace import Trace

LATENCY_HISTOGRAM = "http_request_duration_seconds"  # spec.metrics defaults
REQUESTS_TOTAL = "http_requests_total"
TICKS_PER_MINUTE = round(60 / TICK_SECONDS)


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
    # How long before the model's tick boundary each scrape is stamped. 0 writes the simulator's own instants,
    # which coincide with the reader's 60 s steps; real scrapes have a phase of their own.
    scrape_lead_seconds: int = 0
    scale_up: tuple[int, int] | None = None  # (minute index, replicas): spec.replicas set before that minute


@dataclass
class SimRun:
    """A workload after the run: the simulator's Prometheus (its evaluated signals) and what it was fed."""

    workload: SimWorkload
    prometheus: Prometheus
    start_seconds: int
    end_seconds: int
    pod_names: dict[str, str] = field(default_factory=dict)  # model pod name -> Kubernetes pod name


def _token(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def kubernetes_pod_name(workload: SimWorkload, *, template_version: int, model_name: str) -> str:
    """``<deployment>-<pod-template-hash>-<suffix>``: what the reader maps back to ``workload.deployment``."""
    template_hash = _token(f"{workload.namespace}/{workload.deployment}/{template_version}", 10)
    return f"{workload.deployment}-{template_hash}-{_token(model_name, 5)}"


def _pooler_pod(workload: SimWorkload) -> str:
    return f"{workload.pooler}-{_token(workload.pooler, 10)}-{_token(workload.pooler + '-0', 5)}"


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
    app_pod = kubernetes_pod_name(workload, template_version=cluster.pods[0].version, model_name=cluster.pods[0].name)
    errors_seen = False
    pending: list[tuple[int, tuple[float, ...]]] = []
    for minute, rate in enumerate(trace.rates_per_second):
        if workload.scale_up is not None and minute == workload.scale_up[0]:
            cluster.spec_replicas = workload.scale_up[1]
        for _ in range(TICKS_PER_MINUTE):
            tick = cluster.advance(rate_per_second=rate * workload.rate_factor, dt_seconds=TICK_SECONDS)
            prometheus.scrape(cluster=cluster, tick=tick, now=cluster.now_seconds)
            now = _whole_seconds(cluster.now_seconds) - workload.scrape_lead_seconds
            for pod in cluster.pods:
                run.pod_names.setdefault(
                    pod.name, kubernetes_pod_name(workload, template_version=pod.version, model_name=pod.name))
            _copy_pods(run, writer, at_seconds=now)
            counts = prometheus._buckets[-1][1]
            pending.append((now, counts))
            errors_seen = errors_seen or counts[-1] > 0
            _copy_pool(workload, prometheus._pool, writer, at_seconds=now)
        prometheus.evaluate(cluster.now_seconds)
        run.end_seconds = _whole_seconds(cluster.now_seconds)
    for now, counts in pending:
        _copy_application(workload, app_pod, counts, writer, at_seconds=now, with_errors=errors_seen)
    return run


def _copy_pods(run: SimRun, writer: OpenMetricsWriter, *, at_seconds: int) -> None:
    """The per-pod samples the simulator's Prometheus holds after this scrape (deleted pods are gone)."""
    for model_name, series in run.prometheus._pods.items():
        pod = run.pod_names[model_name]
        for container in (CONTAINER, ""):  # the container, and the pod cgroup the reader must not count twice
            labels = {"namespace": run.workload.namespace, "pod": pod, "container": container}
            writer.counter(CADVISOR.cpu_usage_seconds_total, labels, at_seconds=at_seconds, value=series.cpu[-1][1])
            writer.counter(CADVISOR.cfs_periods_total, labels, at_seconds=at_seconds, value=series.periods[-1][1])
            writer.counter(CADVISOR.cfs_throttled_periods_total, labels, at_seconds=at_seconds,
                           value=series.throttled[-1][1])
            writer.gauge(CADVISOR.memory_working_set_bytes, labels, at_seconds=at_seconds, value=series.working_set)


def _copy_application(workload: SimWorkload, pod: str, counts: Sequence[float], writer: OpenMetricsWriter, *,
                      at_seconds: int, with_errors: bool) -> None:
    """``counts``: the simulator's cumulative bucket counts, then +Inf (all requests), then the errors."""
    labels = {"namespace": workload.namespace, "pod": pod}
    bounds = [*LATENCY_BUCKETS_SECONDS, math.inf]
    for bound, count in zip(bounds, counts[:-1], strict=True):
        le = "+Inf" if math.isinf(bound) else repr(bound)
        writer.add(LATENCY_HISTOGRAM, "histogram", f"{LATENCY_HISTOGRAM}_bucket", {**labels, "le": le},
                   at_seconds=at_seconds, value=count)
    writer.add(LATENCY_HISTOGRAM, "histogram", f"{LATENCY_HISTOGRAM}_count", labels, at_seconds=at_seconds,
               value=counts[-2])
    total, failed = counts[-2], counts[-1]
    writer.counter(REQUESTS_TOTAL, {**labels, "code": "200"}, at_seconds=at_seconds, value=total - failed)
    if with_errors:  # a service that never failed has no 5xx series at all (prometheus_client's labelled child)
        writer.counter(REQUESTS_TOTAL, {**labels, "code": "503"}, at_seconds=at_seconds, value=failed)


def _copy_pool(workload: SimWorkload, gauges: tuple[float, float, float], writer: OpenMetricsWriter, *,
               at_seconds: int) -> None:
    names = POOL_PRESETS[workload.exporter]
    labels = {"namespace": workload.namespace, "pod": _pooler_pod(workload), "database": "app", "user": "app"}
    server_active, client_waiting, max_wait = gauges
    writer.gauge(names.server_active, labels, at_seconds=at_seconds, value=server_active)
    writer.gauge(names.client_waiting, labels, at_seconds=at_seconds, value=client_waiting)
    if names.max_wait_microseconds_part is None:
        writer.gauge(names.max_wait_seconds, labels, at_seconds=at_seconds, value=max_wait)
    else:
        whole = math.floor(max_wait)
        writer.gauge(names.max_wait_seconds, labels, at_seconds=at_seconds, value=float(whole))
        writer.gauge(names.max_wait_microseconds_part, labels, at_seconds=at_seconds,
                     value=float(round((max_wait - whole) * 1e6)))
