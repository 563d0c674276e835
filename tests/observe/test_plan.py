"""`perfpilot plan` against the test Prometheus: it names the table row, shows values and bounds, writes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prom_scenarios import AT_SECONDS, LATENCY_BOUNDS, share_below
from promharness import PrometheusServer, free_port

from perfpilot.cli import main
from perfpilot.observe.series import histogram_quantile

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data"
PROFILE = DATA / "shop-api-profile.yaml"
WORKLOAD = DATA / "shop-api-workload.yaml"
OBSERVED_KEYS = {"p95LatencySeconds", "requestRate", "errorRatio", "cpuUtilization", "memoryUtilization",
                 "replicas", "poolUtilization", "poolWaitingClients", "poolSizeServedMin", "poolSizeServedMax"}


def test_plan_prints_the_pool_change_with_its_table_row_values_and_bounds(
    prometheus: PrometheusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {path: path.read_text() for path in (PROFILE, WORKLOAD)}
    status = main(["plan", "--profile", str(PROFILE), "--prometheus", prometheus.url, "--at", str(AT_SECONDS),
                   "--workload-spec", str(WORKLOAD)])
    out = capsys.readouterr().out
    assert status == 0
    assert "decision: change ConfigMap/pgbouncer pool.size: defaultPoolSize=10, reservePoolSize=2 -> " in out
    assert "  table row: Normal 20/10" in out
    assert "  bounds:    5..40" in out
    assert "poolWaitingClients   20" in out
    assert "poolUtilization      100" in out  # 20 server connections over 2 pgBouncer replicas x 10
    assert "poolSizeServedMin    10" in out and "poolSizeServedMax    10" in out  # both pods, after minute 50
    assert "the operator would write it: no (Recommend mode" in out
    assert {path: path.read_text() for path in (PROFILE, WORKLOAD)} == before


def test_plan_json_has_observed_classification_and_decision(
    prometheus: PrometheusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["plan", "--profile", str(PROFILE), "--prometheus", prometheus.url,
                   "--at", "2023-11-14T23:00:00Z", "--workload-spec", str(WORKLOAD), "--json"])
    plan = json.loads(capsys.readouterr().out)
    assert status == 0
    assert set(plan) == {"observed", "classification", "decision"}
    assert set(plan["observed"]) >= OBSERVED_KEYS
    assert plan["observed"]["at"] == "2023-11-14T23:00:00Z"
    assert plan["observed"]["replicas"] == 2
    assert plan["observed"]["cpuUtilization"] == pytest.approx(60.0)  # (300m + 60m) x 1000 / 600m requested
    assert plan["observed"]["unknown"] == {}
    assert plan["classification"]["poolLoad"] == "Normal"
    assert plan["decision"]["change"]["setting"] == "pool.size"
    assert plan["decision"]["tableRow"].startswith("Normal 20/10")
    assert plan["decision"]["written"] is False


def test_plan_without_workload_spec_shows_unknowns_with_reasons_not_zeros(
    prometheus: PrometheusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["plan", "--profile", str(PROFILE), "--prometheus", prometheus.url, "--at", str(AT_SECONDS),
                   "--json"])
    plan = json.loads(capsys.readouterr().out)
    assert status == 0
    assert plan["observed"]["cpuUtilization"] is None
    assert plan["observed"]["unknown"]["cpuUtilization"] == (
        "cpu utilisation: the pod's containers are not known (no workload given)")
    # shop/api's latency is log-normal around a fixed median: its p95 is what histogram_quantile makes of
    # the buckets' shares, whatever the request rate.
    written = [(bound, share_below(bound, 0.08)) for bound in LATENCY_BOUNDS]
    assert plan["observed"]["p95LatencySeconds"] == pytest.approx(histogram_quantile(0.95, written), abs=1e-4)


def test_plan_against_an_unreachable_prometheus_fails_with_exit_status_3_and_says_why(
    capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    status = main(["plan", "--profile", str(PROFILE), "--prometheus", url, "--at", str(AT_SECONDS),
                   "--workload-spec", str(WORKLOAD), "--timeout", "1", "--json"])
    captured = capsys.readouterr()
    assert status == 3
    assert captured.out == ""
    assert f"prometheus unreachable: prometheus {url}: connection refused" in captured.err


def test_plan_rejects_a_bad_time_with_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["plan", "--profile", str(PROFILE), "--prometheus", "http://127.0.0.1:1", "--at", "yesterday"])
    assert status == 2
    assert "--at: not a time" in capsys.readouterr().err


def test_plan_with_an_hpa_lacking_max_replicas_fails_with_exit_status_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = WORKLOAD.read_text().replace("  maxReplicas: 10\n", "")
    assert "maxReplicas" not in manifests
    workload = tmp_path / "workload.yaml"
    workload.write_text(manifests)
    status = main(["plan", "--profile", str(PROFILE), "--prometheus", f"http://127.0.0.1:{free_port()}",
                   "--at", str(AT_SECONDS), "--workload-spec", str(workload)])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err == (f"perfpilot plan: --workload-spec {workload}: HorizontalPodAutoscaler/api: "
                            f"spec.maxReplicas is required\n")
    assert captured.out == ""


def test_plan_against_a_url_where_prometheus_answers_no_query_with_a_result_exits_3_and_says_why(
    prometheus: PrometheusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # A base URL with a wrong path: the server is there and answers every query, each with a 404, so every
    # signal would be unknown and the plan would print "no change" as if all were well.
    url = f"{prometheus.url}/not-the-api-root"
    status = main(["plan", "--profile", str(PROFILE), "--prometheus", url, "--at", str(AT_SECONDS),
                   "--workload-spec", str(WORKLOAD)])
    captured = capsys.readouterr()
    assert status == 3
    assert captured.out == ""
    assert f"perfpilot plan: no query to prometheus {url} got a result (" in captured.err
    assert "nothing to plan from: query refused: HTTP 404: 404 page not found" in captured.err


def test_plan_decides_from_the_tuning_state_in_the_profiles_status(
    prometheus: PrometheusServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The pool was grown to its live 10/2 a minute before: even the emergency of its waiting clients waits for
    # that change to show (two intervals), so plan holds where, with no status, it grows the pool (the first test).
    written_at = datetime.fromtimestamp(AT_SECONDS - 60, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    profile = tmp_path / "profile.yaml"
    profile.write_text(PROFILE.read_text() + (
        "status:\n"
        "  lastChange:\n"
        f"    at: '{written_at}'\n"
        "    target: ConfigMap/pgbouncer\n"
        "    field: pool.size\n"
        "    from: {defaultPoolSize: 5, reservePoolSize: 1}\n"
        "    to: {defaultPoolSize: 10, reservePoolSize: 2}\n"
        "    verdict: Pending\n"
    ))
    status = main(["plan", "--profile", str(profile), "--prometheus", prometheus.url, "--at", str(AT_SECONDS),
                   "--workload-spec", str(WORKLOAD), "--json"])
    plan = json.loads(capsys.readouterr().out)
    assert status == 0
    assert plan["decision"]["change"] is None
    assert plan["decision"]["reason"].startswith("Holding: verifying pool.size change until ")
