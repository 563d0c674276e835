"""Which pods the production queries attribute to a workload, evaluated by a real Prometheus.

The queries derive ``workload`` from the ``pod`` label with two nested ``label_replace`` calls (StatefulSet
form first, then the Deployment form, which wins where both match). This module backfills a Prometheus with
cAdvisor series (one ``app`` container per pod) for pods that sit side by side in namespace ``shop``:

=================================  ===============  ========  =========
pod                                owner            CPU       memory
=================================  ===============  ========  =========
``api-7d9f8b6c4d-x2k9z``           Deployment api   100m      100 MiB
``api-7d9f8b6c4d-42545``           Deployment api   200m      200 MiB
``api-migrations-x7k2p``           Job              400m      400 MiB
``api-fluentbit-r2d2x``            DaemonSet        800m      800 MiB
``backup-29456788-x7k2p``          CronJob          1600m     1600 MiB
``index-12``                       StatefulSet      700m      700 MiB
``web-frontend-5b7c9d8f6-h4k2p``   Deployment       250m      250 MiB
=================================  ===============  ========  =========

The usages are distinct (api's and the three others' are powers of two), so every sum and mean below names
the set of pods that produced it. ``api-7d9f8b6c4d-42545`` (all-digit suffix) matches the StatefulSet form
too: only the Deployment form applied last gives it to ``api``. Expected values are worked out by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from promharness import OpenMetricsWriter, PrometheusServer, running_prometheus

from perfpilot.api.spec import PerformanceProfile
from perfpilot.api.status import ContainerResources
from perfpilot.observe.promql import PeakName, SignalName
from perfpilot.observe.reader import PrometheusReader, PrometheusSettings
from perfpilot.observe.snapshot import CycleObservations, ProfileTarget, fetch_observations, plan_queries
from perfpilot.tuning.observations import LiveConfig, Series

pytestmark = pytest.mark.integration

START_SECONDS = 1_699_999_200  # 2023-11-14T22:00:00Z, on a 2-hour block boundary
AT_SECONDS = START_SECONDS + 3600
AT = datetime.fromtimestamp(AT_SECONDS, tz=UTC)
SCRAPE_SECONDS = 15
MIB = 1_048_576

# pod -> (CPU millicores, working set MiB), all in namespace shop, container "app".
PODS = {
    "api-7d9f8b6c4d-x2k9z": (100, 100),
    "api-7d9f8b6c4d-42545": (200, 200),
    "api-migrations-x7k2p": (400, 400),
    "api-fluentbit-r2d2x": (800, 800),
    "backup-29456788-x7k2p": (1600, 1600),
    "index-12": (700, 700),
    "web-frontend-5b7c9d8f6-h4k2p": (250, 250),
}
APP = LiveConfig(hpa=None, containers=(
    ContainerResources(name="app", cpu_request_millicores=500, memory_request_bytes=512 * MIB),))


def _cadvisor_hour() -> str:
    writer = OpenMetricsWriter()
    for t in range(START_SECONDS, AT_SECONDS + 1, SCRAPE_SECONDS):
        for pod, (millicores, mebibytes) in PODS.items():
            labels = {"namespace": "shop", "pod": pod, "container": "app", "job": "kubelet"}
            # A steady counter started well above zero: its rate is exactly the pod's usage.
            writer.counter("container_cpu_usage_seconds_total", labels, at_seconds=t,
                           value=1000.0 + millicores * (t - START_SECONDS) / 1000)
            writer.gauge("container_memory_working_set_bytes", labels, at_seconds=t, value=float(mebibytes * MIB))
    return writer.render()


@pytest.fixture(scope="module")
def workload_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with running_prometheus(workdir=tmp_path_factory.mktemp("workload-label"), openmetrics=_cadvisor_hour()) as server:
        yield server


def _profile(name: str, kind: str) -> PerformanceProfile:
    return PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"targetRef": {"kind": kind, "name": name},
                 "guardrails": {"window": "30m", "interval": "60s", "peakWindow": "30m"},
                 "metrics": {"prometheusURL": ""}},
    })


def _settings(url: str) -> PrometheusSettings:
    return PrometheusSettings(url=url, step_seconds=60, rate_window_seconds=120)


@pytest.fixture(scope="module")
def observed(workload_prometheus: PrometheusServer) -> CycleObservations:
    targets = [ProfileTarget(_profile("api", "Deployment"), APP),
               ProfileTarget(_profile("web-frontend", "Deployment"), APP),
               ProfileTarget(_profile("index", "StatefulSet"), APP)]
    return fetch_observations(targets, at=AT, settings=_settings(workload_prometheus.url))


def _series(signal: object) -> Series:
    assert isinstance(signal, Series), signal
    return signal


def test_deployment_api_counts_its_two_replicaset_pods_and_not_its_job_daemonset_or_cronjob_neighbours(
        observed: CycleObservations) -> None:
    api = observed[("shop", "api")]
    replicas = _series(api.replicas)
    assert len(replicas.values) == 31  # 30 minutes at a 60 s step, both ends included
    assert set(replicas.values) == {2.0}
    # (100m + 200m) / 2; with the Job's, DaemonSet's or CronJob's pod it would be 233m, 367m or 633m or more.
    assert _series(api.cpu_usage_millicores_per_pod).values == pytest.approx([150.0] * 31, rel=1e-9)
    assert api.peak_cpu_usage_millicores_total == pytest.approx(300.0, rel=1e-9)  # 100m + 200m
    # The larger pod of the two; any of the other three would make it 400 MiB or more.
    assert _series(api.memory_working_set_bytes_per_pod).latest == 209_715_200.0  # 200 MiB


def test_web_frontend_and_statefulset_index_each_read_only_their_own_pod(observed: CycleObservations) -> None:
    web = observed[("shop", "web-frontend")]
    assert set(_series(web.replicas).values) == {1.0}
    assert _series(web.cpu_usage_millicores_per_pod).latest == pytest.approx(250.0, rel=1e-9)
    assert _series(web.memory_working_set_bytes_per_pod).latest == 262_144_000.0  # 250 MiB
    index = observed[("shop", "index")]
    assert set(_series(index.replicas).values) == {1.0}
    assert _series(index.cpu_usage_millicores_per_pod).latest == pytest.approx(700.0, rel=1e-9)
    assert _series(index.memory_working_set_bytes_per_pod).latest == 734_003_200.0  # 700 MiB


def test_pods_matching_neither_pattern_get_no_workload_label_from_the_production_query(
        workload_prometheus: PrometheusServer) -> None:
    """The planned replica-count and CPU-total queries, as the reader sends them: the Job's, DaemonSet's and
    CronJob's pods end up together in the one group without a ``workload`` label (PromQL's label_replace adds
    none where the pattern does not match), not under their own pod names."""
    settings = _settings(workload_prometheus.url)
    plan = plan_queries([_profile("api", "Deployment")], settings)
    promql = {query.signal: query.promql for query in plan.queries}
    with PrometheusReader(settings) as reader:
        def at_end(signal: SignalName | PeakName) -> dict[tuple[str, str | None], float]:
            found = reader.query_range(promql[signal], signal=signal.value, end=AT, window_seconds=0, step_seconds=60)
            return {(s.labels["namespace"], s.labels.get("workload")): float(s.samples[-1][1]) for s in found}

        replicas = at_end(SignalName.REPLICAS)
        cpu_total = at_end(PeakName.CPU_USAGE_TOTAL)
    assert replicas == {("shop", "api"): 2.0, ("shop", "web-frontend"): 1.0, ("shop", "index"): 1.0,
                        ("shop", None): 3.0}
    # 100m + 200m; 250m; 700m; and 400m + 800m + 1600m for the three pods without a workload.
    assert cpu_total == pytest.approx({("shop", "api"): 300.0, ("shop", "web-frontend"): 250.0,
                                       ("shop", "index"): 700.0, ("shop", None): 2800.0}, rel=1e-9)
