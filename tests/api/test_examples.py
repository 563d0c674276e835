"""The example profiles in manifests/examples: valid, documented, and written in the models' own form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from perfpilot.api.crd import apply_defaults, open_api_schema
from perfpilot.api.spec import PerformanceProfile
from perfpilot.cli import main

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "manifests" / "examples").glob("*.yaml"))


def _profiles() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, document) for path in EXAMPLES for document in yaml.safe_load_all(path.read_text()) if document]


def _spec(name: str) -> dict[str, Any]:
    (document,) = [document for path, document in _profiles() if path.name == name]
    spec: dict[str, Any] = document["spec"]
    return spec


def test_the_examples_cover_hpa_resources_configmap_pool_and_cloudnativepg_pooler() -> None:
    assert len(EXAMPLES) >= 4
    hpa_only = _spec("hpa-only.yaml")
    assert hpa_only["hpa"]["enabled"] and not hpa_only["resources"]["enabled"] and not hpa_only["pool"]["enabled"]
    with_resources = _spec("hpa-and-resources.yaml")
    assert with_resources["resources"]["enabled"] and not with_resources["pool"]["enabled"]
    config_map = _spec("pgbouncer-configmap.yaml")
    assert config_map["pool"]["enabled"] and "configMapRef" in config_map["pool"]["pgbouncer"]
    pooler = _spec("cloudnativepg-pooler.yaml")
    assert pooler["pool"]["enabled"] and "poolerRef" in pooler["pool"]["pgbouncer"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_each_example_opens_with_a_comment_saying_when_to_use_it(path: Path) -> None:
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 3
    assert "Use this" in "\n".join(header)


def test_every_example_passes_perfpilot_validate(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["validate", *(str(path) for path in EXAMPLES)])
    lines = capsys.readouterr().out.splitlines()
    assert status == 0, lines
    assert len(lines) == len(_profiles())
    assert all(line.endswith(" OK") for line in lines), lines


@pytest.mark.parametrize(("path", "document"), _profiles(), ids=[path.name for path, _ in _profiles()])
def test_example_round_trips_through_the_models_to_its_api_server_defaulted_form(
    path: Path, document: dict[str, Any]
) -> None:
    # What the operator reads back (parsed, dumped by alias) must be what the API server stores after
    # defaulting: no field renamed, no value rewritten, no default differing between the two.
    profile = PerformanceProfile.model_validate(document)
    dumped = profile.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    spec_schema = open_api_schema()["properties"]["spec"]
    assert dumped == apply_defaults(spec_schema, document["spec"])
    assert PerformanceProfile.model_validate({**document, "spec": dumped}).spec == profile.spec
