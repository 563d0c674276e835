"""`perfpilot simulate` end to end on a short window: table, JSON (schema checked) and plot."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from perfpilot.cli import main

METRICS = {
    "type": "object",
    "required": ["slo_violation_minutes", "replica_hours", "cpu_core_hours", "pool_connection_hours",
                 "scale_events", "changes", "rollbacks", "p95_max_seconds"],
    "properties": {
        "slo_violation_minutes": {"type": "integer", "minimum": 0},
        "replica_hours": {"type": "number", "minimum": 0},
        "cpu_core_hours": {"type": "number", "minimum": 0},
        "pool_connection_hours": {"type": "number", "minimum": 0},
        "scale_events": {"type": "integer", "minimum": 0},
        "changes": {"type": "integer", "minimum": 0},
        "rollbacks": {"type": "integer", "minimum": 0},
        "p95_max_seconds": {"type": ["number", "null"]},
    },
}
SCHEMA = {
    "type": "object",
    "required": ["trace", "scenario", "runs"],
    "properties": {
        "scenario": {"type": "string"},
        "trace": {"type": "object", "required": ["name"]},
        "runs": {
            "type": "object",
            "required": ["perfpilot", "static", "k8s-default", "oracle"],
            "additionalProperties": False,
            "properties": {name: METRICS for name in ("perfpilot", "static", "k8s-default", "oracle")},
        },
    },
}


def test_simulate_writes_a_table_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, png = tmp_path / "out.json", tmp_path / "out.png"
    status = main(["simulate", "--start", "57600", "--hours", "2", "--scenario", "small-pool",
                   "--json", str(out), "--plot", str(png)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "SLO violation minutes" in printed
    assert all(name in printed for name in ("perfpilot", "static", "k8s-default", "oracle"))
    document = json.loads(out.read_text())
    jsonschema.validate(document, SCHEMA)
    assert document["scenario"] == "small-pool"
    assert document["trace"]["name"] == "worldcup98_1998-06-25_2d"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_replays_a_given_trace_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp_seconds,other,rps\n" + "".join(f"{60 * i},1,{10 + i % 7}\n" for i in range(90)))
    out = tmp_path / "o.json"
    assert main(["simulate", "--trace", str(trace), "--column", "rps", "--peak-rps", "40", "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["trace"]["peak_rps"] == pytest.approx(40.0)
    assert document["trace"]["hours"] == pytest.approx(1.5)


def test_simulate_refuses_an_unknown_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp_seconds,rps\n0,1\n60,2\n")
    assert main(["simulate", "--trace", str(trace), "--column", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
