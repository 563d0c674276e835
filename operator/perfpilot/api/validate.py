"""Checking a ``PerformanceProfile`` document the way the API server and the operator both would.

Two validators look at every document: the CRD's openAPIV3Schema (through ``jsonschema``, after turning
the Kubernetes extensions into plain JSON Schema) stands in for the API server, and the pydantic models
stand in for the operator, which also enforces the cross-field rules that only CEL expresses in the CRD.
Both report in API terms — a camelCase field path and the offending value — and when both object to the
same field only the clearer message is kept. Pure: documents in, problems out; reading files is the
command's job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, get_args

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from perfpilot.api.crd import open_api_schema
from perfpilot.api.quantities import DURATION_PATTERN, QUANTITY_PATTERN
from perfpilot.api.spec import (
    CONFIG_MAP_KEY_PATTERN,
    CONTAINER_NAME_PATTERN,
    GROUP,
    KIND,
    MATCHER_LIST_PATTERN,
    METRIC_NAME_PATTERN,
    NAME_PATTERN,
    OPTIONAL_NAME_PATTERN,
    PROMETHEUS_URL_PATTERN,
    VERSION,
    PerformanceProfile,
)

# How much of a bad value a message quotes; a whole sub-object would drown the message.
_MAX_VALUE_TEXT = 60

# When both validators object to one field, the schema's uniform wording ("must be one of ...",
# "must be at most 100") usually reads better than pydantic's generic one ("Input should be a valid
# dictionary or instance of Hpa"); but messages written for this API — quantities, durations and the
# cross-field rules of the models — win over the schema's bare "must match <regex>".
_CLARITY_MODEL_GENERIC = 1
_CLARITY_SCHEMA = 2
_CLARITY_MODEL = 3
_MODEL_OWN_ERRORS = ("value_error", "assertion_error", "invalid_")

# Regular expressions say little to a person; the patterns the API uses get words instead.
_PATTERN_WORDING = {
    NAME_PATTERN: "must be a Kubernetes object name: lower-case letters, digits, '-' and '.', "
    "starting and ending with a letter or digit",
    METRIC_NAME_PATTERN: "must be a Prometheus metric name: letters, digits, '_' and ':', not starting with a digit",
    MATCHER_LIST_PATTERN: 'must be PromQL label matchers as written inside braces, such as code=~"5.."',
    OPTIONAL_NAME_PATTERN: "must be empty or a Kubernetes object name: lower-case letters, digits, '-' and '.', "
    "starting and ending with a letter or digit",
    CONFIG_MAP_KEY_PATTERN: "must be a ConfigMap key: letters, digits, '-', '_' and '.'",
    PROMETHEUS_URL_PATTERN: "must be empty or an http:// or https:// URL without spaces, query (?) or fragment (#)",
    CONTAINER_NAME_PATTERN: "must be a container name: lower-case letters, digits and '-', starting and ending "
    "with a letter or digit",
    DURATION_PATTERN: "must be a duration: a number with ms, s, m or h, e.g. 30s, 10m, 1h30m, no spaces",
    QUANTITY_PATTERN: "must be a Kubernetes quantity such as 500m, 2, 64Mi or 1Gi, no spaces or sign",
    "^apps/v1$": "must be apps/v1 (a Deployment or StatefulSet)",
    f"^{GROUP}/{VERSION}$": f"must be {GROUP}/{VERSION}",
    f"^{KIND}$": f"must be {KIND}",
}

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: where (API field path, empty for the whole document) and what."""

    path: str
    message: str
    clarity: int = _CLARITY_SCHEMA

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def show_value(value: object) -> str:
    """A bad value as a message quotes it: Python-literal style, shortened when long."""
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_TEXT else text[: _MAX_VALUE_TEXT - 3] + "..."


def field_path(parts: Iterable[object]) -> str:
    """``("spec", "resources", "containers", 0)`` -> ``spec.resources.containers[0]``."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _got(message: str, value: object) -> str:
    return message if "(got " in message else f"{message} (got {show_value(value)})"


def _yaml_boolean_hint(value: object) -> str:
    # YAML 1.1 (PyYAML, and kubectl's parser) reads unquoted Off/On/Yes/No as booleans.
    if isinstance(value, bool):
        return "; quote it: YAML reads unquoted Off, On, Yes and No as true/false"
    return ""


def _json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """A structural schema node as plain JSON Schema, with the API server's behaviour made explicit."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties",):
            out[key] = {name: _json_schema(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
            out[key] = _json_schema(value)
        elif key in ("minimum", "maximum"):
            # OpenAPI v3.0 marks a bound exclusive with a flag; JSON Schema has a keyword of its own.
            exclusive = node.get("exclusiveMinimum" if key == "minimum" else "exclusiveMaximum") is True
            out[("exclusiveM" + key[1:]) if exclusive else key] = value
        elif key in ("exclusiveMinimum", "exclusiveMaximum", "nullable", "default"):
            continue
        elif not key.startswith("x-kubernetes-"):
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [*([out["type"]] if isinstance(out["type"], str) else out["type"]), "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    if out.get("type") == "object" and "properties" in out and not preserve:
        # The API server drops unknown fields silently (and kubectl's strict field validation rejects
        # them); a misspelt field that would vanish is exactly what a check before applying should catch.
        out["additionalProperties"] = False
    return out


@cache
def _read_only_schema() -> Mapping[str, Any]:
    """The openAPIV3Schema, built once, for readers that do not change it (a copy per profile cost the operator
    most of a cycle: 5 of 9 seconds over 1,000 profiles, bench/operator_cycle.py)."""
    return open_api_schema()


@cache
def _schema_validator() -> Any:
    schema = _json_schema(open_api_schema())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _schema_problem(error: SchemaError) -> list[Problem]:
    path = list(error.absolute_path)
    value = error.instance
    keyword = error.validator
    expected = error.validator_value
    if keyword == "required":
        missing = [name for name in expected if isinstance(value, Mapping) and name not in value]
        return [Problem(field_path([*path, name]), "is required (got nothing)") for name in missing]
    if keyword == "additionalProperties" and isinstance(value, Mapping):
        known = error.schema.get("properties", {})
        return [
            Problem(field_path([*path, name]), f"is not a field of {field_path(path) or 'the document'} "
                    f"(got {show_value(item)})")
            for name, item in value.items() if name not in known
        ]
    if keyword == "enum" or (keyword == "type" and "enum" in error.schema):
        # For a value of the wrong type, the choices say more than the type does.
        expected = error.schema["enum"]
        choices = ", ".join(str(choice) for choice in expected if choice is not None)
        return [Problem(field_path(path), f"must be one of {choices} (got {show_value(value)})"
                        f"{_yaml_boolean_hint(value)}")]
    if keyword == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(name, name) for name in types if name != "null")
        hint = _yaml_boolean_hint(value) if "string" in types else ""
        return [Problem(field_path(path), f"must be {wanted} (got {show_value(value)}){hint}")]
    wording = {
        "minimum": f"must be at least {expected}",
        "maximum": f"must be at most {expected}",
        "exclusiveMinimum": f"must be more than {expected}",
        "exclusiveMaximum": f"must be less than {expected}",
        "minLength": "must not be empty" if expected == 1 else f"must be at least {expected} characters",
        "maxLength": f"must be at most {expected} characters",
        "maxItems": f"must have at most {expected} items",
        "maxProperties": f"must have at most {expected} entries",
        "minItems": f"must have at least {expected} items",
        "pattern": _PATTERN_WORDING.get(str(expected), f"must match {expected}"),
    }
    message = wording.get(str(keyword), error.message)
    return [Problem(field_path(path), f"{message} (got {show_value(value)})")]


def schema_problems(document: object) -> list[Problem]:
    """What the CRD's openAPIV3Schema says about a document (everything but the CEL rules)."""
    problems: list[Problem] = []
    for error in _schema_validator().iter_errors(document):
        problems.extend(_schema_problem(error))
    return problems


def _model_problem(error: ErrorDetails) -> Problem:
    kind = error["type"]
    value = error.get("input")
    loc = error["loc"]
    if kind == "missing":
        message = "is required (got nothing)"
    elif kind == "extra_forbidden":
        message = f"is not a field of {field_path(loc[:-1]) or 'the document'} (got {show_value(value)})"
    elif kind == "string_pattern_mismatch" and str(error.get("ctx", {}).get("pattern")) in _PATTERN_WORDING:
        message = f"{_PATTERN_WORDING[str(error.get('ctx', {})['pattern'])]} (got {show_value(value)})"
    else:
        message = re.sub(r"^Value error, ", "", error["msg"])
        message = re.sub(r"^Input should be ", "must be ", message)
        message = re.sub(r"^String should ", "must ", message)
        message = _got(message, value) + (_yaml_boolean_hint(value) if kind == "enum" else "")
    own = kind.startswith(_MODEL_OWN_ERRORS)
    return Problem(field_path(loc), message, _CLARITY_MODEL if own else _CLARITY_MODEL_GENERIC)


def model_problems(document: object) -> list[Problem]:
    """What the operator's models say about a document, cross-field rules included."""
    try:
        profile = PerformanceProfile.model_validate(document)
    except ValidationError as error:
        return [_model_problem(detail) for detail in error.errors(include_url=False)]
    problems = []
    name, namespace = profile.metadata.name, profile.metadata.namespace
    if not name:
        # The model lets metadata be partial (status updates need no name), but nothing can be applied
        # without one.
        problems.append(Problem("metadata.name", "is required (got nothing)", _CLARITY_MODEL))
    elif len(name) > 253:
        problems.append(Problem(
            "metadata.name", f"must be at most 253 characters (got {len(name)}: {show_value(name)})", _CLARITY_MODEL))
    elif not re.fullmatch(NAME_PATTERN, name):
        problems.append(Problem("metadata.name", f"{_PATTERN_WORDING[NAME_PATTERN]} (got {show_value(name)})",
                                _CLARITY_MODEL))
    # A namespace is an RFC 1123 label, as a container name is: the API server refuses anything else.
    if len(namespace) > 63:
        problems.append(Problem(
            "metadata.namespace", f"must be at most 63 characters (got {len(namespace)}: {show_value(namespace)})",
            _CLARITY_MODEL))
    elif namespace and not re.fullmatch(CONTAINER_NAME_PATTERN, namespace):
        problems.append(Problem(
            "metadata.namespace", "must be a namespace name: lower-case letters, digits and '-', starting and "
            f"ending with a letter or digit (got {show_value(namespace)})", _CLARITY_MODEL))
    return problems


def merge_problems(problems: Sequence[Problem]) -> list[Problem]:
    """One problem per field: the clearest message wins, ties go to the first; ordered by field path."""
    best: dict[str, Problem] = {}
    for problem in problems:
        kept = best.get(problem.path)
        if kept is None or problem.clarity > kept.clarity:
            best[problem.path] = problem
    return sorted(best.values(), key=lambda problem: problem.path)


def prune_null_fields(document: object, schema: Mapping[str, Any] | None = None) -> object:
    """``document`` as the API server stores it: a field set to null that the schema does not make nullable
    is dropped before defaulting (its default then applies), as Helm-rendered manifests rely on
    (``maxErrorRatio: null``). A null in a field the schema does not know is kept, to be reported."""
    node = _read_only_schema() if schema is None else schema
    if isinstance(document, Mapping):
        properties = node.get("properties", {})
        extra = node.get("additionalProperties")
        pruned: dict[Any, object] = {}
        for key, value in document.items():
            child = properties.get(key, extra if isinstance(extra, Mapping) else None)
            if child is None:
                pruned[key] = value
            elif value is not None or child.get("nullable"):
                pruned[key] = prune_null_fields(value, child)
        return pruned
    items = node.get("items")
    if isinstance(document, list) and isinstance(items, Mapping):
        return [prune_null_fields(item, items) for item in document]
    return document


def _nested_models(annotation: object) -> list[type[BaseModel]]:
    """The models a field's annotation holds directly (``Pool``, ``Pgbouncer | None``); lists are not walked."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [arg for arg in get_args(annotation) if isinstance(arg, type) and issubclass(arg, BaseModel)]


def _cross_field_problems(model: type[BaseModel], raw: Mapping[str, Any], *, path: str,
                          reported: Sequence[str]) -> list[Problem]:
    """The cross-field rules of objects that also have a field problem, which pydantic leaves unchecked (an
    object's after-validators run once its fields are valid): each such object is checked again without the
    fields that have problems, and a rule that broke is kept only when it names none of them (its CEL rule's
    ``self.<field>``), so a field left out cannot make a rule fail that the user's value would pass."""
    problems: list[Problem] = []
    prefix = f"{path}." if path else ""
    bad = {p[len(prefix):].split(".")[0].split("[")[0] for p in reported if p.startswith(prefix) and p != path}
    rules: tuple[tuple[str, str], ...] = getattr(model, "CEL_RULES", ())
    if bad and rules:
        try:
            model.model_validate({key: value for key, value in raw.items() if key not in bad})
        except ValidationError as error:
            for detail in error.errors(include_url=False):
                if detail["loc"] or not detail["type"].startswith(_MODEL_OWN_ERRORS):
                    continue
                message = re.sub(r"^Value error, ", "", detail["msg"])
                for rule, rule_message in rules:
                    if message.startswith(rule_message) and not set(re.findall(r"self\.(\w+)", rule)) & bad:
                        problems.append(Problem(path, message, _CLARITY_MODEL))
                        break
    for name, info in model.model_fields.items():
        key = info.alias or name
        child = raw.get(key)
        if not isinstance(child, Mapping):
            continue
        for nested in _nested_models(info.annotation):
            problems.extend(_cross_field_problems(nested, child, path=f"{prefix}{key}", reported=reported))
    return problems


def validate_profile(document: object) -> list[Problem]:
    """Every problem with one ``PerformanceProfile`` document (its null fields pruned as the API server prunes
    them, ``prune_null_fields``), deduplicated; empty when it is valid. A rule comparing two fields of an object
    is checked also when another field of that object has a problem (``_cross_field_problems``)."""
    document = prune_null_fields(document)
    problems = [*schema_problems(document), *model_problems(document)]
    if problems and isinstance(document, Mapping):
        reported = [problem.path for problem in problems]
        problems.extend(_cross_field_problems(PerformanceProfile, document, path="", reported=reported))
    return merge_problems(problems)


def is_perfpilot_document(document: object) -> bool:
    """Whether a document claims to be ours; other objects in the same file are not checked."""
    if not isinstance(document, Mapping):
        return True  # nothing else to go by, so it is checked (and rejected) as a profile
    api_version = document.get("apiVersion")
    if not isinstance(api_version, str) or not api_version:
        return True
    return api_version.rpartition("/")[0] == GROUP or document.get("kind") == KIND


def describe(document: object) -> str:
    """``namespace/name`` of a document (``name`` alone without a namespace), as success lines show it."""
    if not isinstance(document, Mapping):
        return "?"
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping):
        return "?"
    name = str(metadata.get("name") or "?")
    namespace = metadata.get("namespace")
    return f"{namespace}/{name}" if namespace else name
