"""Edges of the API the other tests left open: the values a message names, the bounds the CRD and the models share,
the status as `kubectl get -o yaml` prints it, and the units of quantities."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from perfpilot.api.quantities import (
    MAX_DURATION_SECONDS,
    MAX_TEXT_LENGTH,
    CpuQuantity,
    Duration,
    MemoryQuantity,
    parse_duration_seconds,
)
from perfpilot.api.spec import PerformanceProfile
from perfpilot.api.validate import show_value
from perfpilot.cli import main

Profile = dict[str, Any]

GOOD: Profile = {
    "apiVersion": "perfpilot.io/v1alpha1",
    "kind": "PerformanceProfile",
    "metadata": {"name": "api", "namespace": "shop"},
    "spec": {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
        "pool": {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}}},
    },
}


def _write(path: Path, *documents: object) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    return path


def _validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], profile: Profile) -> tuple[int, list[str]]:
    """`perfpilot validate` on one profile: its exit status and its lines without the file and document prefix."""
    file = _write(tmp_path / "profile.yaml", profile)
    status = main(["validate", str(file)])
    captured = capsys.readouterr()
    assert captured.err == ""
    return status, [line.removeprefix(f"{file}: document 1: ") for line in captured.out.splitlines()]


def _with(section: str, value: object, *, under: str = "spec") -> Profile:
    profile = copy.deepcopy(GOOD)
    profile[under][section] = value
    return profile


# --- the values a cross-field message names --------------------------------------------------------------------


@pytest.mark.parametrize(("guardrails", "line"), [
    ({"interval": "5m", "window": "4m"}, "window must be at least one interval (got window=4m, interval=5m)"),
    ({"window": "2h", "peakWindow": "1h59m"}, "peakWindow must be at least window (got peakWindow=1h59m, window=2h)"),
    ({"interval": "20m", "window": "1h", "verifyFor": "15m"},
     "verifyFor must be at least one interval (got verifyFor=15m, interval=20m)"),
])
def test_a_guardrail_duration_shorter_than_the_one_it_is_compared_with_is_refused_naming_both_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], guardrails: dict[str, str], line: str
) -> None:
    assert _validate(tmp_path, capsys, _with("guardrails", guardrails)) == (1, [f"spec.guardrails: {line}"])


# --- kind, API group, name and namespace of the document -------------------------------------------------------


def test_a_perfpilot_document_of_another_kind_is_refused_naming_the_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = copy.deepcopy(GOOD)
    profile["kind"] = "PerformanceProfiles"
    assert _validate(tmp_path, capsys, profile) == (1, ["kind: must be PerformanceProfile (got 'PerformanceProfiles')"])


def test_a_performance_profile_under_another_api_group_is_checked_not_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = copy.deepcopy(GOOD)
    profile["apiVersion"] = "perfpilot.example/v1alpha1"
    assert _validate(tmp_path, capsys, profile) == (
        1, ["apiVersion: must be perfpilot.io/v1alpha1 (got 'perfpilot.example/v1alpha1')"])


def test_a_profile_name_of_254_characters_is_refused_and_one_of_253_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = copy.deepcopy(GOOD)
    profile["metadata"]["name"] = "a" * 253
    assert _validate(tmp_path, capsys, profile) == (0, [f"shop/{'a' * 253} OK"])
    profile["metadata"]["name"] = "a" * 254
    status, lines = _validate(tmp_path, capsys, profile)
    assert status == 1
    assert lines == [f"metadata.name: must be at most 253 characters (got 254: {show_value('a' * 254)})"]


@pytest.mark.parametrize(("namespace", "problem"), [
    ("a" * 63, None), ("1shop", None), ("a" * 64, f"must be at most 63 characters (got 64: {show_value('a' * 64)})"),
    *((bad, "must be a namespace name: lower-case letters, digits and '-', starting and ending with a letter or "
            f"digit (got {show_value(bad)})") for bad in ("shop.eu", "Shop", "-shop", "shop-")),
])
def test_a_namespace_must_be_a_label_of_at_most_63_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], namespace: str, problem: str | None
) -> None:
    profile = copy.deepcopy(GOOD)
    profile["metadata"]["namespace"] = namespace
    status, lines = _validate(tmp_path, capsys, profile)
    if problem is None:
        assert (status, lines) == (0, [f"{namespace}/api OK"])
    else:
        assert (status, lines) == (1, [f"metadata.namespace: {problem}"])


def test_a_bad_namespace_is_reported_beside_a_missing_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = copy.deepcopy(GOOD)
    profile["metadata"] = {"namespace": "shop.eu"}
    status, lines = _validate(tmp_path, capsys, profile)
    assert status == 1
    assert [line.split(":")[0] for line in lines] == ["metadata.name", "metadata.namespace"]


def test_a_valid_profile_without_a_namespace_is_named_by_its_name_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = copy.deepcopy(GOOD)
    del profile["metadata"]["namespace"]
    assert _validate(tmp_path, capsys, profile) == (0, ["api OK"])


@pytest.mark.parametrize("value", ["true", "True", "TRUE"])
def test_the_paused_annotation_pauses_a_profile_whatever_its_case(value: str) -> None:
    profile = PerformanceProfile.model_validate(
        {**GOOD, "metadata": {"name": "api", "annotations": {"perfpilot.io/paused": value}}})
    assert profile.paused


def test_a_paused_annotation_other_than_true_does_not_pause_a_profile() -> None:
    profile = PerformanceProfile.model_validate(
        {**GOOD, "metadata": {"name": "api", "annotations": {"perfpilot.io/paused": "yes"}}})
    assert not profile.paused


# --- the Prometheus URL ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://prometheus:9090/?", "http://prometheus:9090#"])
def test_a_prometheus_url_ending_in_an_empty_query_or_fragment_is_refused_naming_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    assert _validate(tmp_path, capsys, _with("metrics", {"prometheusURL": url})) == (
        1, [f"spec.metrics.prometheusURL: expected a URL without a query (?) or fragment (#) (got {url!r})"])


def test_a_prometheus_url_of_2048_characters_is_taken_and_one_more_refused_naming_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = "http://prometheus:9090/"
    url = base + "a" * (2048 - len(base))
    assert _validate(tmp_path, capsys, _with("metrics", {"prometheusURL": url})) == (0, ["shop/api OK"])
    url += "a"
    assert _validate(tmp_path, capsys, _with("metrics", {"prometheusURL": url})) == (
        1, [f"spec.metrics.prometheusURL: must be at most 2048 characters (got {show_value(url)})"])


# --- the wording of schema problems ----------------------------------------------------------------------------


def test_an_empty_pool_database_is_said_to_be_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pool = {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}, "database": ""}}
    assert _validate(tmp_path, capsys, _with("pool", pool)) == (
        1, ["spec.pool.pgbouncer.database: must not be empty (got '')"])


def test_a_boolean_in_an_integer_field_is_not_advised_to_be_quoted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The advice to quote Off/On/Yes/No is for fields that take text; quoting `true` here would not help.
    assert _validate(tmp_path, capsys, _with("guardrails", {"maxStepPercent": True})) == (
        1, ["spec.guardrails.maxStepPercent: must be an integer (got True)"])


def test_an_unquoted_fractional_number_as_a_quantity_is_refused_as_the_api_server_refuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # x-kubernetes-int-or-string: an integer or a string, so 0.5 must be written "0.5" or 500m.
    resources = {"cpu": {"min": 0.5, "max": "2"}}
    assert _validate(tmp_path, capsys, _with("resources", resources)) == (
        1, ["spec.resources.cpu.min: must be an integer or a string (got 0.5)"])


@pytest.mark.parametrize(("length", "shown"), [(58, "'" + "x" * 58 + "'"), (59, "'" + "x" * 56 + "...")])
def test_a_value_is_quoted_whole_up_to_sixty_characters_and_shortened_past_them(length: int, shown: str) -> None:
    assert show_value("x" * length) == shown


# --- the status, as `kubectl get -o yaml` prints it ------------------------------------------------------------


def test_a_profile_with_the_null_status_values_the_operator_writes_is_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = copy.deepcopy(GOOD)
    profile["status"] = {
        "phase": "Observing", "lastChange": None, "offPeakWaitSince": None,
        "observed": {"p95LatencySeconds": None, "requestRate": 12.5, "samples": None},
        "recommendation": {"field": None, "from": None, "to": None, "target": ""},
    }
    assert _validate(tmp_path, capsys, profile) == (0, ["shop/api OK"])


def test_a_null_in_a_status_history_record_is_pruned_as_the_api_server_prunes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = copy.deepcopy(GOOD)
    profile["status"] = {"history": [{"at": "2024-05-01T12:00:00Z", "target": "Deployment/api", "field": "resources",
                                      "reason": None}]}
    assert _validate(tmp_path, capsys, profile) == (0, ["shop/api OK"])


def test_a_bad_value_in_a_nullable_status_enum_lists_the_choices_without_null(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = copy.deepcopy(GOOD)
    profile["status"] = {"recommendation": {"field": "hpa.minReplicas"}}
    assert _validate(tmp_path, capsys, profile) == (1, [
        "status.recommendation.field: must be one of hpa.cpuTarget, hpa.memoryTarget, hpa.scaleUp, hpa.scaleDown, "
        "hpa.maxReplicas, resources, pool.size (got 'hpa.minReplicas')"])


def test_a_wrong_type_in_a_nullable_status_number_says_a_number_is_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = copy.deepcopy(GOOD)
    profile["status"] = {"observed": {"replicas": "three"}}
    assert _validate(tmp_path, capsys, profile) == (1, ["status.observed.replicas: must be a number (got 'three')"])


def test_a_misspelt_field_in_the_status_is_named_as_in_the_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # status itself keeps unknown fields (kopf's bookkeeping), but what is under status.observed is typed.
    profile = copy.deepcopy(GOOD)
    profile["status"] = {"kopf": {"progress": {}}, "observed": {"p95LatencySecond": 0.2}}
    assert _validate(tmp_path, capsys, profile) == (
        1, ["status.observed.p95LatencySecond: is not a field of status.observed (got 0.2)"])


# --- a cross-field rule beside a field problem of the same optional object -------------------------------------


def test_the_pgbouncer_reference_rule_is_checked_beside_another_pgbouncer_field_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}, "poolerRef": {"name": "pooler-rw"},
                                           "database": ""}}
    assert _validate(tmp_path, capsys, _with("pool", pool)) == (1, [
        "spec.pool.pgbouncer: exactly one of configMapRef and poolerRef is required (got both)",
        "spec.pool.pgbouncer.database: must not be empty (got '')",
    ])


# --- durations and quantities at their bounds, and their units -------------------------------------------------


def test_a_duration_of_exactly_the_crds_maximum_length_is_accepted_and_one_character_more_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    longest = "0" * (MAX_TEXT_LENGTH - 3) + "10s"
    assert _validate(tmp_path, capsys, _with("guardrails", {"cooldown": longest})) == (0, ["shop/api OK"])
    status, lines = _validate(tmp_path, capsys, _with("guardrails", {"cooldown": "0" + longest}))
    assert status == 1
    assert lines == [f"spec.guardrails.cooldown: a duration must be at most {MAX_TEXT_LENGTH} characters "
                     f"(got {'0' + longest!r})"]


def test_the_longest_duration_cel_can_parse_is_accepted_and_a_nanosecond_more_is_refused() -> None:
    # Go's time.Duration holds at most 2^63 - 1 ns: 2562047h47m16.854775807s.
    assert parse_duration_seconds("2562047h47m16.854775807s") == MAX_DURATION_SECONDS
    with pytest.raises(ValueError, match=r"at most 2562047h .*\(got '2562047h47m16\.854775808s'\)"):
        parse_duration_seconds("2562047h47m16.854775808s")


def test_a_quantity_exponent_of_18_is_accepted_and_19_refused_naming_the_value() -> None:
    assert MemoryQuantity.parse("1e18").bytes == 10**18
    assert MemoryQuantity.parse("1E-18").bytes == 1  # rounded up to a whole byte
    with pytest.raises(ValueError, match=r"exponent must be between -18 and 18 \(got '1e19'\)"):
        MemoryQuantity.parse("1e19")


@pytest.mark.parametrize(("raw", "count"), [("1.5", 2), ("0.5", 1), ("1.5k", 1500), ("1k", 1000), ("2k", 2000)])
def test_memory_is_read_in_decimal_kilo_and_rounded_up_to_a_whole_byte(raw: str, count: int) -> None:
    assert MemoryQuantity.parse(raw).bytes == count


@pytest.mark.parametrize(("raw", "millicores"), [("500u", 1), ("1000u", 1), ("1001u", 2), ("1500000n", 2),
                                                 ("2000000u", 2000)])
def test_micro_and_nano_cpu_quantities_are_rounded_up_to_a_whole_millicore(raw: str, millicores: int) -> None:
    assert CpuQuantity.parse(raw).millicores == millicores


def test_the_longest_duration_is_written_back_as_a_duration_that_reads_again() -> None:
    longest = Duration.parse("2562047h47m16.854775807s")
    assert str(longest) == "2562047h47m16s854.775807ms"
    assert Duration.parse(str(longest)) == longest


@pytest.mark.parametrize("field", ["namespace", "annotations"])
def test_a_null_namespace_or_annotations_is_unset_as_kubectl_apply_sends_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str
) -> None:
    profile = copy.deepcopy(GOOD)
    profile["metadata"][field] = None
    expected = "api OK" if field == "namespace" else "shop/api OK"
    assert _validate(tmp_path, capsys, profile) == (0, [expected])
