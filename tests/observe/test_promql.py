"""PromQL builders: one query per signal and shape, namespaces combined, workload from the pod name."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from perfpilot.api.spec import Metrics, PerformanceProfile, Pgbouncer
from perfpilot.api.status import ContainerResources
from perfpilot.observe.promql import (
    DEPLOYMENT_POD_PATTERN,
    STATEFULSET_POD_PATTERN,
    AppShape,
    PeakName,
    PeakSubquery,
    PoolShape,
    QueryBuildError,
    SignalName,
    error_ratio_query,
    freeze_matchers,
    list_labels_matched_when_missing,
    namespace_matcher,
    pool_served_size_query,
    pool_sum_query,
    quote,
    request_rate_query,
)
from perfpilot.observe.reader import PrometheusSettings
from perfpilot.observe.snapshot import POINT_QUERIES, ProfileTarget, Snapshot, plan_queries, template_containers
from perfpilot.tuning.observations import LiveConfig, Unknown


def profile(namespace: str, name: str, **spec: object) -> PerformanceProfile:
    return PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"targetRef": {"kind": "Deployment", "name": name}, **spec},
    })


SETTINGS = PrometheusSettings(url="http://prometheus:9090")
POOL = {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}}}


def test_the_number_of_queries_does_not_grow_with_profiles() -> None:
    one = plan_queries([profile("shop", "api", pool=POOL)], SETTINGS)
    thousand = plan_queries([profile(f"ns-{i % 40}", f"svc-{i}", pool=POOL) for i in range(1000)], SETTINGS)
    assert len(one.queries) == len(thousand.queries) == 23  # 12 signals, 5 peaks, 2 histories, 4 per container
    assert [q.signal for q in one.queries] == [q.signal for q in thousand.queries]


def test_namespaces_are_combined_in_one_sorted_regex() -> None:
    plan = plan_queries([profile("shop", "api"), profile("billing", "invoices"), profile("shop", "web")], SETTINGS)
    for query in plan.queries:
        # Every selector carries the one combined matcher, and no other namespace matcher exists.
        assert query.promql.count('{namespace=~"billing|shop"') == query.promql.count("namespace=") >= 1


def test_profiles_group_by_query_shape() -> None:
    renamed = {"latencyHistogram": "rpc_seconds", "requestsTotal": "rpc_total"}
    plan = plan_queries([profile("a", "x"), profile("b", "y", metrics=renamed), profile("c", "z")], SETTINGS)
    latency = [q.promql for q in plan.queries if q.signal is SignalName.LATENCY_P95]
    assert len(latency) == 2
    assert any('rpc_seconds_bucket{namespace=~"b"}' in q for q in latency)
    assert any('http_request_duration_seconds_bucket{namespace=~"a|c"}' in q for q in latency)
    # The container queries do not depend on the application's metric names: still one each.
    assert sum(q.signal is SignalName.CPU_USAGE for q in plan.queries) == 1


def test_the_workload_label_is_replaced_statefulset_first_then_deployment() -> None:
    # The outer label_replace wins where both patterns match; which pods each form gives to which workload is
    # evaluated by a real Prometheus in test_workload_label_on_prometheus.py.
    promql = plan_queries([profile("shop", "api")], SETTINGS).queries[0].promql
    statefulset_at = promql.index(quote(STATEFULSET_POD_PATTERN))
    deployment_at = promql.index(quote(DEPLOYMENT_POD_PATTERN))
    assert deployment_at > statefulset_at


def test_extra_matchers_are_quoted() -> None:
    shape = AppShape.from_metrics(Metrics(matchers={"job": 'say "hi"'}, error_matcher='status_code=~"5..",ok="no"'))
    promql = error_ratio_query(shape, namespaces=["shop"], rate_window_seconds=120)
    assert 'job="say \\"hi\\""' in promql
    assert 'status_code=~"5..",ok="no"' in promql


@pytest.mark.parametrize("error_matcher", ["code=5xx", "}", 'code=~"5..", or 1', 'code=~"5.."}'])
def test_the_query_builder_refuses_the_error_matchers_the_api_refuses(error_matcher: str) -> None:
    with pytest.raises(ValidationError):
        Metrics(error_matcher=error_matcher)
    # A model built without validation (as the operator-wide settings are) is refused by the builder too.
    with pytest.raises(QueryBuildError, match="errorMatcher"):
        AppShape.from_metrics(Metrics.model_construct(error_matcher=error_matcher))


@pytest.mark.parametrize(("label", "why"), [
    ("namespace", "set by perfpilot"), ("workload", "set by perfpilot"), ("__name__", "not a Prometheus label"),
    ("team-name", "not a Prometheus label"), ("9lives", "not a Prometheus label"),
])
def test_the_query_builder_refuses_the_matcher_labels_the_api_refuses(label: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        Metrics(matchers={label: "x"})
    with pytest.raises(QueryBuildError, match=why):
        freeze_matchers({label: "x"})


def test_operator_wide_container_matchers_follow_the_same_label_rules() -> None:
    settings = PrometheusSettings(url="http://prometheus:9090", container_matchers={"workload": "api"})
    with pytest.raises(QueryBuildError, match="'workload' label is set by perfpilot"):
        plan_queries([profile("shop", "api")], settings)


def test_the_two_pool_sums_differ_only_in_the_metric() -> None:
    shape = PoolShape.from_pgbouncer(Pgbouncer(config_map_ref={"name": "pgbouncer"}, database="app"))
    active = pool_sum_query(shape, shape.names.server_active, namespaces=["shop"])
    waiting = pool_sum_query(shape, shape.names.client_waiting, namespaces=["shop"])
    assert active.replace(shape.names.server_active, shape.names.client_waiting) == waiting
    assert active.startswith("sum by (namespace, workload, database) (label_replace(")


def test_a_bad_error_matcher_makes_only_that_profiles_application_signals_unknown() -> None:
    bad = profile("shop", "api")
    bad.spec.metrics = Metrics.model_construct(**{**dict(bad.spec.metrics), "error_matcher": "}"})
    plan = plan_queries([bad, profile("media", "x")], SETTINGS)
    assert (("shop", "api"), "app") in plan.shape_errors
    application = [q.promql for q in plan.queries if q.signal.value.startswith(("latency", "request", "error"))]
    assert application
    assert all(set(re.findall(r'namespace=~"([^"]*)"', q)) == {"media"} for q in application)
    # The bad profile's application signals are Unknown with the reason; the other profile's are queried.
    snapshot = Snapshot(at=datetime(2026, 1, 1, tzinfo=UTC), plan=plan, settings=SETTINGS, outcomes={})
    live = LiveConfig(hpa=None, containers=())
    bad_error_ratio = snapshot.observations(bad, live).error_ratio
    assert isinstance(bad_error_ratio, Unknown) and bad_error_ratio.reason.startswith("invalid spec.metrics: ")
    assert snapshot.observations(profile("media", "x"), live).error_ratio == Unknown("not queried")


def test_namespace_names_are_checked_before_they_reach_a_regex() -> None:
    with pytest.raises(QueryBuildError, match="not a Kubernetes namespace"):
        namespace_matcher(["shop|.*"])


def test_the_query_window_is_the_widest_profile_window_in_whole_steps() -> None:
    plan = plan_queries([profile("a", "x", guardrails={"window": "30m"}),
                         profile("b", "y", guardrails={"window": "45m30s", "interval": "60s"})], SETTINGS)
    assert plan.window_seconds == 2760  # 45m30s rounded up to 46 steps of 60 s


def test_each_peak_is_a_max_over_time_subquery_of_its_signal_over_the_widest_peak_window() -> None:
    plan = plan_queries([profile("shop", "api", pool=POOL, guardrails={"peakWindow": "6h"}),
                         profile("billing", "invoices", guardrails={"peakWindow": "48h"})], SETTINGS)
    assert plan.peak_window_seconds == 2 * 86400
    peaks = {q.signal: q.promql for q in plan.queries if isinstance(q.signal, PeakName)}
    assert set(peaks) == set(PeakName)
    histories = {name: peaks.pop(name) for name in (PeakName.CPU_HISTORY, PeakName.POOL_HISTORY)}
    for promql in peaks.values():
        assert promql.startswith("max_over_time((") and promql.endswith(")[172800s:60s])")
    # The CPU history counts the steps of its peak's own subquery that have a value; the pool history those of
    # the demand read with instant selectors (a step within 5 minutes of a scrape), as its peak but with each
    # gauge at the step's latest scrape rather than its largest: a step without a scrape of its own still counts.
    assert histories[PeakName.CPU_HISTORY] == "60 * count_over_time(" + peaks[PeakName.CPU_USAGE_TOTAL].removeprefix(
        "max_over_time(")
    largest_in_step = re.compile(r"max_over_time\((pgbouncer_pools_\w+\{[^}]*\})\[60s\]\)")
    assert largest_in_step.search(peaks[PeakName.POOL_DEMAND])
    assert histories[PeakName.POOL_HISTORY] == "60 * count_over_time(" + largest_in_step.sub(
        r"\1", peaks[PeakName.POOL_DEMAND]).removeprefix("max_over_time(")
    shape = AppShape.from_metrics(Metrics())
    rate = request_rate_query(shape, namespaces=["billing", "shop"], rate_window_seconds=120)
    assert peaks[PeakName.REQUEST_RATE] == f"max_over_time(({rate})[172800s:60s])"
    assert peaks[PeakName.CPU_USAGE_TOTAL].startswith("max_over_time((1000 * sum by (namespace, workload) (")
    # The rise: the same rate minus itself five minutes before (offset on the selector, as PromQL requires).
    rise = peaks[PeakName.REQUEST_RATE_RISE]
    assert rise.startswith(f"max_over_time(({rate} - sum by (namespace, workload) (")
    assert rise.count("[120s] offset 300s)") == 1 and rise.count("[120s])") == 1


def test_the_container_signals_name_the_template_containers_in_one_query_each() -> None:
    plan = plan_queries([profile("shop", "api"), profile("media", "stream")], SETTINGS,
                        templates={("shop", "api"): ["app", "worker"], ("media", "stream"): ["app"]})
    shape = plan.container_shape_for(("shop", "api"))
    assert plan.container_shape_for(("media", "stream")) == shape
    container_queries = [q for q in plan.queries if q.shape == shape]
    assert len(container_queries) == 11  # 4 signals, 2 peaks, the CPU history, 4 per container, for any number
    assert all('container=~"app|worker"' in q.promql for q in container_queries)
    assert all('namespace=~"media|shop"' in q.promql for q in container_queries)
    assert not any("container=~" in q.promql for q in plan.queries if q.shape != shape)


def test_a_profile_whose_template_is_unknown_counts_every_container_and_only_it() -> None:
    plan = plan_queries([profile("shop", "api"), profile("media", "stream")], SETTINGS,
                        templates={("shop", "api"): ["app"]})
    filtered, unfiltered = plan.container_shape_for(("shop", "api")), plan.container_shape_for(("media", "stream"))
    assert filtered.containers == ("app",) and unfiltered.containers == ()
    by_shape = {shape: [q.promql for q in plan.queries if q.shape == shape] for shape in (filtered, unfiltered)}
    assert len(by_shape[filtered]) == len(by_shape[unfiltered]) == 11
    assert all('container=~"app"' in q and 'namespace=~"shop"' in q for q in by_shape[filtered])
    assert all("container=~" not in q and 'namespace=~"media"' in q for q in by_shape[unfiltered])


def test_without_template_containers_every_container_counts() -> None:
    plan = plan_queries([profile("shop", "api")], SETTINGS)
    assert not any("container=~" in q.promql for q in plan.queries)


def test_a_container_name_that_is_not_a_dns_label_is_refused() -> None:
    with pytest.raises(QueryBuildError, match=r"not a Kubernetes container name: 'app\|\.\*'"):
        plan_queries([profile("shop", "api")], SETTINGS, templates={("shop", "api"): ["app|.*"]})


def test_each_targets_template_containers_are_its_pod_templates() -> None:
    def target(name: str, *containers: str) -> ProfileTarget:
        return ProfileTarget(profile("shop", name), LiveConfig(hpa=None, containers=tuple(
            ContainerResources(name=container) for container in containers)))

    assert template_containers([target("api", "app", "istio-proxy"), target("web")]) == {
        ("shop", "api"): ("app", "istio-proxy"), ("shop", "web"): ()}


@pytest.mark.parametrize(("matchers", "labels"), [
    ('code=~"5.."', ()),
    ('error_type!=""', ()),
    ('code=""', ("code",)),
    ('code!~"2..", method!="GET",', ("code", "method")),
    ('code=~"5..|"', ("code",)),
    ('code=~"5.*"', ()),
    ('code=~".*"', ("code",)),
    (r'path="/a=b, c!=\"d\"" , status_class !~ "2xx"', ("status_class",)),
    ('code=~"(?P<x>5)"', ()),  # Python reads this one; RE2 would too
])
def test_the_labels_a_matcher_list_also_matches_when_missing_are_read_past_its_quoted_values(
    matchers: str, labels: tuple[str, ...]
) -> None:
    assert list_labels_matched_when_missing(matchers) == labels


# --- a peak's span read in parts ------------------------------------------------------------------------


def _steps_read(subquery: PeakSubquery, *, at_milliseconds: int, left_open: bool = False) -> list[int]:
    """The instants a subquery evaluated at ``at`` reads: the multiples of its step in the span
    ``[at - offset - range, at - offset]``, closed at its start in Prometheus 2.x, open there in 3.x."""
    step = subquery.step_seconds * 1000
    end = at_milliseconds - subquery.offset_milliseconds
    start = end - subquery.range_milliseconds
    first = -(-start // step) * step
    return [t for t in range(first, end + 1, step) if not (left_open and t == start)]


def _leaves(subquery: PeakSubquery, depth: int, *, at_milliseconds: int) -> list[PeakSubquery]:
    halves = subquery.split(at_milliseconds=at_milliseconds) if depth else None
    if halves is None:
        return [subquery]
    return [leaf for half in halves for leaf in _leaves(half, depth - 1, at_milliseconds=at_milliseconds)]


AT_MILLISECONDS = 1_700_002_800_000  # on a minute


def test_a_whole_peak_span_is_the_subquery_it_always_was() -> None:
    peak = PeakSubquery("sum(x)", history=False, range_milliseconds=604_800_000, step_seconds=60)
    assert peak.promql == "max_over_time((sum(x))[604800s:60s])"
    history = PeakSubquery("sum(x)", history=True, range_milliseconds=3_600_000, step_seconds=60)
    assert history.promql == "60 * count_over_time((sum(x))[3600s:60s])"


def test_a_span_splits_halfway_between_two_steps_near_its_middle() -> None:
    peak = PeakSubquery("sum(x)", history=False, range_milliseconds=3_600_000, step_seconds=60)
    halves = peak.split(at_milliseconds=AT_MILLISECONDS)
    assert halves is not None
    assert [half.promql for half in halves] == [
        "max_over_time((sum(x))[1830s:60s] offset 1770s)", "max_over_time((sum(x))[1770s:60s])"]
    off_step = peak.split(at_milliseconds=AT_MILLISECONDS + 17_250)
    assert off_step is not None
    assert [half.promql for half in off_step] == [
        "max_over_time((sum(x))[1812750ms:60s] offset 1787250ms)", "max_over_time((sum(x))[1787250ms:60s])"]


@pytest.mark.parametrize("left_open", [False, True], ids=["prometheus-2", "prometheus-3"])
@pytest.mark.parametrize("at_milliseconds", [AT_MILLISECONDS, AT_MILLISECONDS + 12_345, AT_MILLISECONDS + 59_999])
@pytest.mark.parametrize("depth", [1, 2, 5])
def test_the_parts_of_a_span_read_each_of_its_steps_once(at_milliseconds: int, depth: int, left_open: bool) -> None:
    # Evaluation times on a step and off it, subquery ranges closed or open at their start: every step the
    # whole span reads is in exactly one part.
    whole = PeakSubquery("x", history=True, range_milliseconds=604_800_000, step_seconds=60)
    parts = _leaves(whole, depth, at_milliseconds=at_milliseconds)
    assert len(parts) == 2**depth
    read = [step for part in parts for step in _steps_read(part, at_milliseconds=at_milliseconds,
                                                           left_open=left_open)]
    assert sorted(read) == _steps_read(whole, at_milliseconds=at_milliseconds, left_open=left_open)


def test_a_span_is_not_split_into_parts_shorter_than_a_step() -> None:
    assert PeakSubquery("x", history=False, range_milliseconds=110_000, step_seconds=60).split(
        at_milliseconds=AT_MILLISECONDS) is None
    halves = PeakSubquery("x", history=False, range_milliseconds=180_000, step_seconds=60).split(
        at_milliseconds=AT_MILLISECONDS)
    assert halves is not None and [h.range_milliseconds for h in halves] == [90_000, 90_000]


def test_every_peak_and_history_is_planned_as_a_subquery_read_at_one_point() -> None:
    profile = PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"targetRef": {"kind": "Deployment", "name": "api"},
                 "pool": {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}}}},
    })
    plan = plan_queries([profile], PrometheusSettings(url="http://prometheus:9090"))
    assert {q.signal for q in plan.queries if isinstance(q.query, PeakSubquery)} == POINT_QUERIES


def test_the_pool_size_served_is_selected_without_a_user_matcher_which_its_series_never_carry() -> None:
    # SHOW DATABASES has no user column: a pool narrowed to {user: app} (SHOW POOLS' series) would otherwise
    # read no pool size at all, and its verification would silently fall back to the configured size.
    shape = PoolShape.from_pgbouncer(Pgbouncer.model_validate(
        {"configMapRef": {"name": "pgbouncer"}, "matchers": {"user": "app", "job": "pgbouncer-api"}}))
    served = pool_served_size_query(shape, namespaces=["shop"], smallest=True)
    assert 'job="pgbouncer-api"' in served and "user=" not in served
    assert 'user="app"' in pool_sum_query(shape, shape.names.server_active, namespaces=["shop"])
