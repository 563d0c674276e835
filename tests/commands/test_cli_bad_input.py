"""Bad command-line input gets one clear line naming the flag or field and the value, and changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from perfpilot.cli import main


def test_plan_against_an_unreachable_prometheus_fails_with_the_servers_error(
    profile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 9 (discard) is closed on loopback: the connection is refused at once.
    status = main(["plan", "--profile", str(profile_file), "--prometheus", "http://127.0.0.1:9", "--timeout", "2",
                   "--at", "1700000000"])
    captured = capsys.readouterr()
    assert status == 3
    assert "prometheus unreachable" in captured.err
    assert "http://127.0.0.1:9" in captured.err
    assert captured.out == ""


def test_plan_refuses_a_ca_file_that_holds_no_certificate_before_asking_prometheus(
    profile_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("kind: NotACertificate\n")
    status = main(["plan", "--profile", str(profile_file), "--prometheus", "https://127.0.0.1:9",
                   "--ca-file", str(ca_file)])
    err = capsys.readouterr().err
    assert status == 2
    assert "--ca-file: not a PEM CA bundle (" in err
    assert f"(got {str(ca_file)!r})" in err
    assert "unreachable" not in err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--prometheus", "notaurl"], "--prometheus: expected an http:// or https:// URL (got 'notaurl')"),
        (["--prometheus", "http://127.0.0.1:9", "--bearer-token-file", "/nonexistent/token"],
         "--bearer-token-file: no readable file (got '/nonexistent/token')"),
        (["--prometheus", "http://127.0.0.1:9", "--ca-file", "/nonexistent/ca.pem"],
         "--ca-file: no readable file (got '/nonexistent/ca.pem')"),
        (["--prometheus", "http://127.0.0.1:9", "--at", "1e20"],
         "--at: not a time this machine can represent (got '1e20')"),
        (["--prometheus", "http://127.0.0.1:9", "--at", "yesterday"],
         "--at: not a time (use 2023-11-14T23:00:00Z or Unix seconds) (got 'yesterday')"),
        (["--prometheus", "http://127.0.0.1:9", "--timeout", "-1"],
         "--timeout: must be a finite number of seconds from 0.1 to 300 (got -1.0)"),
        (["--prometheus", "http://127.0.0.1:9", "--timeout", "1e-300"],  # was "prometheus unreachable"
         "--timeout: must be a finite number of seconds from 0.1 to 300 (got 1e-300)"),
        (["--prometheus", "http://127.0.0.1:9", "--at", "-1"],
         "--at: before 1970-01-01, where Prometheus holds no sample (got '-1')"),
        (["--prometheus", "http://127.0.0.1:9", "--at", "99999999999"],
         "--at: more than a day ahead of this machine's clock; Prometheus holds no sample from the future "
         "(got '99999999999')"),
        (["--prometheus", "http://127.0.0.1:9", "--header", "novalue"],
         "--header: expected NAME=VALUE (got 'novalue')"),
    ],
)
def test_plan_rejects_bad_flags_naming_flag_and_value(
    profile_file: Path, capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    status = main(["plan", "--profile", str(profile_file), *extra])
    captured = capsys.readouterr()
    assert status == 2
    assert expected in captured.err
    assert captured.out == ""


def test_plan_reports_an_invalid_profile_field_by_field(
    profile_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(profile_file.read_text().replace("targetRef: {kind: Deployment, name: api}", "mode: Sometimes"))
    status = main(["plan", "--profile", str(path), "--prometheus", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert status == 2
    assert f"{path}: spec.mode: must be one of Off, Recommend, Auto (got 'Sometimes')" in err
    assert f"{path}: spec.targetRef: is required (got nothing)" in err
    assert "errors.pydantic.dev" not in err


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--hours", "inf", "argument --hours: must be a positive number (got 'inf')"),
        ("--hours", "nan", "argument --hours: must be a positive number (got 'nan')"),
        ("--hours", "0", "argument --hours: must be a positive number (got '0')"),
        ("--scale", "-1", "argument --scale: must be a positive number (got '-1')"),
        ("--peak-rps", "0", "argument --peak-rps: must be a positive number (got '0')"),
        ("--slo-p95-ms", "abc", "argument --slo-p95-ms: must be a positive number (got 'abc')"),
        ("--start", "-5", "argument --start: must be a number >= 0 (got '-5')"),
        ("--hours", "1_0", "argument --hours: must be a positive number (got '1_0')"),  # float() reads 10
        ("--hours", "\u0663", "argument --hours: must be a positive number (got '\u0663')"),  # an Arabic-Indic 3
        ("--scale", "1e400", "argument --scale: must be a positive number (got '1e400')"),
        ("--json", "out/", "argument --json: names a folder, not a file (got 'out/')"),
        ("--plot", "out/.", "argument --plot: names a folder, not a file (got 'out/.')"),
    ],
)
def test_simulate_rejects_numbers_it_cannot_replay(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, expected: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", flag, value])
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


def test_simulate_names_the_file_and_position_of_bad_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("spec:\n  mode: [\n")
    status = main(["simulate", "--profile", str(path), "--hours", "1"])
    assert status == 2
    assert f"{path}: not valid YAML at line 3, column 1" in capsys.readouterr().err


def test_simulate_names_the_field_of_an_invalid_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("spec:\n  targetRef: {kind: Job, name: api}\n")
    status = main(["simulate", "--profile", str(path), "--hours", "1"])
    assert status == 2
    assert f"{path}: spec.targetRef.kind:" in capsys.readouterr().err


def test_simulate_runs_a_recommend_profile_as_auto_and_says_so(
    profile_file: Path, small_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run.json"
    status = main(["simulate", "--trace", str(small_trace), "--profile", str(profile_file), "--slo-p95-ms", "300",
                   "--json", str(out)])
    captured = capsys.readouterr()
    assert status == 0
    assert "mode Recommend; simulated as Auto" in captured.err
    assert "SLO p95 300 ms" in captured.out


@pytest.mark.parametrize(
    ("flag", "name", "expected"),
    [
        ("--plot", "out.txt", "--plot {path}: cannot draw a .txt file (use one of: "),
        ("--plot", "out", "--plot {path}: cannot draw a file without a suffix"),
        ("--json", ".", "--json {path}: is a directory"),
        ("--trace", "missing.csv", "--trace {path}: No such file or directory"),
        ("--profile", "missing.yaml", "--profile {path}: cannot read: No such file or directory"),
    ],
)
def test_simulate_rejects_a_file_it_cannot_read_or_write_before_replaying(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, name: str, expected: str
) -> None:
    path = tmp_path / name if name != "." else tmp_path
    status = main(["simulate", flag, str(path), "--hours", "1"])
    captured = capsys.readouterr()
    assert status == 2
    assert expected.format(path=path) in captured.err
    assert "SLO violation minutes" not in captured.out  # nothing was replayed
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # and nothing written


def test_simulate_says_when_the_trace_ends_before_the_hours_asked(
    small_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["simulate", "--trace", str(small_trace), "--start", "1800", "--hours", "5"])
    captured = capsys.readouterr()
    assert status == 0
    assert "the trace ends 1.0 h after the window's start; --hours 5 replays those 1.0 h" in captured.err
    assert ", 1.0 h; scenario right-sized" in captured.out


@pytest.mark.parametrize(("flag", "name", "expected"), [
    ("--plot", "plots.png", "--plot {path}: is a directory"),  # a folder stands at the path itself
    ("--json", "taken/out.json", "--json {path}: {parent} is not a directory"),  # a file where a folder goes
    ("--plot", "taken/deeper/out.png", "--plot {path}: {parent} is not a directory"),
])
def test_simulate_refuses_an_output_path_it_could_not_write_before_replaying(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, name: str, expected: str
) -> None:
    first = tmp_path / name.split("/", maxsplit=1)[0]
    if "/" in name:
        first.write_text("a file where a folder would go\n")
    else:
        first.mkdir()
    path = tmp_path / name
    status = main(["simulate", flag, str(path), "--hours", "1"])
    captured = capsys.readouterr()
    assert status == 2
    assert expected.format(path=path, parent=first) in captured.err
    assert "SLO violation minutes" not in captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]  # nothing created


def test_simulate_says_nothing_of_the_trace_end_for_hours_inside_the_last_step(
    small_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--trace", str(small_trace), "--start", "1800", "--hours", "1.004"]) == 0
    assert "the trace ends" not in capsys.readouterr().err


@pytest.mark.parametrize(("output_flag", "input_flag"), [
    ("--json", "--trace"), ("--plot", "--trace"), ("--json", "--profile"), ("--plot", "--profile"),
])
def test_simulate_refuses_an_output_that_is_one_of_its_inputs(
    tmp_path: Path, small_trace: Path, capsys: pytest.CaptureFixture[str], output_flag: str, input_flag: str
) -> None:
    # Inputs named as images, so that --plot's format check passes and only the clash is refused.
    inputs = {"--trace": small_trace.rename(tmp_path / "trace.png"), "--profile": tmp_path / "profile.png"}
    inputs["--profile"].write_text("slo: {latencyP95: 500ms}\n")
    before = {path: path.read_bytes() for path in inputs.values()}
    victim = inputs[input_flag]
    status = main(["simulate", "--trace", str(inputs["--trace"]), "--profile", str(inputs["--profile"]),
                   output_flag, str(victim)])
    assert status == 2
    assert f"{output_flag} {victim} is the {input_flag} file: writing it would destroy the input" in \
        capsys.readouterr().err
    assert {path: path.read_bytes() for path in before} == before


def test_simulate_refuses_a_plot_format_that_needs_latex(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "out.pgf"
    assert main(["simulate", "--plot", str(path), "--hours", "1"]) == 2
    err = capsys.readouterr().err
    assert f"--plot {path}: cannot draw a .pgf file" in err
    assert not path.exists()


def test_simulate_names_an_output_behind_a_symlink_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert main(["simulate", "--json", str(loop), "--hours", "1"]) == 2
    assert f"--json {loop}: " in capsys.readouterr().err


def test_simulate_writes_a_json_whose_name_nearly_fills_the_file_systems_limit(
    tmp_path: Path, small_trace: Path
) -> None:
    # The staging file beside it was named after it, 13 bytes longer than the 255 a name may have.
    out = tmp_path / ("x" * 250 + ".json")
    assert main(["simulate", "--trace", str(small_trace), "--json", str(out)]) == 0
    assert out.exists() and sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, small_trace.name])


def test_simulate_keeps_the_permissions_of_the_json_it_replaces(tmp_path: Path, small_trace: Path) -> None:
    out = tmp_path / "o.json"
    out.write_text("previous\n")
    out.chmod(0o600)
    assert main(["simulate", "--trace", str(small_trace), "--json", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    assert out.read_text() != "previous\n"


def test_simulate_refuses_a_scaled_peak_under_a_request_a_minute(
    small_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--trace", str(small_trace), "--peak-rps", "1e-300"]) == 2
    assert "the scaled peak 1e-300 req/s is under one request a minute" in capsys.readouterr().err


def test_a_trace_cell_python_alone_reads_as_a_number_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp_seconds,rps\n0,1_000\n60,5\n")
    assert main(["simulate", "--trace", str(trace)]) == 2
    assert f"{trace}:2: column rps: not a plain decimal number (got '1_000')" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["crd"], ["simulate", "--json", "-", "--hours", "1"]])
def test_a_closed_standard_output_is_one_line_and_exit_2_not_a_traceback(command: list[str]) -> None:
    script = f"{sys.executable} -m perfpilot.cli {' '.join(command)} >&-"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 2
    assert done.stderr == "perfpilot: standard output is closed; every command prints to it\n"
