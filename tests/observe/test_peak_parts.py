"""Peaks too heavy for the server, read in parts: on a real Prometheus whose --query.max-samples refuses them.

shop/api's peaks over an hour hold 246-798 points at once (Prometheus' ``peakSamples``), its 2-minute
window signals at most 171: a server limited to 200 refuses every whole peak and answers every window
query, and the same peaks must come back from their parts as from a server without the limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest
from prom_scenarios import AT_SECONDS
from promharness import OpenMetricsWriter, PrometheusServer, RecordingProxy, running_prometheus

from perfpilot.api.spec import PerformanceProfile
from perfpilot.api.status import ContainerResources
from perfpilot.observe.promql import PeakSubquery
from perfpilot.observe.reader import PrometheusSettings
from perfpilot.observe.snapshot import MAX_PEAK_HALVINGS, ProfileTarget, fetch_observations, plan_queries
from perfpilot.tuning.observations import LiveConfig, Observations, Series, Unknown

pytestmark = pytest.mark.integration

AT = datetime.fromtimestamp(AT_SECONDS, tz=UTC)
PART_OFFSET = re.compile(r"\] offset \d+m?s\)$")  # a part's offset: on the subquery, at the very end
LIVE = LiveConfig(hpa=None, containers=(
    ContainerResources(name="app", cpu_request_millicores=500, cpu_limit_millicores=1000,
                       memory_request_bytes=512 * 2**20),))
PEAKS = [f.name for f in fields(Observations) if f.name.startswith("peak_")
         and f.name not in ("peak_window_seconds", "peak_memory_working_set_bytes_by_container")]
PEAKS += ["cpu_history_seconds", "pool_history_seconds"]


def _target() -> ProfileTarget:
    profile = PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"targetRef": {"kind": "Deployment", "name": "api"},
                 "guardrails": {"window": "2m", "interval": "60s", "peakWindow": "1h"},
                 "pool": {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}, "database": "app"}}},
    })
    return ProfileTarget(profile, LIVE)


def _limited(tmp_path_factory: pytest.TempPathFactory, cluster: OpenMetricsWriter,
             max_samples: int) -> Iterator[PrometheusServer]:
    workdir = tmp_path_factory.mktemp(f"prometheus-max-samples-{max_samples}")
    with running_prometheus(workdir=workdir, openmetrics=cluster.render(),
                            extra_args=[f"--query.max-samples={max_samples}"]) as server:
        yield server


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, cluster: OpenMetricsWriter) -> Iterator[PrometheusServer]:
    yield from _limited(tmp_path_factory, cluster, 200)


def _settings(url: str) -> PrometheusSettings:
    return PrometheusSettings(url=url, step_seconds=60, rate_window_seconds=120)


def _observe(url: str, *, at: datetime = AT) -> Observations:
    return fetch_observations([_target()], at=at, settings=_settings(url))[("shop", "api")]


def _queries(proxy: RecordingProxy) -> list[str]:
    return [sent["query"] for sent in proxy.queries_seen]


@pytest.mark.parametrize("at", [AT, AT + timedelta(seconds=17)], ids=["on-a-step", "off-a-step"])
def test_peaks_the_server_refuses_whole_are_read_in_parts_and_equal_the_whole(
    prometheus: PrometheusServer, limited: PrometheusServer, at: datetime
) -> None:
    whole = _observe(prometheus.url, at=at)
    proxy = RecordingProxy(limited.url)
    try:
        parts = _observe(proxy.url, at=at)
    finally:
        proxy.close()
    # The limit refused every peak and history whole (each was then asked in parts, the older ones with an
    # offset on the subquery) and let every window signal through.
    sent = _queries(proxy)
    plan = plan_queries([_target().profile], _settings(limited.url), templates={("shop", "api"): ("app",)})
    subqueries = [q.promql for q in plan.queries if isinstance(q.query, PeakSubquery)]
    assert len(subqueries) == 8
    for promql in subqueries:
        head = promql.rsplit("[", 1)[0]
        assert promql in sent and any(q.startswith(head) and PART_OFFSET.search(q) for q in sent), promql
    for name in ("latency_p95_seconds", "request_rate_per_second", "cpu_usage_millicores_per_pod",
                 "pool_server_active"):
        assert isinstance(getattr(parts, name), Series), (name, getattr(parts, name))
    # Equal, the histories exactly (a step counted by two parts would add a minute to them), the peaks to the
    # last bits a sum's order leaves to chance (Prometheus adds a group's series in no fixed order).
    for name in PEAKS:
        expected, found = getattr(whole, name), getattr(parts, name)
        assert isinstance(expected, float) and isinstance(found, float), (name, expected, found)
        assert found == (expected if name.endswith("history_seconds") else pytest.approx(expected, rel=1e-12)), name
    assert parts.peak_memory_working_set_bytes_by_container == pytest.approx(
        whole.peak_memory_working_set_bytes_by_container, rel=1e-12)
    assert parts.peak_memory_working_set_bytes_by_container["app"] == pytest.approx(300 * 2**20)


def test_a_peak_too_heavy_even_in_its_smallest_parts_is_unknown_and_says_what_to_change(
    tmp_path_factory: pytest.TempPathFactory, cluster: OpenMetricsWriter
) -> None:
    server_iterator = _limited(tmp_path_factory, cluster, 5)
    server = next(server_iterator)
    proxy = RecordingProxy(server.url)
    try:
        observed = _observe(proxy.url)
    finally:
        proxy.close()
        next(server_iterator, None)
    peak = observed.peak_cpu_usage_millicores_total
    assert isinstance(peak, Unknown)
    # An hour halved 5 times: parts of under 2 minutes.
    assert re.search(r"too many samples even for 1m\d+s of the peak window, after 5 halvings", peak.reason), peak.reason
    assert "--query.max-samples" in peak.reason and "peakWindow" in peak.reason
    # It gives up at the first part refused at the smallest size: the whole, then one part per halving.
    cpu_peaks = [query for query in _queries(proxy) if query.startswith("max_over_time((1000 * sum")]
    assert len(cpu_peaks) == 1 + MAX_PEAK_HALVINGS


def _observe_refused(url: str, *, refusal: bytes) -> tuple[Observations, list[str]]:
    """Observations through a proxy that answers every whole one-hour peak and history with ``refusal``
    (HTTP 422) and passes the rest, their parts among them, to the server; and the queries it saw."""
    proxy = RecordingProxy(url)
    proxy.answer_for = lambda query: (422, refusal) if query.endswith("[3600s:60s])") else None
    try:
        return _observe(proxy.url), _queries(proxy)
    finally:
        proxy.close()


def test_a_refusal_wrapped_in_a_long_message_of_another_store_is_still_read_in_parts(
    prometheus: PrometheusServer,
) -> None:
    # A Thanos-like query frontend wraps Prometheus' error in text of its own, longer than the reader keeps of
    # an answer's body: the limit is found in the answer's error field, whatever its length.
    whole = _observe(prometheus.url)
    wrapped = json.dumps({"status": "error", "errorType": "execution", "error": (
        "rpc error: code = Aborted desc = receive series from store " + "x" * 400
        + ": query processing would load too many samples into memory in query execution")}).encode()
    parts, sent = _observe_refused(prometheus.url, refusal=wrapped)
    assert parts.peak_cpu_usage_millicores_total == pytest.approx(whole.peak_cpu_usage_millicores_total, rel=1e-12)
    assert parts.cpu_history_seconds == whole.cpu_history_seconds
    assert any(PART_OFFSET.search(query) for query in sent)


def test_victoriametrics_refusing_a_peak_over_its_samples_limit_gets_it_read_in_parts(
    prometheus: PrometheusServer,
) -> None:
    # The shape of VictoriaMetrics' 422 answer: the Prometheus error envelope around its own text.
    whole = _observe(prometheus.url)
    refusal = json.dumps({"status": "error", "errorType": "422", "error": (
        "error when executing query on the time range: cannot fetch query results from vmstorage nodes: "
        "cannot process MetricBlock #1: cannot select more than -search.maxSamplesPerQuery=200 samples; "
        "possible solutions: increase the limit; reduce time range for the query")}).encode()
    parts, sent = _observe_refused(prometheus.url, refusal=refusal)
    assert parts.peak_cpu_usage_millicores_total == pytest.approx(whole.peak_cpu_usage_millicores_total, rel=1e-12)
    assert parts.peak_request_rate_per_second == pytest.approx(whole.peak_request_rate_per_second, rel=1e-12)
    assert parts.cpu_history_seconds == whole.cpu_history_seconds
    assert any(PART_OFFSET.search(query) for query in sent)


def test_a_refusal_for_another_limit_is_not_read_in_parts(prometheus: PrometheusServer) -> None:
    # Only a samples limit is met by a shorter span: VictoriaMetrics' limit on the series a query matches is
    # as far off for a part as for the whole, so its refusal is a failed query, asked once.
    refusal = json.dumps({"status": "error", "errorType": "422", "error": (
        "error when executing query: cannot find metric names: the number of matching timeseries exceeds "
        "300000; either narrow down the search or increase -search.maxUniqueTimeseries command-line flag "
        "value")}).encode()
    observed, sent = _observe_refused(prometheus.url, refusal=refusal)
    peak = observed.peak_cpu_usage_millicores_total
    assert isinstance(peak, Unknown) and "HTTP 422" in peak.reason, peak
    assert not any(PART_OFFSET.search(query) for query in sent)
