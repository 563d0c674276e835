"""`perfpilot validate`: every problem named by field path and value, the right exit status, no false alarms."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from perfpilot.cli import main

Profile = dict[str, Any]

GOOD: Profile = {
    "apiVersion": "perfpilot.io/v1alpha1",
    "kind": "PerformanceProfile",
    "metadata": {"name": "api", "namespace": "shop"},
    "spec": {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
        "mode": "Auto",
        "hpa": {"cpuTarget": {"min": 50, "max": 80}},
        "resources": {"cpu": {"min": "100m", "max": "2"}, "memory": {"min": "128Mi", "max": "2Gi"}},
        "pool": {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}}, "size": {"min": 5, "max": 50}},
    },
}


def _set(path: str, value: object) -> Callable[[Profile], None]:
    def change(profile: Profile) -> None:
        *parents, last = path.split(".")
        node = profile
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return change


def _delete(path: str) -> Callable[[Profile], None]:
    def change(profile: Profile) -> None:
        *parents, last = path.split(".")
        node = profile
        for part in parents:
            node = node[part]
        del node[last]

    return change


# (what is wrong, how to break the good profile, the one line perfpilot validate must print for it)
INVALID_CASES: list[tuple[str, Callable[[Profile], None], str]] = [
    ("missing targetRef", _delete("spec.targetRef"), "spec.targetRef: is required (got nothing)"),
    ("Prometheus URL with a bad port", _set("spec.metrics.prometheusURL", "http://prometheus:abc"),
     "spec.metrics.prometheusURL: expected a port from 1 to 65535 after the host (got 'http://prometheus:abc')"),
    ("Prometheus URL without a scheme", _set("spec.metrics.prometheusURL", "prometheus:9090"),
     "spec.metrics.prometheusURL: expected an http:// or https:// URL (got 'prometheus:9090')"),
    ("ConfigMap key with a slash", _set("spec.pool.pgbouncer.configMapRef.key", "etc/pgbouncer.ini"),
     "spec.pool.pgbouncer.configMapRef.key: must be a ConfigMap key: letters, digits, '-', '_' and '.' "
     "(got 'etc/pgbouncer.ini')"),
    ("server connection budget past PostgreSQL's limit", _set("spec.pool.maxServerConnections", 300000),
     "spec.pool.maxServerConnections: must be at most 262143 (got 300000)"),
    ("unknown workload kind", _set("spec.targetRef.kind", "ReplicaSet"),
     "spec.targetRef.kind: must be one of Deployment, StatefulSet (got 'ReplicaSet')"),
    ("cpuTarget min above max", _set("spec.hpa.cpuTarget", {"min": 90, "max": 50}),
     "spec.hpa.cpuTarget: min must not exceed max (got min=90, max=50)"),
    ("memoryTarget min above max", _set("spec.hpa.memoryTarget", {"min": 85, "max": 75}),
     "spec.hpa.memoryTarget: min must not exceed max (got min=85, max=75)"),
    ("cpu request min above max", _set("spec.resources.cpu", {"min": "2", "max": "500m"}),
     "spec.resources.cpu: min must not exceed max (got min=2, max=500m)"),
    ("memory request min above max", _set("spec.resources.memory", {"min": "2Gi", "max": "512Mi"}),
     "spec.resources.memory: min must not exceed max (got min=2Gi, max=512Mi)"),
    ("pool size min above max", _set("spec.pool.size", {"min": 50, "max": 5}),
     "spec.pool.size: min must not exceed max (got min=50, max=5)"),
    ("negative quantity text", _set("spec.resources.cpu.min", "-100m"),
     "spec.resources.cpu.min: a quantity cannot be negative (got '-100m')"),
    ("negative quantity number", _set("spec.resources.memory.min", -1),
     "spec.resources.memory.min: a quantity cannot be negative (got -1)"),
    ("non-numeric quantity", _set("spec.resources.memory.max", "lots"),
     "spec.resources.memory.max: not a quantity: use e.g. 500m, 2, 0.5, 64Mi or 1Gi (got 'lots')"),
    ("unknown mode", _set("spec.mode", "Sometimes"),
     "spec.mode: must be one of Off, Recommend, Auto (got 'Sometimes')"),
    ("mode Off unquoted, read by YAML as false", _set("spec.mode", False),
     "spec.mode: must be one of Off, Recommend, Auto (got False); "
     "quote it: YAML reads unquoted Off, On, Yes and No as true/false"),
    ("unknown objective", _set("spec.objective", "Cheapest"),
     "spec.objective: must be one of Balanced, Cost, Reliability (got 'Cheapest')"),
    ("duration in words", _set("spec.slo.latencyP95", "5 minutes"),
     "spec.slo.latencyP95: not a duration: use a number with ms, s, m or h, e.g. 30s, 10m, 1h30m "
     "(got '5 minutes')"),
    ("duration without a unit", _set("spec.guardrails.cooldown", "600"),
     "spec.guardrails.cooldown: not a duration: use a number with ms, s, m or h, e.g. 30s, 10m, 1h30m "
     "(got '600')"),
    ("interval below the floor", _set("spec.guardrails.interval", "1s"),
     "spec.guardrails: interval must be at least 10s (got 1s)"),
    ("pool with neither reference", _set("spec.pool.pgbouncer", {"database": "app"}),
     "spec.pool.pgbouncer: exactly one of configMapRef and poolerRef is required (got neither)"),
    ("pool with both references",
     _set("spec.pool.pgbouncer", {"configMapRef": {"name": "pgbouncer"}, "poolerRef": {"name": "pooler-rw"}}),
     "spec.pool.pgbouncer: exactly one of configMapRef and poolerRef is required (got both)"),
    ("enabled pool without pgbouncer", _delete("spec.pool.pgbouncer"),
     "spec.pool: pgbouncer is required when the pool is enabled (got none)"),
    ("percent above 100", _set("spec.hpa.cpuTarget.max", 150), "spec.hpa.cpuTarget.max: must be at most 100 (got 150)"),
    ("misspelt field", _set("spec.hpa.cpuTargets", {"min": 50, "max": 80}),
     "spec.hpa.cpuTargets: is not a field of spec.hpa (got {'min': 50, 'max': 80})"),
    ("snake_case field name", _set("spec.max_step", 5), "spec.max_step: is not a field of spec (got 5)"),
    ("empty container name", _set("spec.resources.containers", ["api", ""]),
     "spec.resources.containers[1]: must be a container name: lower-case letters, digits and '-', starting and "
     "ending with a letter or digit (got '')"),
    ("workload name not a Kubernetes name", _set("spec.targetRef.name", "API_v2"),
     "spec.targetRef.name: must be a Kubernetes object name: lower-case letters, digits, '-' and '.', "
     "starting and ending with a letter or digit (got 'API_v2')"),
    ("metric name with a dash", _set("spec.metrics.requestsTotal", "http-requests-total"),
     "spec.metrics.requestsTotal: must be a Prometheus metric name: letters, digits, '_' and ':', "
     "not starting with a digit (got 'http-requests-total')"),
    ("wrong API version", _set("apiVersion", "perfpilot.io/v1"),
     "apiVersion: must be perfpilot.io/v1alpha1 (got 'perfpilot.io/v1')"),
    ("no name", _delete("metadata.name"), "metadata.name: is required (got nothing)"),
    ("zero latency objective", _set("spec.slo.latencyP95", "0s"),
     "spec.slo.latencyP95: must be greater than 0s (got 0s)"),
    ("zero cpu request minimum", _set("spec.resources.cpu", {"min": "0", "max": "2"}),
     "spec.resources.cpu.min: must be greater than 0 (got 0)"),
    ("zero memory request minimum", _set("spec.resources.memory", {"min": 0, "max": "1Gi"}),
     "spec.resources.memory.min: must be greater than 0 (got 0)"),
    ("matcher key that is not a label name", _set("spec.metrics.matchers", {"bad-label": "x"}),
     "spec.metrics.matchers: not a Prometheus label name usable as a matcher (got 'bad-label')"),
    ("matcher on a label perfpilot sets", _set("spec.pool.pgbouncer.matchers", {"namespace": "x"}),
     "spec.pool.pgbouncer.matchers: the 'namespace' label is set by perfpilot, not by matchers (got 'namespace')"),
    ("error matcher that is not PromQL", _set("spec.metrics.errorMatcher", "garbage"),
     'spec.metrics.errorMatcher: must be PromQL label matchers as written inside braces, such as code=~"5.." '
     "(got 'garbage')"),
    # What the API server refuses, the model must refuse too (validate stands in for the API server).
    ("duration longer than CEL's duration() holds", _set("spec.slo.latencyP95", "99999999999h"),
     "spec.slo.latencyP95: a duration must be at most 2562047h (the longest Kubernetes' CEL can parse) "
     "(got '99999999999h')"),
    ("error ratio that is not a number", _set("spec.slo.maxErrorRatio", float("nan")),
     "spec.slo.maxErrorRatio: must be a finite number (got nan)"),
    ("duration with spaces around it", _set("spec.guardrails.cooldown", " 30s"),
     "spec.guardrails.cooldown: a duration must not have spaces around it (got ' 30s')"),
    ("quantity with spaces around it", _set("spec.resources.memory.min", " 64Mi"),
     "spec.resources.memory.min: a quantity must not have spaces around it (got ' 64Mi')"),
    ("profile name not a Kubernetes name", _set("metadata.name", "Bad_Name"),
     "metadata.name: must be a Kubernetes object name: lower-case letters, digits, '-' and '.', "
     "starting and ending with a letter or digit (got 'Bad_Name')"),
    ("HPA name not a Kubernetes name", _set("spec.hpa.name", "Bad Name"),
     "spec.hpa.name: must be empty or a Kubernetes object name: lower-case letters, digits, '-' and '.', "
     "starting and ending with a letter or digit (got 'Bad Name')"),
    ("container name not a Kubernetes name", _set("spec.resources.containers", ["App_1"]),
     "spec.resources.containers[0]: must be a container name: lower-case letters, digits and '-', starting and "
     "ending with a letter or digit (got 'App_1')"),
    ("workload of another API", _set("spec.targetRef.apiVersion", "v1"),
     "spec.targetRef.apiVersion: must be apps/v1 (a Deployment or StatefulSet) (got 'v1')"),
    # The API server estimates a CEL rule's cost from the largest map the schema allows.
    ("more matchers than the CRD allows", _set("spec.metrics.matchers", {f"l{i}": "x" for i in range(17)}),
     "spec.metrics.matchers: must have at most 16 entries (got {'l0': 'x', 'l1': 'x', 'l2': 'x', 'l3': 'x', "
     "'l4': 'x', '...)"),
]


def _write(path: Path, *documents: object) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *files: Path | str) -> tuple[int, list[str], str]:
    status = main(["validate", *(str(file) for file in files)])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


def test_a_valid_profile_prints_one_ok_line_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = _write(tmp_path / "good.yaml", GOOD)
    assert _run(capsys, file) == (0, [f"{file}: document 1: shop/api OK"], "")


@pytest.mark.parametrize(("change", "line"), [(case[1], case[2]) for case in INVALID_CASES],
                         ids=[case[0] for case in INVALID_CASES])
def test_an_invalid_profile_prints_the_field_and_value_and_exits_1(
    change: Callable[[Profile], None], line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = copy.deepcopy(GOOD)
    change(profile)
    file = _write(tmp_path / "bad.yaml", profile)
    before = file.read_bytes()
    assert _run(capsys, file) == (1, [f"{file}: document 1: {line}"], "")
    assert file.read_bytes() == before


def test_every_problem_of_a_document_is_listed_once_in_field_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = copy.deepcopy(GOOD)
    profile["spec"]["mode"] = "Sometimes"
    profile["spec"]["resources"]["cpu"]["min"] = "-1"
    profile["spec"]["pool"]["size"] = {"min": 9, "max": 3}
    file = _write(tmp_path / "bad.yaml", profile)
    status, lines, _ = _run(capsys, file)
    assert status == 1
    assert lines == [
        f"{file}: document 1: spec.mode: must be one of Off, Recommend, Auto (got 'Sometimes')",
        f"{file}: document 1: spec.pool.size: min must not exceed max (got min=9, max=3)",
        f"{file}: document 1: spec.resources.cpu.min: a quantity cannot be negative (got '-1')",
    ]


def test_a_rule_comparing_two_fields_is_checked_beside_another_fields_problem_in_the_same_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # pydantic checks an object's cross-field rules only once its fields are valid: the interval was reported
    # only after maxTargetStep had been fixed, one run later.
    profile = copy.deepcopy(GOOD)
    profile["spec"]["guardrails"] = {"interval": "5s", "maxTargetStep": 60}
    file = _write(tmp_path / "bad.yaml", profile)
    status, lines, _ = _run(capsys, file)
    assert status == 1
    assert lines == [
        f"{file}: document 1: spec.guardrails: interval must be at least 10s (got 5s)",
        f"{file}: document 1: spec.guardrails.maxTargetStep: must be at most 50 (got 60)",
    ]


@pytest.mark.parametrize(("path", "value", "line"), [
    # A bad window left out reads as the default 30m: "window must be at least one interval" would be false.
    ("spec.guardrails", {"window": "soon", "interval": "1h", "verifyFor": "1h", "peakWindow": "2h"},
     "spec.guardrails.window: not a duration: use a number with ms, s, m or h, e.g. 30s, 10m, 1h30m (got 'soon')"),
    # A pgbouncer with a bad field left out would read as missing: "pgbouncer is required" would be false.
    ("spec.pool.pgbouncer", {"configMapRef": {"name": "Bad_Name"}},
     "spec.pool.pgbouncer.configMapRef.name: must be a Kubernetes object name: lower-case letters, digits, '-' "
     "and '.', starting and ending with a letter or digit (got 'Bad_Name')"),
])
def test_a_rule_naming_a_field_with_a_problem_is_not_reported_on_the_value_that_stands_in_for_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str, value: object, line: str
) -> None:
    profile = copy.deepcopy(GOOD)
    _set(path, value)(profile)
    file = _write(tmp_path / "bad.yaml", profile)
    status, lines, _ = _run(capsys, file)
    assert status == 1
    assert lines == [f"{file}: document 1: {line}"]


def test_a_file_with_one_good_and_one_bad_document_reports_each_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = copy.deepcopy(GOOD)
    bad["metadata"]["name"] = "worker"
    bad["spec"]["objective"] = "Fastest"
    file = _write(tmp_path / "both.yaml", GOOD, bad)
    assert _run(capsys, file) == (1, [
        f"{file}: document 1: shop/api OK",
        f"{file}: document 2: spec.objective: must be one of Balanced, Cost, Reliability (got 'Fastest')",
    ], "")


def test_documents_of_other_api_groups_are_skipped_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pgbouncer", "namespace": "shop"},
                  "data": {"pgbouncer.ini": "[pgbouncer]\n"}}
    file = _write(tmp_path / "bundle.yaml", config_map, GOOD)
    assert _run(capsys, file) == (0, [
        f"{file}: document 1: ConfigMap/shop/pgbouncer skipped (not a PerformanceProfile)",
        f"{file}: document 2: shop/api OK",
    ], "")


def test_the_items_of_a_list_are_each_checked_and_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = copy.deepcopy(GOOD)
    bad["spec"]["objective"] = "Fastest"
    file = _write(tmp_path / "list.yaml", {"apiVersion": "v1", "kind": "List", "items": [GOOD, bad]})
    assert _run(capsys, file) == (1, [
        f"{file}: document 1 items[0]: shop/api OK",
        f"{file}: document 1 items[1]: spec.objective: must be one of Balanced, Cost, Reliability (got 'Fastest')",
    ], "")


def test_a_document_that_is_not_a_mapping_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "list.yaml"
    file.write_text("- a\n- b\n", encoding="utf-8")
    assert _run(capsys, file) == (1, [f"{file}: document 1: must be a mapping (got ['a', 'b'])"], "")


def test_a_file_without_profiles_is_not_a_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "empty.yaml"
    file.write_text("# nothing here\n", encoding="utf-8")
    assert _run(capsys, file) == (1, [f"{file}: no PerformanceProfile in this file"], "")


def test_a_missing_file_exits_2_and_the_other_files_are_still_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write(tmp_path / "good.yaml", GOOD)
    missing = tmp_path / "missing.yaml"
    status, lines, err = _run(capsys, missing, good)
    assert status == 2
    assert err == f"{missing}: cannot read the file: No such file or directory\n"
    assert lines == [f"{good}: document 1: shop/api OK"]


def test_bad_yaml_exits_2_with_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("spec:\n  mode: Auto\n   objective: Cost\n", encoding="utf-8")
    status, lines, err = _run(capsys, file)
    assert (status, lines) == (2, [])
    assert err.startswith(f"{file}: not valid YAML at line 3, column ")


def test_invalid_documents_and_an_unreadable_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = copy.deepcopy(GOOD)
    bad["spec"]["mode"] = "Sometimes"
    status, _, _ = _run(capsys, _write(tmp_path / "bad.yaml", bad), tmp_path / "missing.yaml")
    assert status == 2


@pytest.mark.parametrize(("bare", "said"), [
    (GOOD["spec"], "a bare spec, not a manifest: put it under spec: with apiVersion: perfpilot.io/v1alpha1, "
                   "kind: PerformanceProfile and metadata (name, namespace)"),
    ({"spec": GOOD["spec"]}, "a spec without its manifest: add apiVersion: perfpilot.io/v1alpha1, kind: "
                             "PerformanceProfile and metadata (name, namespace) beside spec:"),
])
def test_a_bare_spec_is_named_as_such_in_one_line_not_five(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bare: Profile, said: str
) -> None:
    # `simulate --profile` takes a bare spec; the API server does not, and validate checks what it would get.
    file = _write(tmp_path / "bare.yaml", bare)
    assert _run(capsys, file) == (1, [f"{file}: document 1: {said}"], "")


def test_a_file_that_is_not_utf8_is_named_as_simulate_and_plan_name_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "binary.yaml"
    file.write_bytes(b"\xff\xfe\x00")
    assert _run(capsys, file) == (2, [], f"{file}: not UTF-8 text (byte 0 is 0xff)\n")


def test_standard_input_that_is_not_utf8_is_named_as_a_file_is(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"kind: x\n\xff\n")))
    assert _run(capsys, "-") == (2, [], "-: not UTF-8 text (byte 8 is 0xff)\n")


@pytest.mark.parametrize("path", ["spec.slo.maxErrorRatio", "spec.hpa", "spec.pool.pgbouncer.poolerRef"])
def test_a_null_the_api_server_prunes_before_defaulting_is_valid(
    path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Helm renders unset values as null; the API server drops a null in a field that is not nullable and
    # applies its default (PruneNonNullableNullsWithoutDefaults, kubernetes#95423).
    profile = copy.deepcopy(GOOD)
    _set(path, None)(profile)
    file = _write(tmp_path / "nulls.yaml", profile)
    assert _run(capsys, file) == (0, [f"{file}: document 1: shop/api OK"], "")


def test_a_null_in_a_field_the_schema_does_not_know_is_still_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = copy.deepcopy(GOOD)
    _set("spec.slo.maxErrorRatios", None)(profile)
    file = _write(tmp_path / "unknown.yaml", profile)
    status, lines, _ = _run(capsys, file)
    assert status == 1 and lines == [f"{file}: document 1: spec.slo.maxErrorRatios: is not a field of spec.slo "
                                      f"(got None)"]
