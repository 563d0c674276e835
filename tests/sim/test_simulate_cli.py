"""`perfpilot simulate` end to end on a short window: table, JSON (schema checked) and plot."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from perfpilot.cli import main
from perfpilot.commands.simulate import read_profile
from perfpilot.sim import plot
from perfpilot.sim.cluster import ClusterParams

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
    runs = document["runs"]
    # The default profile tunes the pool: perfpilot grows the small one, the untuned runs keep it.
    assert runs["perfpilot"]["changes"] > 0 and runs["static"]["changes"] == runs["k8s-default"]["changes"] == 0
    assert runs["perfpilot"]["pool_connection_hours"] > runs["static"]["pool_connection_hours"]
    assert runs["oracle"]["replica_hours"] < runs["static"]["replica_hours"]


def test_simulate_runs_perfpilot_with_the_profile_given(tmp_path: Path) -> None:
    # The same window as above with a profile that leaves the pool alone: perfpilot never grows it.
    profile, out = tmp_path / "profile.yaml", tmp_path / "out.json"
    profile.write_text("targetRef: {kind: Deployment, name: api}\nmode: Auto\npool: {enabled: false}\n")
    assert main(["simulate", "--start", "57600", "--hours", "2", "--scenario", "small-pool",
                 "--profile", str(profile), "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert runs["perfpilot"]["pool_connection_hours"] == runs["static"]["pool_connection_hours"]


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


PROFILE = """\
apiVersion: perfpilot.io/v1alpha1
kind: PerformanceProfile
metadata: {name: api, namespace: shop}
spec:
  targetRef: {kind: %s, name: api}
"""
CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pgbouncer}\ndata: {a: b}\n"


@pytest.mark.parametrize(("arguments", "expected"), [
    (["--hours", "1e308"], "argument --hours: must be at most 8784 hours (got '1e308')"),
    (["--slo-p95-ms", "1e6"], "argument --slo-p95-ms: must be at least 1 and at most 600000 ms (got '1e6')"),
    (["--slo-p95-ms", "1e-7"], "argument --slo-p95-ms: must be at least 1 and at most 600000 ms (got '1e-7')"),
    (["--start", "2000000000"], "--start 2000000000: at or after the trace's end 898984800"),
    (["--hours", "1", "--scale", "1e300"], "--scale/--peak-rps: the scaled peak 5.2e+302 req/s is beyond what"),
    (["--hours", "0.001"], "--hours 0.001: shorter than one step of the trace (60 s)"),
    (["--start", "800000000"], "--start 800000000: before the trace's first timestamp 898812000 as a Unix time, "
                               "and past its end (48.0 h) as seconds from its start"),
])
def test_simulate_refuses_a_window_or_load_it_cannot_replay_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], expected: str
) -> None:
    out = tmp_path / "out.json"
    try:
        status = main(["simulate", *arguments, "--json", str(out)])
    except SystemExit as exit_info:  # argparse's own refusals
        status = exit_info.code
    assert status == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


RECOMMEND = PROFILE % "Deployment" + "  mode: Recommend\n"  # read from the file: simulated as Auto, with a note


@pytest.mark.parametrize(("content", "runs"), [
    (CONFIG_MAP + "---\n" + RECOMMEND, True),  # other objects beside it are ignored
    ("apiVersion: v1\nkind: List\nitems:\n- " + RECOMMEND.replace("\n", "\n  "), True),
    ("targetRef: {kind: Deployment, name: api}\nmode: Recommend\n", True),  # a bare spec
    (CONFIG_MAP, False),
    (PROFILE % "Deployment" + "---\n" + PROFILE % "Deployment", False),
    ("", False),
])
def test_simulate_reads_the_one_profile_of_a_file_as_plan_does(
    tmp_path: Path, small_trace: Path, capsys: pytest.CaptureFixture[str], content: str, runs: bool
) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(content)
    status = main(["simulate", "--trace", str(small_trace), "--profile", str(path)])
    if runs:
        assert status == 0
        assert "has mode Recommend; simulated as Auto" in capsys.readouterr().err
    else:
        assert status == 2
        assert f"--profile {path}: expected one PerformanceProfile (or a bare spec), found" in capsys.readouterr().err


def test_simulate_names_the_profile_flag_for_a_file_that_is_not_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "profile.yaml"
    path.write_bytes(b"\xce\xff\x00\x81binary")
    assert main(["simulate", "--profile", str(path), "--hours", "1"]) == 2
    assert f"--profile {path}: not UTF-8 text (byte 0 is 0xce)" in capsys.readouterr().err


def test_simulate_says_a_statefulset_is_rolled_out_as_a_deployment(
    tmp_path: Path, small_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(PROFILE % "StatefulSet")
    assert main(["simulate", "--trace", str(small_trace), "--profile", str(path)]) == 0
    assert "targets a StatefulSet; the model cluster rolls pods out as a Deployment does" in capsys.readouterr().err


# Under the SLO nothing could reach (1 ms), the 175 ms a request takes, and the 285 ms p95 with no queue.
@pytest.mark.parametrize("slo_ms", [1, 100, 250])
def test_simulate_says_when_the_slo_is_below_the_p95_with_no_queue_and_the_oracle_keeps_up_at_least(
    small_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], slo_ms: int
) -> None:
    out = tmp_path / "run.json"
    assert main(["simulate", "--trace", str(small_trace), "--slo-p95-ms", str(slo_ms), "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"the SLO p95 {slo_ms} ms is below the model's p95 with no queue at all (285 ms" in captured.err
    assert f"SLO p95 {slo_ms} ms" in captured.out
    runs = json.loads(out.read_text())["runs"]
    # Every minute is a violation; the oracle is still a lower bound: the fewest pods that keep up, not its cap.
    assert runs["oracle"]["slo_violation_minutes"] == runs["static"]["slo_violation_minutes"] > 0
    assert runs["oracle"]["replica_hours"] <= runs["static"]["replica_hours"]
    # Its p95 stays within the request timeout (10 s), as every run's does: beyond it clients give up.
    assert runs["oracle"]["p95_max_seconds"] <= ClusterParams().request_timeout_seconds


@pytest.mark.parametrize("redirect", ["pipe", "file"])
@pytest.mark.parametrize("json_path", ["/dev/stdout", "-"])  # "-" as `validate -` reads standard input
def test_json_to_standard_output_is_all_of_it_and_the_table_goes_to_standard_error(
    small_trace: Path, tmp_path: Path, redirect: str, json_path: str
) -> None:
    # For a pipe into jq. Renaming a staged file over /dev/stdout's target replaced a redirected file, and a
    # pipe's target ("pipe:[...]") is no path at all: the JSON goes through the stream.
    command = [sys.executable, "-m", "perfpilot.cli", "simulate", "--trace", str(small_trace), "--json", json_path]
    if redirect == "pipe":
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        assert done.returncode == 0, done.stderr
        out = done.stdout
    else:
        target = tmp_path / "out.txt"
        with target.open("w") as stdout:
            done = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, text=True, check=False, timeout=120)
        assert done.returncode == 0, done.stderr
        out = target.read_text()
    assert set(json.loads(out)["runs"]) == {"perfpilot", "static", "k8s-default", "oracle"}
    assert "perfpilot        static   k8s-default        oracle" in done.stderr


def test_json_to_a_redirected_standard_error_keeps_the_notes_before_it(small_trace: Path, tmp_path: Path) -> None:
    errors = tmp_path / "err.txt"
    command = [sys.executable, "-m", "perfpilot.cli", "simulate", "--trace", str(small_trace), "--slo-p95-ms", "100",
               "--json", "/dev/stderr"]
    with errors.open("w") as stderr:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True, check=False, timeout=120)
    assert done.returncode == 0
    notes, _, document = errors.read_text().partition("{")
    assert "note: the SLO p95 100 ms is below the model's p95 with no queue" in notes
    assert json.loads("{" + document)["scenario"] == "right-sized"


def test_a_plot_to_the_table_s_own_output_is_refused_before_the_replay(small_trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    command = [sys.executable, "-m", "perfpilot.cli", "simulate", "--trace", str(small_trace), "--plot", str(out)]
    with out.open("w") as stdout:
        done = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, text=True, check=False, timeout=120)
    assert done.returncode == 2
    assert f"--plot {out}: is the table's standard output or error" in done.stderr
    assert out.read_text() == ""


def test_simulate_refuses_one_path_for_both_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    same = tmp_path / "same.png"
    assert main(["simulate", "--json", str(same), "--plot", str(same)]) == 2
    assert "--json and --plot name the same file" in capsys.readouterr().err
    assert not same.exists()


def test_simulate_says_where_it_replays_a_straight_line_across_a_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "gap.csv"
    minutes = [*range(60), *range(240, 300)]  # three hours without a sample
    trace.write_text("timestamp_seconds,rps\n" + "".join(f"{60 * m},{10 + m % 5}\n" for m in minutes))
    assert main(["simulate", "--trace", str(trace), "--hours", "5"]) == 0
    assert "note: the trace has no sample from 3540 to 14400 (3.0 h); the window replays a straight line" in (
        capsys.readouterr().err)


def test_simulate_says_when_the_peak_needs_more_pods_than_max_replicas(
    small_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 1000 req/s x 55 ms of CPU = 55 cores; 10 right-sized pods get 1.5 cores each.
    assert main(["simulate", "--trace", str(small_trace), "--peak-rps", "1000"]) == 0
    assert ("the peak 1000 req/s needs 55.0 CPU cores, more than the scenario's 10 pods get (15.0): static and "
            "k8s-default cannot meet the SLO there; perfpilot only by raising maxReplicas") in capsys.readouterr().err
    # 90,000 req/s need 4950 cores: beyond 10 pods of resources.cpu.max too (no maxReplicasCeiling by default).
    assert main(["simulate", "--trace", str(small_trace), "--peak-rps", "90000"]) == 0
    assert "no run can meet the SLO there, perfpilot's bounds included" in capsys.readouterr().err


def test_simulate_names_a_profile_without_its_kind(
    tmp_path: Path, small_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text((PROFILE % "Deployment").replace("kind: PerformanceProfile\n", ""))
    assert main(["simulate", "--trace", str(small_trace), "--profile", str(path)]) == 2
    assert f"--profile {path}: kind is required (kind: PerformanceProfile)" in capsys.readouterr().err


@pytest.mark.parametrize("latency", ["0.5ms", "11m", "999999h"])
def test_simulate_refuses_a_profile_slo_the_flag_would_refuse(
    tmp_path: Path, small_trace: Path, capsys: pytest.CaptureFixture[str], latency: str
) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(PROFILE % "Deployment" + f"  slo: {{latencyP95: {latency}}}\n")
    assert main(["simulate", "--trace", str(small_trace), "--profile", str(path)]) == 2
    err = capsys.readouterr().err
    assert (f"--profile {path}: spec.slo.latencyP95: the simulator needs 1 to 600000 ms, as --slo-p95-ms does "
            f"(got ") in err
    assert "simulated as Auto" not in err  # a profile refused gets no note on how it would have run


def test_a_window_under_an_hour_is_headed_in_minutes(small_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--trace", str(small_trace), "--hours", "0.05"]) == 0
    assert "), 3 min; scenario right-sized" in capsys.readouterr().out  # was "0.1 h"


def test_simulate_writes_neither_file_when_the_plot_fails_after_the_replay(
    tmp_path: Path, small_trace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fill_the_disk(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(plot, "write_plot", fill_the_disk)
    out, png = tmp_path / "out" / "o.json", tmp_path / "out" / "o.png"
    assert main(["simulate", "--trace", str(small_trace), "--json", str(out), "--plot", str(png)]) == 1
    assert f"perfpilot simulate: cannot write {png}: No space left on device" in capsys.readouterr().err
    # No lone JSON, no staging file, and not the folder made for them: the failed run changed nothing.
    assert list(tmp_path.iterdir()) == [small_trace]


def test_simulate_replaces_an_existing_json_only_when_the_new_one_is_complete(
    tmp_path: Path, small_trace: Path
) -> None:
    out = tmp_path / "o.json"
    out.write_text("previous results\n")
    assert main(["simulate", "--trace", str(small_trace), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["scenario"] == "right-sized"
    assert [path.name for path in tmp_path.iterdir() if path.name.endswith(".tmp")] == []


def test_simulate_reads_header_names_with_spaces_after_the_commas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp_seconds, other, rps\n" + "".join(f"{60 * i},1,{10 + i % 7}\n" for i in range(30)))
    out = tmp_path / "o.json"
    assert main(["simulate", "--trace", str(trace), "--column", "rps", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["trace"]["column"] == "rps"


def test_simulate_prefixes_every_line_of_a_profile_with_several_problems(
    tmp_path: Path, small_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(PROFILE % "Deployment" + "  mode: Sometimes\n  objective: Cheap\n")
    assert main(["simulate", "--trace", str(small_trace), "--profile", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2
    assert all(line.startswith(f"perfpilot simulate: --profile {path}: ") for line in lines), lines


def test_simulate_writes_through_a_symlinked_json_and_keeps_the_link(tmp_path: Path, small_trace: Path) -> None:
    target = tmp_path / "results" / "latest.json"
    target.parent.mkdir()
    target.write_text("{}\n")
    link = tmp_path / "out.json"
    link.symlink_to(target)
    assert main(["simulate", "--trace", str(small_trace), "--json", str(link)]) == 0
    assert link.is_symlink()
    assert json.loads(target.read_text())["scenario"] == "right-sized"


def test_an_empty_output_path_is_refused_naming_the_flag_and_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--hours", "1", "--json", ""])
    assert exit_info.value.code == 2
    assert "argument --json: must name a file, or - for standard output (got '')" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["missing", "existing", "symlink"])
def test_an_output_the_file_system_refuses_is_refused_before_the_replay(
    small_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    # os.access says yes to root for /proc; the file system does not. An existing file is replaced by a file
    # staged beside it (beside a symlink's target), so that is where the check asks.
    path = {"missing": Path("/proc/perfpilot-nope.json"), "existing": Path("/proc/version"),
            "symlink": tmp_path / "link.json"}[how]
    if how == "symlink":
        path.symlink_to("/proc/version")
    assert main(["simulate", "--trace", str(small_trace), "--json", str(path)]) == 2
    captured = capsys.readouterr()
    assert f"--json {path}: not writable (" in captured.err
    assert captured.out == ""  # no table: nothing was replayed


def test_a_request_count_per_minute_is_replayed_per_second_and_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp_seconds,requests_per_minute\n" + "".join(f"{60 * i},{600 + 60 * (i % 7)}\n"
                                                                        for i in range(90)))
    out = tmp_path / "o.json"
    assert main(["simulate", "--trace", str(trace), "--scale", "1", "--json", str(out)]) == 0
    assert "column requests_per_minute counts per minute: read as requests_per_minute / 60" in capsys.readouterr().err
    assert json.loads(out.read_text())["trace"]["peak_rps"] == pytest.approx(16.0)  # 960 a minute


def test_a_resource_column_is_said_to_be_replayed_as_the_shape_of_the_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp_seconds,cpu_util_percent\n" + "".join(f"{60 * i},{40 + i % 7}\n" for i in range(90)))
    assert main(["simulate", "--trace", str(trace)]) == 0
    assert "column cpu_util_percent is not a request rate: it is replayed as the shape of the load" in \
        capsys.readouterr().err


def test_a_window_refused_for_no_traffic_gets_no_note_before_the_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "zeros.csv"
    trace.write_text("timestamp_seconds,rps\n" + "".join(f"{60 * i},0\n" for i in range(4)))
    assert main(["simulate", "--trace", str(trace)]) == 2
    err = capsys.readouterr().err
    assert "no traffic to scale" in err
    assert "note:" not in err  # "the trace ends 3 min after the window's start" came first


def test_a_profile_sizing_a_container_the_model_lacks_sizes_the_models_one_container(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # manifests/examples name their container "api"; the model's pods have one, "app". Left alone, the profile
    # selected no container and its resources were never tuned, without a word.
    path = tmp_path / "profile.yaml"
    path.write_text(PROFILE % "Deployment" + "  resources: {containers: [api]}\n")
    notes: list[str] = []
    spec = read_profile(path, None, notes=notes)
    assert spec.resources.containers == ["app"]
    assert notes == [f"{path} has mode Recommend; simulated as Auto",
                     f"{path} sizes containers api; the model's pods have one container, app, which is simulated "
                     f"as the one sized"]
    assert capsys.readouterr().err == ""  # printed by simulate once every input is known good


def test_the_profiles_notes_are_not_printed_before_a_refusal_of_another_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(PROFILE % "StatefulSet")
    assert main(["simulate", "--profile", str(path), "--column", "nope"]) == 2
    err = capsys.readouterr().err
    assert "column 'nope' not in the trace" in err
    assert "note:" not in err


def test_simulate_notes_a_load_that_never_showed_the_scenarios_problem(
    small_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A gentle 90 minutes: static's one pod a minute keeps up, so slow-scale-up has nothing to show.
    assert main(["simulate", "--trace", str(small_trace), "--scenario", "slow-scale-up"]) == 0
    captured = capsys.readouterr()
    assert "static met the SLO all window: this load never showed what the slow-scale-up scenario" in captured.err
    static_minutes = next(line for line in captured.out.splitlines() if line.startswith("SLO violation minutes"))
    assert static_minutes.split()[4] == "0"


def test_a_failed_write_removes_every_folder_it_made_for_two_outputs(
    tmp_path: Path, small_trace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fill_the_disk(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(plot, "write_plot", fill_the_disk)
    out, png = tmp_path / "a" / "b" / "o.json", tmp_path / "a" / "b" / "c" / "o.png"
    assert main(["simulate", "--trace", str(small_trace), "--json", str(out), "--plot", str(png)]) == 1
    assert list(tmp_path.iterdir()) == [small_trace]  # a, a/b and a/b/c all gone
