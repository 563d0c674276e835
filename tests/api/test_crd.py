"""The CustomResourceDefinition generated from the models: committed, valid, structural and complete."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from perfpilot.api.crd import PRINTER_COLUMNS, apply_defaults, build_crd, crd_yaml, open_api_schema
from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.cli import main

REPO = Path(__file__).resolve().parents[2]
COMMITTED_CRD = REPO / "crds" / "performanceprofiles.perfpilot.io.yaml"
MIN_LE_MAX_RULES = {
    "self.min <= self.max",
    "quantity(string(self.min)).compareTo(quantity(string(self.max))) <= 0",
}


def _spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = open_api_schema()["properties"]["spec"]
    return schema


def _node(path: str) -> dict[str, Any]:
    node = _spec_schema()
    for part in path.split("."):
        node = node["properties"][part]
    return node


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}" if path else name)
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}.*")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")


def test_crd_command_prints_exactly_the_committed_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    printed = capsys.readouterr().out
    assert printed == COMMITTED_CRD.read_text(encoding="utf-8"), "CRD drifted from the models: run `make crd`"


def test_generated_crd_passes_kubernetes_validate_strict(tmp_path: Path) -> None:
    crd_file = tmp_path / "crd.yaml"
    crd_file.write_text(crd_yaml(), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", str(crd_file)],
        capture_output=True, text=True, check=False,
    )
    output = result.stdout + result.stderr
    # Unknown kinds only warn with exit status 0, so the verdict line itself is what counts.
    assert result.returncode == 0, output
    assert "passed for resource customresourcedefinition/performanceprofiles.perfpilot.io" in output
    assert "WARN" not in output


def test_kubernetes_validate_really_checks_the_crd_schema(tmp_path: Path) -> None:
    # The control for the test above: the same CRD with one stray key must fail, which it only does
    # when the validator knows CustomResourceDefinition's schema rather than waving it through.
    crd = build_crd()
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["typo"] = True
    crd_file = tmp_path / "crd.yaml"
    crd_file.write_text(yaml.safe_dump(crd), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", str(crd_file)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1
    assert "'typo' was unexpected" in result.stdout + result.stderr


def test_crd_names_scope_version_and_subresources() -> None:
    spec = build_crd()["spec"]
    assert build_crd()["metadata"]["name"] == "performanceprofiles.perfpilot.io"
    assert spec["group"] == "perfpilot.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "PerformanceProfile"
    assert spec["names"]["plural"] == "performanceprofiles"
    assert spec["names"]["singular"] == "performanceprofile"
    assert spec["names"]["shortNames"] == ["perfprofile", "pp"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_printer_columns_point_at_fields_the_schema_has() -> None:
    columns = build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [(column["name"], column["jsonPath"]) for column in columns] == [
        ("Mode", ".spec.mode"),
        ("P95-Seconds", ".status.observed.p95LatencySeconds"),
        ("SLO", ".spec.slo.latencyP95"),
        ("CPU", ".status.observed.cpuUtilization"),
        ("Replicas", ".status.observed.replicas"),
        ("Pool", ".status.observed.poolUtilization"),
        ("Last-Change", ".status.lastChange.field"),
        ("Verdict", ".status.lastChange.verdict"),
        ("Age", ".metadata.creationTimestamp"),
    ]
    root = open_api_schema()
    for column in PRINTER_COLUMNS:
        if column["jsonPath"].startswith(".metadata."):
            continue
        node = root
        for part in column["jsonPath"].removeprefix(".").split("."):
            node = node["properties"][part]
        assert "type" in node, column["name"]


def test_every_schema_node_is_structural() -> None:
    for path, node in _walk(open_api_schema()):
        assert "$ref" not in node and "$defs" not in node, path
        assert "title" not in node, path
        assert "anyOf" not in node and "oneOf" not in node and "allOf" not in node, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("x-kubernetes-int-or-string") or (
            node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node
        ):
            assert "type" not in node, path
        else:
            assert isinstance(node.get("type"), str), path
        if "properties" in node or "additionalProperties" in node:
            assert node["type"] == "object", path


def _model_fields_with_nodes(
    model: type[BaseModel], node: dict[str, Any], path: str = ""
) -> Iterator[tuple[str, FieldInfo, dict[str, Any]]]:
    for name, field in model.model_fields.items():
        alias = field.alias or name
        child = node["properties"][alias]
        child_path = f"{path}.{alias}" if path else alias
        yield child_path, field, child
        inner = [arg for arg in get_args(field.annotation) if arg is not type(None)] or [field.annotation]
        if len(inner) == 1 and isinstance(inner[0], type) and issubclass(inner[0], BaseModel):
            yield from _model_fields_with_nodes(inner[0], child, child_path)


def test_every_model_default_is_a_schema_default_and_nothing_else_is() -> None:
    for path, field, node in _model_fields_with_nodes(PerformanceProfileSpec, _spec_schema()):
        default = field.get_default(call_default_factory=True, validated_data={})
        if default is None or default is PydanticUndefined:
            assert "default" not in node, path
            continue
        assert "default" in node, path
        if not isinstance(default, BaseModel):
            # Sub-model defaults are compared whole, after defaulting, in the test below.
            wire = TypeAdapter(field.annotation).dump_python(default, mode="json", by_alias=True)
            assert node["default"] == wire, path


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("mode", ["Off", "Recommend", "Auto"]),
        ("objective", ["Balanced", "Cost", "Reliability"]),
        ("targetRef.kind", ["Deployment", "StatefulSet"]),
        ("hpa.scaleUp", ["Auto", "Aggressive", "Moderate", "Conservative"]),
        ("hpa.scaleDown", ["Auto", "Slow", "Moderate", "Fast"]),
        ("resources.limits", ["KeepRatio", "Guaranteed", "RequestsOnly"]),
    ],
)
def test_enumerated_fields_list_their_values(path: str, values: list[str]) -> None:
    assert _node(path)["enum"] == values


@pytest.mark.parametrize(
    ("path", "low", "high"),
    [
        ("hpa.cpuTarget.min", 1, 100),
        ("hpa.cpuTarget.max", 1, 100),
        ("hpa.memoryTarget.min", 1, 100),
        ("hpa.memoryTarget.max", 1, 100),
        ("guardrails.maxStepPercent", 1, 100),
        ("guardrails.maxTargetStep", 1, 50),
        ("slo.maxErrorRatio", 0, 1),
        ("pool.size.min", 1, 10000),
    ],
)
def test_percent_and_count_fields_are_bounded(path: str, low: int, high: int) -> None:
    node = _node(path)
    assert (node["minimum"], node["maximum"]) == (low, high)


@pytest.mark.parametrize("path", ["resources.cpu.min", "resources.cpu.max", "resources.memory.min",
                                  "resources.memory.max"])
def test_quantities_are_int_or_string_with_kubernetes_pattern(path: str) -> None:
    node = _node(path)
    assert node["x-kubernetes-int-or-string"] is True
    assert node["minimum"] == 0
    assert node["pattern"].startswith("^(\\+)?")
    assert node["maxLength"] == 64


@pytest.mark.parametrize("path", ["hpa.cpuTarget", "hpa.memoryTarget", "resources.cpu", "resources.memory",
                                  "pool.size"])
def test_every_range_carries_a_min_not_above_max_rule(path: str) -> None:
    rules = _node(path)["x-kubernetes-validations"]
    assert rules[0]["message"] == "min must not exceed max"
    assert rules[0]["rule"] in MIN_LE_MAX_RULES
    # Requests also need a positive minimum; percents and pool sizes get theirs from `minimum: 1`.
    expected_extra = ["min must be greater than 0"] if path.startswith("resources.") else []
    assert [rule["message"] for rule in rules[1:]] == expected_extra


def test_pool_carries_rules_for_its_references() -> None:
    pgbouncer_rules = _node("pool.pgbouncer")["x-kubernetes-validations"]
    assert pgbouncer_rules[0] == {"rule": "has(self.configMapRef) != has(self.poolerRef)",
                                  "message": "exactly one of configMapRef and poolerRef is required"}
    assert pgbouncer_rules[1]["message"] == (
        "matchers keys must be Prometheus label names other than namespace and workload")
    pool_rules = _node("pool")["x-kubernetes-validations"]
    assert pool_rules == [{"rule": "!self.enabled || has(self.pgbouncer)",
                           "message": "pgbouncer is required when the pool is enabled"}]


def test_guardrail_durations_are_checked_against_each_other() -> None:
    messages = [rule["message"] for rule in _node("guardrails")["x-kubernetes-validations"]]
    assert messages == ["interval must be at least 10s", "window must be at least one interval",
                        "peakWindow must be at least window", "verifyFor must be at least one interval"]


def test_optional_spec_references_are_optional_not_nullable() -> None:
    # CEL's has() must mean "given", so a spec reference is simply left out rather than set to null.
    for path in ("pool.pgbouncer", "pool.pgbouncer.configMapRef", "pool.pgbouncer.poolerRef", "slo.maxErrorRatio"):
        assert "nullable" not in _node(path), path
    assert _node("pool.pgbouncer.configMapRef")["required"] == ["name"]
    assert _spec_schema()["required"] == ["targetRef"]


def test_status_keeps_operator_bookkeeping_and_allows_unknown_signals_as_null() -> None:
    status = open_api_schema()["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    observed = status["properties"]["observed"]["properties"]
    assert observed["p95LatencySeconds"] == {"type": "number", "nullable": True}
    # DESIGN section 2's lastChange: at, target, field, from, to, reason, verdict (flat).
    last_change = status["properties"]["lastChange"]["properties"]
    assert {"at", "target", "field", "from", "to", "reason", "verdict"} <= set(last_change)
    assert last_change["from"] == {"nullable": True, "x-kubernetes-preserve-unknown-fields": True}
    assert all("default" not in node for _, node in _walk(status))


def test_crd_defaults_equal_the_model_defaults() -> None:
    # The sparsest profile that reaches every defaulted field; the API server's defaulting of it must
    # give what the operator's models give for the same input.
    sparse = {"targetRef": {"kind": "Deployment", "name": "api"},
              "pool": {"pgbouncer": {"configMapRef": {"name": "pgbouncer"}}}}
    defaulted = apply_defaults(_spec_schema(), sparse)
    modelled = PerformanceProfileSpec.model_validate(sparse).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert defaulted == modelled
    assert sparse == {"targetRef": {"kind": "Deployment", "name": "api"},
                      "pool": {"pgbouncer": {"configMapRef": {"name": "pgbouncer"}}}}


def test_build_crd_returns_an_independent_copy() -> None:
    first = build_crd()
    untouched = copy.deepcopy(first)
    first["spec"]["group"] = "changed.example"
    assert build_crd() == untouched


def test_every_nullable_enum_lists_null_as_the_api_server_checks_an_enum_against_null_too() -> None:
    nullable_enums = [(path, node) for path, node in _walk(open_api_schema())
                      if "enum" in node and node.get("nullable")]
    assert nullable_enums  # the status's recommendation.field is one
    for path, node in nullable_enums:
        assert None in node["enum"], path


def _model_accepts_prometheus_url(url: str) -> bool:
    spec = {"targetRef": {"kind": "Deployment", "name": "api"}, "metrics": {"prometheusURL": url}}
    try:
        PerformanceProfileSpec.model_validate(spec)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("url", ["", "http://prometheus:9090", "https://user:secret@thanos.example/api/prom",
                                 "HTTP://[::1]:9090", "http://10.0.0.1:9090/", "https://mimir.example/prometheus/"])
def test_the_crd_lets_through_every_prometheus_url_the_model_accepts(url: str) -> None:
    assert _model_accepts_prometheus_url(url)
    assert re.fullmatch(_node("metrics.prometheusURL")["pattern"], url)


@pytest.mark.parametrize("url", ["prometheus:9090", "ftp://prometheus:9090", "http://prometheus:9090/?tenant=a",
                                 "http://prometheus:9090#x", "http://prometheus 9090", "http:///api"])
def test_the_api_server_refuses_a_prometheus_url_the_model_would_refuse_anyway(url: str) -> None:
    assert not _model_accepts_prometheus_url(url)
    assert re.fullmatch(_node("metrics.prometheusURL")["pattern"], url) is None


@pytest.mark.parametrize(("path", "maximum"), [("pool.maxServerConnections", 262143),
                                               ("pool.pgbouncer.configMapRef.key", None)])
def test_pool_budget_and_configmap_key_are_checked_by_the_api_server(path: str, maximum: int | None) -> None:
    node = _node(path)
    if maximum is not None:
        assert node["maximum"] == maximum
    else:
        assert node["maxLength"] == 253
        assert re.fullmatch(node["pattern"], "pgbouncer.ini")
        assert re.fullmatch(node["pattern"], "etc/pgbouncer.ini") is None
