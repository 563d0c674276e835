"""The CRD's CEL rules, evaluated with cel-python: they compile and agree with the models' validators.

Kubernetes' ``quantity()`` library is not part of CEL itself, so it is stood in for here by
perfpilot's own quantity parser (exact decimals); everything else is plain CEL.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy import celtypes
from pydantic import ValidationError

from perfpilot.api.crd import apply_defaults, open_api_schema
from perfpilot.api.quantities import parse_quantity
from perfpilot.api.spec import PerformanceProfileSpec

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "manifests" / "examples").glob("*.yaml"))


@dataclass(frozen=True)
class _Quantity:
    value: Decimal


def _quantity(text: object) -> _Quantity:
    return _Quantity(parse_quantity(str(text)))


def _compare_to(left: _Quantity, right: _Quantity) -> celtypes.IntType:
    return celtypes.IntType((left.value > right.value) - (left.value < right.value))


_ENVIRONMENT = celpy.Environment()
_FUNCTIONS = {"quantity": _quantity, "compareTo": _compare_to}


def _spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = open_api_schema()["properties"]["spec"]
    return schema


def _rule_sites(node: Mapping[str, Any], path: str = "spec") -> Iterator[tuple[str, Mapping[str, Any]]]:
    if node.get("x-kubernetes-validations"):
        yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _rule_sites(child, f"{path}.{name}")


def cel_violations(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path, message) of every CEL rule that fails on a spec, after the API server's defaulting."""
    defaulted = apply_defaults(_spec_schema(), spec)
    violations = []
    for path, node in _rule_sites(_spec_schema()):
        value: Any = defaulted
        for part in path.split(".")[1:]:
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            continue  # rules run only on objects that are there
        for rule in node["x-kubernetes-validations"]:
            program = _ENVIRONMENT.program(_ENVIRONMENT.compile(rule["rule"]), functions=_FUNCTIONS)
            if not program.evaluate({"self": celpy.json_to_cel(value)}):
                violations.append((path, rule["message"]))
    return violations


def model_violations(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path, message) of every cross-field rule of the models that fails on a spec."""
    try:
        PerformanceProfileSpec.model_validate(spec)
    except ValidationError as error:
        return [
            (".".join(["spec", *map(str, detail["loc"])]),
             detail["msg"].removeprefix("Value error, ").split(" (got")[0])
            for detail in error.errors()
            if detail["type"] == "value_error"
        ]
    return []


BASE: dict[str, Any] = {
    "targetRef": {"kind": "Deployment", "name": "api"},
    "pool": {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}}},
}


def _with(path: str, value: object) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    if value is None:
        del node[last]
    else:
        node[last] = value
    return spec


CROSS_FIELD_CASES = [
    ("hpa.cpuTarget", {"min": 81, "max": 80}, "spec.hpa.cpuTarget", "min must not exceed max"),
    ("hpa.memoryTarget", {"min": 90, "max": 70}, "spec.hpa.memoryTarget", "min must not exceed max"),
    ("resources.cpu", {"min": "1001m", "max": "1"}, "spec.resources.cpu", "min must not exceed max"),
    ("resources.cpu", {"min": 2, "max": "1500m"}, "spec.resources.cpu", "min must not exceed max"),
    ("resources.memory", {"min": "1Gi", "max": "1000Mi"}, "spec.resources.memory", "min must not exceed max"),
    ("pool.size", {"min": 6, "max": 5}, "spec.pool.size", "min must not exceed max"),
    ("pool.pgbouncer", {"database": "app"}, "spec.pool.pgbouncer",
     "exactly one of configMapRef and poolerRef is required"),
    ("pool.pgbouncer", {"configMapRef": {"name": "a"}, "poolerRef": {"name": "b"}}, "spec.pool.pgbouncer",
     "exactly one of configMapRef and poolerRef is required"),
    ("pool.pgbouncer", None, "spec.pool", "pgbouncer is required when the pool is enabled"),
    ("guardrails", {"interval": "5s", "window": "1m", "verifyFor": "1m"}, "spec.guardrails",
     "interval must be at least 10s"),
    ("guardrails", {"interval": "5m", "window": "4m"}, "spec.guardrails", "window must be at least one interval"),
    ("guardrails", {"interval": "20m"}, "spec.guardrails", "verifyFor must be at least one interval"),
    ("guardrails", {"window": "2h", "peakWindow": "1h59m"}, "spec.guardrails", "peakWindow must be at least window"),
]


def test_every_rule_in_the_crd_compiles() -> None:
    rules = [rule["rule"] for _, node in _rule_sites(_spec_schema()) for rule in node["x-kubernetes-validations"]]
    assert len(rules) >= 9
    for rule in rules:
        _ENVIRONMENT.compile(rule)


@pytest.mark.parametrize(("path", "value", "where", "message"), CROSS_FIELD_CASES,
                         ids=[f"{case[0]}={case[1]}" for case in CROSS_FIELD_CASES])
def test_cel_rule_and_model_reject_the_same_spec_with_the_same_message(
    path: str, value: object, where: str, message: str
) -> None:
    spec = _with(path, value)
    assert cel_violations(spec) == [(where, message)]
    assert model_violations(spec) == [(where, message)]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("hpa.cpuTarget", {"min": 80, "max": 80}),
        ("resources.cpu", {"min": "1000m", "max": "1"}),
        ("resources.memory", {"min": "1Gi", "max": "1024Mi"}),
        ("pool.size", {"min": 5, "max": 5}),
        ("pool.pgbouncer", {"poolerRef": {"name": "pooler-rw"}}),
        ("guardrails", {"interval": "10s", "window": "10s", "verifyFor": "10s"}),
        ("guardrails", {"window": "2h", "peakWindow": "2h"}),
        ("pool", {"enabled": False}),
        ("pool.pgbouncer.configMapRef", {"name": "pgbouncer", "key": ".pgbouncer..ini"}),
    ],
)
def test_cel_rule_and_model_accept_the_boundary(path: str, value: object) -> None:
    spec = _with(path, value)
    assert cel_violations(spec) == []
    assert model_violations(spec) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_examples_satisfy_every_cel_rule(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        assert cel_violations(document["spec"]) == []


# Single-field rules: the model names the field itself, the CEL rule the object around it, so the paths
# differ by design; what must agree is that both reject.
SINGLE_FIELD_CASES = [
    ("slo.latencyP95", "0s", "spec.slo", "latencyP95 must be greater than 0s"),
    ("resources.cpu", {"min": "0", "max": "1"}, "spec.resources.cpu", "min must be greater than 0"),
    ("resources.memory", {"min": 0, "max": "1Gi"}, "spec.resources.memory", "min must be greater than 0"),
    ("metrics.matchers", {"bad-label": "x"}, "spec.metrics",
     "matchers keys must be Prometheus label names other than namespace and workload"),
    ("metrics.matchers", {"workload": "x"}, "spec.metrics",
     "matchers keys must be Prometheus label names other than namespace and workload"),
    ("pool.pgbouncer.matchers", {"__name__": "x"}, "spec.pool.pgbouncer",
     "matchers keys must be Prometheus label names other than namespace and workload"),
    ("pool.pgbouncer.configMapRef", {"name": "pgbouncer", "key": ".."}, "spec.pool.pgbouncer.configMapRef",
     "key must not be '.' or begin with '..'"),
    ("pool.pgbouncer.configMapRef", {"name": "pgbouncer", "key": "..data"}, "spec.pool.pgbouncer.configMapRef",
     "key must not be '.' or begin with '..'"),
    ("pool.pgbouncer.configMapRef", {"name": "pgbouncer", "key": "."}, "spec.pool.pgbouncer.configMapRef",
     "key must not be '.' or begin with '..'"),
]


@pytest.mark.parametrize(("path", "value", "where", "message"), SINGLE_FIELD_CASES,
                         ids=[f"{case[0]}={case[1]}" for case in SINGLE_FIELD_CASES])
def test_cel_rule_and_model_both_reject_a_bad_single_field(
    path: str, value: object, where: str, message: str
) -> None:
    spec = _with(path, value)
    assert cel_violations(spec) == [(where, message)]
    with pytest.raises(ValidationError):
        PerformanceProfileSpec.model_validate(spec)


def test_cel_rules_accept_ordinary_matchers_and_a_tiny_slo() -> None:
    spec = _with("metrics.matchers", {"job": "api", "cluster_name": "eu-1"})
    spec["slo"] = {"latencyP95": "1ms"}
    spec["resources"] = {"cpu": {"min": "1m", "max": "1"}}
    assert cel_violations(spec) == []
    assert model_violations(spec) == []
