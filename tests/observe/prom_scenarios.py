"""An hour of a small cluster, written as the metrics Kubernetes, the apps and pgBouncer exporters expose.

Workloads (namespace/name), chosen so each signal has a case that must come back right and a case that
must come back unknown:

- ``shop/api`` steady Deployment (two containers per pod, ``app`` and an injected ``istio-proxy`` sidecar
  that only a template naming it counts, plus the pod-cgroup and pause-container series cAdvisor also
  exposes, which must never be counted), 0.5 % errors, 2 % CFS throttling; its pgBouncer
  (prometheus-community exporter names) runs out of connections in the last 20 minutes: clients wait.
- ``media/stream`` bursty Deployment: load alternates every 5 minutes and two pods are added at minute 40;
  it never failed a request, so it has no 5xx series at all (the error ratio must be a measured 0).
- ``billing/invoices`` latency regression at minute 45, and a burst to 90 requests/s in minutes 10-14, before
  the 30-minute window: only a peak over a longer peak window sees it.
- ``search/index`` StatefulSet whose memory climbs; no CPU limit, so no CFS series.
- ``analytics/reports`` with a CloudNativePG Pooler ``warehouse`` (``cnpg_pgbouncer_*``, maxwait split into
  seconds and microseconds) beside another, ``warehouse-ro``, which its profile must not count; its memory
  (3x) and its pooler's connections in use (+20 per pod) spike for two scrapes between two 60 s steps at
  minute 20, which only a peak reading every scrape sees.
- ``ledger/books`` with two pgBouncer workloads serving its database from one ConfigMap, the second from
  minute 30, serving pool sizes 6 and 7; a third pgBouncer of the namespace (another ConfigMap's) serves the
  same database at 3, and exports only its pool size. shop's two pgBouncer pods serve 10, the second only
  since a reload at minute 50 (8 before).
- ``orders/cart`` whose app container restarts in both pods (the app's counters and cAdvisor's start again
  from 0): in one the same series resets at minute 40, in the other cAdvisor shows the new container under a
  new ``id`` at minute 44 (a new series beside the old one, which is no longer scraped).
- ``quiet/idle`` (no traffic: p95 and error ratio are NaN; no CPU, so no CFS period: throttling a measured
  0), ``quiet/gappy`` (a 21-minute hole),
  ``quiet/gone`` (stopped 12 minutes before the evaluation time).

Timestamps are whole seconds on a 15 s scrape grid; the hour starts on a 2-hour boundary so promtool
writes one block, and the evaluation time is the hour's end.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from promharness import OpenMetricsWriter

START_SECONDS = 1_699_999_200  # 2023-11-14T22:00:00Z, a multiple of 7200
AT_SECONDS = START_SECONDS + 3600
SCRAPE_SECONDS = 15
LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
LATENCY_HISTOGRAM = "http_request_duration_seconds"
REQUESTS_TOTAL = "http_requests_total"
MIB = 2**20
LATENCY_SPREAD = 0.6  # sigma of the log-normal latency distribution

# The live-scraped prometheus_client app (conftest.live_app), labelled by the scrape config.
LIVE_NAMESPACE = "live"
LIVE_POD = "web-5d8f7c9b6d-bbcdf"
LIVE_LATENCY_SECONDS = 0.3  # every observation lands in the (0.25, 0.5] bucket
LIVE_REQUESTS_PER_SECOND = 50.0


def minute(t: int) -> int:
    return (t - START_SECONDS) // 60


# Two scrapes of minute 20 strictly between its 60 s steps: an instant selector at a step sees neither.
SPIKE_SECONDS = (START_SECONDS + 20 * 60 + 15, START_SECONDS + 20 * 60 + 30)


def between_steps_spike(t: int) -> bool:
    return t in SPIKE_SECONDS


@dataclass
class Workload:
    namespace: str
    name: str
    pods: list[str]
    request_rate: Callable[[int], float]  # requests per second for the whole workload
    median_latency_seconds: Callable[[int], float] = lambda t: 0.08
    error_share: float = 0.0
    cpu_cores_per_pod: Callable[[int], float] = lambda t: 0.3
    memory_bytes_per_pod: Callable[[int], float] = lambda t: 300.0 * MIB
    throttled_share: float | None = 0.02  # None: no CPU limit, so cAdvisor writes no CFS series
    sidecar: bool = False
    pod_start_seconds: dict[str, int] = field(default_factory=dict)
    stops_at_seconds: int | None = None
    gap_seconds: tuple[int, int] | None = None  # no scrapes in [start, end)
    # pod -> (the first scrape after its app container restarted, whether cAdvisor shows the new container
    # under a new id, i.e. a new series, rather than the same series reset)
    restarts: dict[str, tuple[int, bool]] = field(default_factory=dict)

    def scraped(self, pod: str, t: int) -> bool:
        if t < self.pod_start_seconds.get(pod, START_SECONDS):
            return False
        if self.stops_at_seconds is not None and t >= self.stops_at_seconds:
            return False
        return not (self.gap_seconds is not None and self.gap_seconds[0] <= t < self.gap_seconds[1])

    def live_pods(self, t: int) -> list[str]:
        return [pod for pod in self.pods if t >= self.pod_start_seconds.get(pod, START_SECONDS)]


def share_below(bound: float, median: float) -> float:
    if math.isinf(bound):
        return 1.0
    return 0.5 * (1 + math.erf(math.log(bound / median) / (LATENCY_SPREAD * math.sqrt(2))))


def _wiggle(t: int, amplitude: float) -> float:
    return 1 + amplitude * math.sin(t / 300.0)


WORKLOADS = [
    Workload("shop", "api", ["api-7d9f8b6c4d-x2k9z", "api-7d9f8b6c4d-q8w7f"],
             request_rate=lambda t: 50 * _wiggle(t, 0.02), error_share=0.005, sidecar=True),
    Workload("media", "stream", ["stream-5b7c9d8f6-h4k2p", "stream-5b7c9d8f6-m7n8q",
                                 "stream-5b7c9d8f6-r2s5t", "stream-5b7c9d8f6-w5x6z"],
             request_rate=lambda t: 120.0 if (minute(t) // 5) % 2 else 20.0,
             median_latency_seconds=lambda t: 0.2 if (minute(t) // 5) % 2 else 0.06,
             cpu_cores_per_pod=lambda t: 0.9 if (minute(t) // 5) % 2 else 0.2,
             pod_start_seconds={"stream-5b7c9d8f6-r2s5t": START_SECONDS + 2400,
                                "stream-5b7c9d8f6-w5x6z": START_SECONDS + 2400}),
    Workload("billing", "invoices", ["invoices-6f5d4c5b4b-b4c2d", "invoices-6f5d4c5b4b-f5f4g"],
             request_rate=lambda t: 90.0 if 10 <= minute(t) < 15 else 30.0, error_share=0.01,
             median_latency_seconds=lambda t: 0.4 if minute(t) >= 45 else 0.05),
    Workload("search", "index", ["index-0", "index-1"], request_rate=lambda t: 10.0,
             memory_bytes_per_pod=lambda t: (400 + 500 * (t - START_SECONDS) / 3600) * MIB,
             throttled_share=None),
    Workload("analytics", "reports", ["reports-84c6d7b9f5-q4w2f"], request_rate=lambda t: 5.0,
             memory_bytes_per_pod=lambda t: (900.0 if between_steps_spike(t) else 300.0) * MIB),
    Workload("ledger", "books", ["books-6b7c8d9f5-k2m4p"], request_rate=lambda t: 12.0),
    Workload("orders", "cart", ["cart-6c8d9f7b5-j2k4l", "cart-6c8d9f7b5-n5p6q"], request_rate=lambda t: 40.0,
             error_share=0.01, restarts={"cart-6c8d9f7b5-j2k4l": (START_SECONDS + 40 * 60 + 30, False),
                                         "cart-6c8d9f7b5-n5p6q": (START_SECONDS + 44 * 60 + 15, True)}),
    Workload("quiet", "idle", ["idle-55d8c9f7b6-b4b2c"], request_rate=lambda t: 0.0, cpu_cores_per_pod=lambda t: 0.0),
    Workload("quiet", "gappy", ["gappy-55d8c9f7b6-d5f4f"], request_rate=lambda t: 8.0,
             gap_seconds=(START_SECONDS + 32 * 60, START_SECONDS + 53 * 60)),
    Workload("quiet", "gone", ["gone-55d8c9f7b6-g5h6j"], request_rate=lambda t: 8.0,
             stops_at_seconds=START_SECONDS + 48 * 60),
]


@dataclass
class Pooler:
    namespace: str
    pods: list[str]
    names: tuple[str, str, str]  # server active, client waiting, maxwait (seconds)
    maxwait_us: str | None
    server_active_per_pod: Callable[[int], float]
    client_waiting_per_pod: Callable[[int], float]
    max_wait_seconds: Callable[[int], float]
    starts_at_minute: int = 0  # scraped from then on
    # The pool size each pod serves for database app (SHOW DATABASES; "reporting" is served at 3), by pod
    # name, as the prometheus-community exporter labels it: the database's name in ``name``, the server-side
    # one in ``database``. None: not exported (CloudNativePG's poolers here).
    pool_size_served: Callable[[str, int], float] | None = None


COMMUNITY_NAMES = ("pgbouncer_pools_server_active_connections", "pgbouncer_pools_client_waiting_connections",
                   "pgbouncer_pools_client_maxwait_seconds")
POOL_SIZE_SERVED = "pgbouncer_databases_pool_size"
CNPG_NAMES = ("cnpg_pgbouncer_pools_sv_active", "cnpg_pgbouncer_pools_cl_waiting", "cnpg_pgbouncer_pools_maxwait")

POOLERS = [
    # shop's pgBouncer: 8 of 10 connections per pod, then saturated with clients waiting from minute 40.
    Pooler("shop", ["pgbouncer-6c8d9f7b5-k2j4m", "pgbouncer-6c8d9f7b5-p9x8z"], COMMUNITY_NAMES, None,
           server_active_per_pod=lambda t: 10.0 if minute(t) >= 40 else 8.0,
           client_waiting_per_pod=lambda t: float(max(0, minute(t) - 40)) / 2,
           max_wait_seconds=lambda t: 0.05 * max(0, minute(t) - 40),
           # The first pod serves 10; the second served 8 until it was reloaded at minute 50.
           pool_size_served=lambda pod, t: 8.0 if pod.endswith("p9x8z") and minute(t) < 50 else 10.0),
    Pooler("analytics", ["warehouse-6d7f8c9b5-z9z8x"], CNPG_NAMES, "cnpg_pgbouncer_pools_maxwait_us",
           server_active_per_pod=lambda t: 3.0 + (minute(t) % 3) + (20.0 if between_steps_spike(t) else 0.0),
           client_waiting_per_pod=lambda t: 0.0,
           max_wait_seconds=lambda t: 1.25 if minute(t) >= 50 else 0.0),
    # ledger's two pgBouncers (one ConfigMap): their connections add up, the pool's oldest wait is the longer
    # one's, and its history is the longer-watched one's (the second joined at minute 30), not the two added.
    Pooler("ledger", ["pgbouncer-a-5d6f7b8c9-q2w4x"], COMMUNITY_NAMES, None,
           server_active_per_pod=lambda t: 5.0, client_waiting_per_pod=lambda t: 0.0,
           max_wait_seconds=lambda t: 1.0, pool_size_served=lambda pod, t: 6.0),
    Pooler("ledger", ["pgbouncer-b-7d8c9f6b5-h4j5k"], COMMUNITY_NAMES, None,
           server_active_per_pod=lambda t: 2.0, client_waiting_per_pod=lambda t: 1.0,
           max_wait_seconds=lambda t: 4.0 if minute(t) >= 55 else 0.0, starts_at_minute=30,
           pool_size_served=lambda pod, t: 7.0),
    # Another Pooler of the same cluster in the same namespace (read-only replicas): a profile naming
    # `warehouse` counts none of its connections.
    Pooler("analytics", ["warehouse-ro-5c6d7f8b9-x2x4z"], CNPG_NAMES, "cnpg_pgbouncer_pools_maxwait_us",
           server_active_per_pod=lambda t: 40.0, client_waiting_per_pod=lambda t: 7.0,
           max_wait_seconds=lambda t: 9.0),
]


def _write_workload(writer: OpenMetricsWriter, workload: Workload) -> None:
    requests: dict[str, float] = {}
    failed: dict[str, float] = {}
    buckets: dict[str, list[float]] = {}
    latency_sum: dict[str, float] = {}
    cpu: dict[tuple[str, str], float] = {}
    periods: dict[tuple[str, str], float] = {}
    throttled: dict[tuple[str, str], float] = {}
    pod_cgroup: dict[str, float] = {}
    containers = ["app", "istio-proxy"] if workload.sidecar else ["app"]
    # Counters start well above zero, as on a long-running pod, so rate() never extrapolates toward zero.
    for t in range(START_SECONDS, AT_SECONDS + 1, SCRAPE_SECONDS):
        live = workload.live_pods(t)
        for pod in live:
            share = workload.request_rate(t - SCRAPE_SECONDS) * SCRAPE_SECONDS / len(live)
            median = workload.median_latency_seconds(t - SCRAPE_SECONDS)
            restart_at, new_id = workload.restarts.get(pod, (None, False))
            if t == restart_at:
                # The app process and its container started again just after the last scrape: every counter
                # of theirs counts from 0 (the pod's cgroup, which outlives the container, goes on).
                requests[pod], failed[pod], latency_sum[pod] = 0.0, 0.0, 0.0
                buckets[pod] = [0.0 for _ in LATENCY_BOUNDS]
                cpu[(pod, "app")], periods[(pod, "app")], throttled[(pod, "app")] = 0.0, 0.0, 0.0
            generation = int(restart_at is not None and t >= restart_at)
            container_id = {"id": f"/kubepods/{pod}/app-{generation if new_id else 0}"} if workload.restarts else {}
            requests[pod] = requests.get(pod, 1000.0) + share * (1 - workload.error_share)
            failed[pod] = failed.get(pod, 10.0) + share * workload.error_share
            counts = buckets.setdefault(pod, [500.0 * share_below(b, 0.08) for b in LATENCY_BOUNDS])
            for index, bound in enumerate(LATENCY_BOUNDS):
                counts[index] += share * share_below(bound, median)
            latency_sum[pod] = latency_sum.get(pod, 40.0) + share * median
            for container in containers:
                cores = workload.cpu_cores_per_pod(t - SCRAPE_SECONDS) * (1.0 if container == "app" else 0.2)
                cpu[(pod, container)] = cpu.get((pod, container), 5000.0) + cores * SCRAPE_SECONDS
                # The kernel counts CFS periods only while the container has work: an idle one runs none.
                ran = 10 * SCRAPE_SECONDS if cores > 0 else 0
                periods[(pod, container)] = periods.get((pod, container), 9000.0) + ran
                throttled[(pod, container)] = throttled.get((pod, container), 100.0) + ran * (
                    workload.throttled_share or 0.0)
                pod_cgroup[pod] = pod_cgroup.get(pod, 5000.0 * len(containers)) + cores * SCRAPE_SECONDS
            if not workload.scraped(pod, t):
                continue
            labels = {"namespace": workload.namespace, "pod": pod, "job": "app"}
            writer.counter(REQUESTS_TOTAL, {**labels, "code": "200"}, at_seconds=t, value=requests[pod])
            if workload.error_share:
                writer.counter(REQUESTS_TOTAL, {**labels, "code": "500"}, at_seconds=t, value=failed[pod])
            writer.histogram(LATENCY_HISTOGRAM, labels, at_seconds=t,
                             cumulative=list(zip(LATENCY_BOUNDS, counts, strict=True)),
                             total_sum=latency_sum[pod])
            kubelet = {"namespace": workload.namespace, "pod": pod, "job": "kubelet"}
            memory = workload.memory_bytes_per_pod(t)
            for container in containers:
                at_container = {**kubelet, "container": container, **(container_id if container == "app" else {})}
                writer.counter("container_cpu_usage_seconds_total", at_container, at_seconds=t,
                               value=cpu[(pod, container)])
                share_of_memory = 1.0 if container == "app" else 0.1
                writer.gauge("container_memory_working_set_bytes", at_container, at_seconds=t,
                             value=memory * share_of_memory)
                if workload.throttled_share is not None:
                    writer.counter("container_cpu_cfs_periods_total", at_container, at_seconds=t,
                                   value=periods[(pod, container)])
                    writer.counter("container_cpu_cfs_throttled_periods_total", at_container, at_seconds=t,
                                   value=throttled[(pod, container)])
            # cAdvisor's pod cgroup (container="") and pause container: counting them would double usage.
            writer.counter("container_cpu_usage_seconds_total", {**kubelet, "container": ""}, at_seconds=t,
                           value=pod_cgroup[pod])
            writer.counter("container_cpu_usage_seconds_total", {**kubelet, "container": "POD"}, at_seconds=t,
                           value=1.0 + 0.001 * (t - START_SECONDS))
            writer.gauge("container_memory_working_set_bytes", {**kubelet, "container": ""}, at_seconds=t,
                         value=memory * 1.5)


def _write_pooler(writer: OpenMetricsWriter, pooler: Pooler) -> None:
    active_name, waiting_name, wait_name = pooler.names
    for t in range(START_SECONDS + 60 * pooler.starts_at_minute, AT_SECONDS + 1, SCRAPE_SECONDS):
        for pod in pooler.pods:
            for database, factor in (("app", 1.0), ("reporting", 0.5)):
                labels = {"namespace": pooler.namespace, "pod": pod, "database": database, "user": "app"}
                writer.gauge(active_name, labels, at_seconds=t, value=pooler.server_active_per_pod(t) * factor)
                writer.gauge(waiting_name, labels, at_seconds=t, value=pooler.client_waiting_per_pod(t) * factor)
                wait = pooler.max_wait_seconds(t) * factor
                if pooler.maxwait_us is None:
                    writer.gauge(wait_name, labels, at_seconds=t, value=wait)
                else:
                    writer.gauge(wait_name, labels, at_seconds=t, value=float(math.floor(wait)))
                    writer.gauge(pooler.maxwait_us, labels, at_seconds=t,
                                 value=round((wait - math.floor(wait)) * 1e6))
                if pooler.pool_size_served is not None:
                    served = pooler.pool_size_served(pod, t) if database == "app" else 3.0
                    writer.gauge(POOL_SIZE_SERVED, {"namespace": pooler.namespace, "pod": pod, "name": database,
                                                    "database": f"{database}_db"}, at_seconds=t, value=served)


# Another pgBouncer of ledger's namespace, on its own ConfigMap, serving database app at pool size 3.
LEDGER_OTHER_POOLER_POD = "pgbouncer-ro-6f7d8c9b5-t5v6w"


def build_cluster(*, pool_size_served: bool = True) -> OpenMetricsWriter:
    """The hour; without ``pool_size_served`` the pgBouncers export no pool size (as an exporter without the
    series: the configured pool is then taken as served)."""
    writer = OpenMetricsWriter()
    for workload in WORKLOADS:
        _write_workload(writer, workload)
    for pooler in POOLERS:
        _write_pooler(writer, pooler if pool_size_served else dataclasses.replace(pooler, pool_size_served=None))
    for t in range(START_SECONDS, AT_SECONDS + 1, SCRAPE_SECONDS) if pool_size_served else ():
        writer.gauge(POOL_SIZE_SERVED, {"namespace": "ledger", "pod": LEDGER_OTHER_POOLER_POD, "name": "app",
                                        "database": "app_db"}, at_seconds=t, value=3.0)
    return writer


def workload_named(namespace: str, name: str) -> Workload:
    return next(w for w in WORKLOADS if (w.namespace, w.name) == (namespace, name))
