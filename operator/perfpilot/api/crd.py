"""The ``PerformanceProfile`` CustomResourceDefinition, generated from the pydantic models.

The models in ``api.spec`` and ``api.status`` are the single source of the API; this module turns
pydantic's JSON schema into a Kubernetes *structural* schema (every node typed, no ``$ref``, no typed
``anyOf``, no ``title``, no ``additionalProperties`` next to ``properties``), materialises every default
from the models themselves (so the API server defaults exactly what pydantic would), and attaches each
model's ``CEL_RULES`` as ``x-kubernetes-validations`` on that model's node. The committed
``crds/performanceprofiles.perfpilot.io.yaml`` is ``crd_yaml()``; a test fails when they drift.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticUndefined, core_schema

from perfpilot.api.spec import API_VERSION, GROUP, KIND, PLURAL, VERSION, ApiModel, PerformanceProfileSpec
from perfpilot.api.status import PerformanceProfileStatus

JsonDict = dict[str, Any]

SINGULAR = "performanceprofile"
LIST_KIND = f"{KIND}List"
SHORT_NAMES = ("perfprofile", "pp")
CRD_NAME = f"{PLURAL}.{GROUP}"

PRINTER_COLUMNS: tuple[JsonDict, ...] = (
    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode",
     "description": "Off, Recommend (status only) or Auto."},
    {"name": "P95-Seconds", "type": "number", "jsonPath": ".status.observed.p95LatencySeconds",
     "description": "Observed p95 latency, seconds."},
    {"name": "SLO", "type": "string", "jsonPath": ".spec.slo.latencyP95", "description": "p95 latency objective."},
    {"name": "CPU", "type": "number", "jsonPath": ".status.observed.cpuUtilization",
     "description": "Observed CPU utilisation of the requests, percent."},
    {"name": "Replicas", "type": "number", "jsonPath": ".status.observed.replicas",
     "description": "Observed replica count."},
    {"name": "Pool", "type": "number", "jsonPath": ".status.observed.poolUtilization",
     "description": "Observed pgBouncer pool utilisation, percent."},
    {"name": "Last-Change", "type": "string", "jsonPath": ".status.lastChange.field",
     "description": "The setting perfpilot changed last."},
    {"name": "Verdict", "type": "string", "jsonPath": ".status.lastChange.verdict",
     "description": "Verdict on the last change: Pending, Kept, RolledBack, Inconclusive or Reverted."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)

# Keys a structural schema node may carry, in the order they are written (people read the YAML).
_VALUE_KEYS = ("format", "enum", "pattern", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum",
               "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")
_HANDLED_KEYS = frozenset(
    {"$ref", "anyOf", "title", "description", "type", "default", "properties", "required", "items",
     "additionalProperties", "const", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
     "x-kubernetes-validations", *_VALUE_KEYS}
)


class UnsupportedSchemaError(ValueError):
    """A model uses a construct a structural schema cannot express; the generator refuses it loudly."""


def _dump_default(annotation: Any, value: object) -> object:
    """The default as it appears on the wire, or ``{}`` for a sub-model that is all defaults itself.

    ``{}`` is enough there because the API server defaults nested fields after materialising the parent,
    and it keeps the CRD readable; anything else is written out in full.
    """
    if isinstance(value, BaseModel):
        try:
            if value == type(value)():
                return {}
        except ValidationError:
            pass  # the model has required fields, so its default must be spelled out
    return TypeAdapter(annotation).dump_python(value, mode="json", by_alias=True, exclude_none=True)


class _ModelAwareSchema(GenerateJsonSchema):
    """pydantic's generator, plus what only the model classes know: their defaults and CEL rules.

    pydantic leaves out ``default_factory`` defaults and writes the dataclass fields of a ``Duration``
    instead of its text, so every default is recomputed here from the field itself.
    """

    with_defaults = True

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        cls = schema["cls"]
        properties: JsonDict = json_schema.get("properties", {})
        for name, field in cls.model_fields.items():
            node = properties.get(field.alias or name)
            if node is None:
                continue
            node.pop("default", None)
            if not self.with_defaults:
                continue
            if field.default_factory is not None:
                value = field.get_default(call_default_factory=True, validated_data={})
            elif field.default is not PydanticUndefined:
                value = field.default
            else:
                continue
            if value is not None:
                node["default"] = _dump_default(field.annotation, value)
        rules = getattr(cls, "CEL_RULES", ()) if issubclass(cls, ApiModel) else ()
        if rules:
            json_schema["x-kubernetes-validations"] = [{"rule": rule, "message": message} for rule, message in rules]
        return json_schema


class _StatusSchema(_ModelAwareSchema):
    # The status is written by the operator, never defaulted: a default there would invent values
    # (a phase, a verdict) the operator did not write.
    with_defaults = False


def _resolve(node: JsonDict, defs: Mapping[str, JsonDict]) -> JsonDict:
    """Inline a ``$ref``; keys next to it (the field's own description and default) win over the target's."""
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        if name not in defs:
            raise UnsupportedSchemaError(f"unresolvable reference {node['$ref']!r}")
        node = {**defs[name], **{key: value for key, value in node.items() if key != "$ref"}}
    return node


def _structural(node: JsonDict, defs: Mapping[str, JsonDict], *, nullable_optionals: bool, where: str) -> JsonDict:
    node = _resolve(node, defs)
    unknown = set(node) - _HANDLED_KEYS
    if unknown:
        raise UnsupportedSchemaError(f"{where or 'root'}: keywords {sorted(unknown)} have no structural form")

    out: JsonDict = {}
    if "description" in node:
        out["description"] = node["description"]

    if node.get("x-kubernetes-preserve-unknown-fields") and "type" not in node:
        # A union of shapes (the from/to of a change record): any JSON value, kept as written.
        has_null = any(branch.get("type") == "null" for branch in node.get("anyOf", ()))
        if has_null or "anyOf" not in node:
            out["nullable"] = True
        out["x-kubernetes-preserve-unknown-fields"] = True
        return out

    if node.get("x-kubernetes-int-or-string"):
        # Kubernetes forbids types inside anyOf, so the branches' value validations move up; JSON Schema
        # applies pattern only to strings and minimum only to numbers, so each keeps its meaning.
        for branch in node.get("anyOf", ()):
            for key in _VALUE_KEYS:
                if key in branch:
                    out[key] = branch[key]
        for key in _VALUE_KEYS:
            if key in node:
                out[key] = node[key]
        if "default" in node:
            out["default"] = node["default"]
        out["x-kubernetes-int-or-string"] = True
        return out

    if "anyOf" in node:
        branches = node["anyOf"]
        others = [branch for branch in branches if branch.get("type") != "null"]
        if len(others) != 1 or len(branches) != len(others) + 1:
            raise UnsupportedSchemaError(f"{where}: only Optional[X] unions have a structural form (got {branches})")
        # Optional[X] is simply an optional property in the spec, so CEL's has() means "given";
        # in the status the operator may write null for "unknown".
        merged = {**others[0], **{key: value for key, value in node.items() if key != "anyOf"}}
        result = _structural(merged, defs, nullable_optionals=nullable_optionals, where=where)
        if nullable_optionals:
            result["nullable"] = True
            if "enum" in result and None not in result["enum"]:
                # The API server checks an enum even against null: a nullable enum must list it.
                result["enum"] = [*result["enum"], None]
        return result

    if "const" in node:
        node = {**node, "enum": [node["const"]]}
    node_type = node.get("type")
    if not isinstance(node_type, str):
        raise UnsupportedSchemaError(f"{where or 'root'}: a structural schema needs one type (got {node_type!r})")
    out["type"] = node_type
    for key in _VALUE_KEYS:
        if key not in node:
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum"):
            # OpenAPI v3.0 (Kubernetes) spells these as a flag on minimum/maximum.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = node[key]
            out[key] = True
        else:
            out[key] = node[key]
    if "default" in node:
        out["default"] = node["default"]

    if node_type == "object":
        properties = node.get("properties", {})
        if properties:
            out["properties"] = {
                name: _structural(child, defs, nullable_optionals=nullable_optionals,
                                  where=f"{where}.{name}" if where else name)
                for name, child in properties.items()
            }
            if node.get("required"):
                out["required"] = list(node["required"])
        elif isinstance(node.get("additionalProperties"), dict):
            out["additionalProperties"] = _structural(
                node["additionalProperties"], defs, nullable_optionals=nullable_optionals, where=f"{where}.*"
            )
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif node_type == "array":
        out["items"] = _structural(node["items"], defs, nullable_optionals=nullable_optionals, where=f"{where}[]")
    if node.get("x-kubernetes-validations"):
        out["x-kubernetes-validations"] = [
            {"rule": rule["rule"], "message": rule["message"]} for rule in node["x-kubernetes-validations"]
        ]
    return out


def structural_schema(model: type[BaseModel], *, for_status: bool = False) -> JsonDict:
    """The structural openAPIV3 schema of one model (``spec`` or ``status``), $defs inlined."""
    generator = _StatusSchema if for_status else _ModelAwareSchema
    pydantic_schema = model.model_json_schema(by_alias=True, mode="validation", schema_generator=generator)
    defs = pydantic_schema.pop("$defs", {})
    return _structural(pydantic_schema, defs, nullable_optionals=for_status, where="")


def _open_api_schema() -> JsonDict:
    spec = {
        "description": "What perfpilot tunes for this workload, within which bounds and how fast.",
        **structural_schema(PerformanceProfileSpec),
    }
    status = {
        "description": "What perfpilot observed, recommends and changed; written by the operator only.",
        **structural_schema(PerformanceProfileStatus, for_status=True),
    }
    # Typed for the printer columns and `kubectl describe`, but open: kopf keeps its own bookkeeping
    # under status (status.kopf), which the API server would otherwise prune.
    status["x-kubernetes-preserve-unknown-fields"] = True
    return {
        "description": "PerformanceProfile tunes a workload's HorizontalPodAutoscaler, resource requests and "
        "pgBouncer pool from its latency SLO, one verified change at a time.",
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "Versioned schema of this object: " + API_VERSION},
            "kind": {"type": "string", "description": "Kind of this object: " + KIND},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


@cache
def _crd() -> JsonDict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "perfpilot", "app.kubernetes.io/part-of": "perfpilot"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": LIST_KIND,
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["perfpilot"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(column) for column in PRINTER_COLUMNS],
                    "schema": {"openAPIV3Schema": _open_api_schema()},
                }
            ],
        },
    }


def build_crd() -> JsonDict:
    """The CustomResourceDefinition as a plain dict (a fresh copy: callers may change it)."""
    return copy.deepcopy(_crd())


def open_api_schema() -> JsonDict:
    """The version's openAPIV3Schema (a fresh copy)."""
    schema: JsonDict = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


CRD_HEADER = (
    "# Generated by `perfpilot crd` from the models in operator/perfpilot/api; do not edit by hand.\n"
    "# Regenerate with `make crd`; tests/api fail when this file and the models drift apart.\n"
)


class _CrdDumper(yaml.SafeDumper):
    """Block-style YAML with lists indented under their key, as kubectl and most manifests write it."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        # Anchors would make the CRD harder to read and to diff for no gain.
        return True


def crd_yaml() -> str:
    """The CRD as the YAML document ``perfpilot crd`` prints and ``crds/`` holds."""
    body = yaml.dump(build_crd(), Dumper=_CrdDumper, sort_keys=False, width=120, allow_unicode=True)
    return CRD_HEADER + "---\n" + body


def apply_defaults(schema: Mapping[str, Any], value: object) -> object:
    """Default ``value`` as the API server does with a structural schema (a new value; the input is kept).

    A missing property with a ``default`` gets a copy of it, then defaulting continues inside it, so a
    ``default: {}`` object picks up its own fields' defaults.
    """
    if isinstance(value, dict):
        result = {key: copy.deepcopy(item) for key, item in value.items()}
        properties: Mapping[str, Any] = schema.get("properties", {})
        for name, child in properties.items():
            if name not in result and "default" in child:
                result[name] = copy.deepcopy(child["default"])
        for name, item in result.items():
            if name in properties:
                result[name] = apply_defaults(properties[name], item)
            elif isinstance(schema.get("additionalProperties"), dict):
                result[name] = apply_defaults(schema["additionalProperties"], item)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value
