"""Edges of the commands' input handling the other tests left open: the YAML reader's limits at their exact
bounds, how `validate` counts and names documents, the flags of `plan` and `simulate` at their bounds, and what
`simulate` keeps of a profile it is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from command_profiles import PROFILE

from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import Setting
from perfpilot.cli import main
from perfpilot.commands.inputs import MAX_DEPTH, MAX_EXPANDED_NODES, InputFileError, load_yaml_documents
from perfpilot.commands.plan import bounds_for, parse_time
from perfpilot.commands.simulate import MAX_HOURS, read_profile
from perfpilot.sim.cluster import CONTAINER

# Port 9 (discard) is closed on loopback: a run that gets past its input checks ends as unreachable, exit 3.
CLOSED = "http://127.0.0.1:9"


def _file(tmp_path: Path, text: str, name: str = "in.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the YAML reader at its limits --------------------------------------------------------------------------


def test_nesting_exactly_max_depth_levels_reads(tmp_path: Path) -> None:
    path = _file(tmp_path, "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n")
    assert load_yaml_documents(path, flag="--profile") != []


def test_aliases_expanding_to_exactly_a_million_nodes_read_and_one_node_more_is_refused(tmp_path: Path) -> None:
    # A list of 1000 scalars (1001 nodes) used 999 times in a list: 1 + 999 * 1001 = 1,000,000 nodes.
    assert MAX_EXPANDED_NODES == 1 + 999 * 1001
    text = "- &a [" + ", ".join(["x"] * 1000) + "]\n" + "- *a\n" * 998
    assert len(load_yaml_documents(_file(tmp_path, text), flag="--profile")[0]) == 999
    with pytest.raises(InputFileError, match=r"not used: expands to more than 1,000,000 nodes through its aliases"):
        load_yaml_documents(_file(tmp_path, text + "- x\n"), flag="--profile")


def test_a_list_used_as_a_mapping_key_is_refused_as_not_valid_yaml_not_a_traceback(tmp_path: Path) -> None:
    path = _file(tmp_path, "? [a, b]\n: 1\n")
    with pytest.raises(InputFileError) as error:
        load_yaml_documents(path, flag="--profile")
    assert str(error.value) == f"--profile {path}: not valid YAML at line 1, column 3: found unhashable key"


# --- validate: documents, lists and YAML errors ---------------------------------------------------------------


def test_validate_checks_each_item_of_a_performance_profile_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    item = "  - " + PROFILE.replace("\n", "\n    ").rstrip() + "\n"
    path = _file(tmp_path, "apiVersion: perfpilot.io/v1alpha1\nkind: PerformanceProfileList\nitems:\n" + item
                 + item.replace("name: api, namespace", "name: worker, namespace"))
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{path}: document 1 items[0]: shop/api OK",
                                                    f"{path}: document 1 items[1]: shop/worker OK"]


def test_validate_skips_an_empty_document_but_counts_it_in_the_numbering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, PROFILE + "---\n---\n" + PROFILE.replace("name: api, namespace", "name: worker, namespace"))
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{path}: document 1: shop/api OK",
                                                    f"{path}: document 3: shop/worker OK"]


def test_validate_names_the_line_and_column_of_bad_yaml_counted_from_1_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, "spec:\n  mode: Auto\n   objective: Cost\n")
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"{path}: not valid YAML at line 3, column 13: mapping values are not allowed here\n"



def test_validate_checks_a_document_with_metadata_field_by_field_rather_than_as_a_bare_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # metadata says it was meant as a manifest: what is wrong with it is listed, not "a bare spec".
    path = _file(tmp_path, "metadata: {name: api, namespace: shop}\ntargetRef: {kind: Deployment, name: api}\n")
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: document 1: apiVersion: is required (got nothing)",
        f"{path}: document 1: kind: is required (got nothing)",
        f"{path}: document 1: spec: is required (got nothing)",
        f"{path}: document 1: targetRef: is not a field of the document (got {{'kind': 'Deployment', 'name': 'api'}})",
    ]


# --- plan: the profile and the flags at their bounds ----------------------------------------------------------


def _plan(capsys: pytest.CaptureFixture[str], profile: Path, *flags: str) -> tuple[int, str, str]:
    status = main(["plan", "--profile", str(profile), "--timeout", "2", *flags])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_plan_refuses_a_file_without_a_performance_profile_naming_the_flag_and_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pgbouncer}\n")
    status, out, err = _plan(capsys, path, "--prometheus", CLOSED, "--at", "1700000000")
    assert (status, out) == (2, "")
    assert err == f"perfpilot plan: --profile {path}: expected exactly one PerformanceProfile, found 0\n"


def test_plan_refuses_a_profile_without_a_namespace_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, PROFILE.replace(", namespace: shop", ""))
    status, out, err = _plan(capsys, path, "--prometheus", CLOSED, "--at", "1700000000")
    assert (status, out) == (2, "")
    assert err == (f"perfpilot plan: {path}: metadata.namespace is required (the queries select by namespace)\n")


@pytest.mark.parametrize(("at", "read"), [
    ("2023-11-14T23:00:00", datetime(2023, 11, 14, 23, tzinfo=UTC)), ("0", datetime(1970, 1, 1, tzinfo=UTC)),
])
def test_plan_takes_an_at_without_a_zone_as_utc_and_the_epoch_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], at: str, read: datetime
) -> None:
    assert parse_time(at) == read
    # Past its input checks, the run ends at the closed port: exit 3, not a refusal of --at (2) nor a traceback.
    status, out, err = _plan(capsys, _file(tmp_path, PROFILE), "--prometheus", CLOSED, "--at", at)
    assert (status, out) == (3, ""), err
    assert "--at" not in err
    assert f"prometheus unreachable: prometheus {CLOSED}: " in err


def test_plan_refuses_an_at_more_than_a_day_ahead_but_not_less(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = _file(tmp_path, PROFILE)
    later = datetime.now(UTC) + timedelta(hours=36)
    status, out, err = _plan(capsys, profile, "--prometheus", CLOSED, "--at", later.isoformat())
    assert (status, out) == (2, "")
    assert "--at: more than a day ahead of this machine's clock" in err
    sooner = datetime.now(UTC) + timedelta(hours=12)
    status, out, err = _plan(capsys, profile, "--prometheus", CLOSED, "--at", sooner.isoformat())
    assert (status, out) == (3, ""), err


def test_plan_takes_the_longest_step_without_a_rate_window_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _plan(capsys, _file(tmp_path, PROFILE), "--prometheus", CLOSED, "--at", "1700000000",
                           "--step", "3600")
    assert status == 3, err
    assert "--rate-window" not in err


def test_plan_asks_the_prometheus_of_the_flag_rather_than_the_profiles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = _file(tmp_path, PROFILE + "  metrics: {prometheusURL: 'http://127.0.0.1:9'}\n")
    status, _, err = _plan(capsys, profile, "--prometheus", "http://[::1]:9", "--at", "1700000000")
    assert status == 3
    assert "prometheus unreachable: prometheus http://[::1]:9: " in err
    assert "127.0.0.1" not in err


def test_plan_refuses_a_prometheus_flag_the_profiles_field_would_refuse_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The reader's settings take any length; the profile's prometheusURL at most 2048 characters.
    at_limit = CLOSED + "/" + "a" * (2048 - len(CLOSED) - 1)
    status, _, err = _plan(capsys, _file(tmp_path, PROFILE), "--prometheus", at_limit, "--at", "1700000000")
    assert status == 3, err  # taken, and unreachable
    status, out, err = _plan(capsys, _file(tmp_path, PROFILE), "--prometheus", at_limit + "a", "--at", "1700000000")
    assert status == 2, err
    assert err.startswith("perfpilot plan: --prometheus: must be at most 2048 characters (got 2049 characters: ")
    assert "Traceback" not in err and out == ""
    # A long URL the reader's settings refuse is shortened in the message too.
    status, _, err = _plan(capsys, _file(tmp_path, PROFILE), "--prometheus", at_limit + "?x", "--at", "1700000000")
    assert status == 2, err
    assert err.startswith("perfpilot plan: --prometheus: ") and len(err) < 400, err


def _spec(**sections: object) -> PerformanceProfileSpec:
    return PerformanceProfileSpec.model_validate({"targetRef": {"kind": "Deployment", "name": "api"}, **sections})


def test_plan_shows_the_bounds_of_each_utilisation_target_from_its_own_range() -> None:
    spec = _spec(hpa={"cpuTarget": {"min": 40, "max": 65}, "memoryTarget": {"min": 70, "max": 90}})
    assert bounds_for(Setting.HPA_CPU_TARGET, spec) == "40..65%"
    assert bounds_for(Setting.HPA_MEMORY_TARGET, spec) == "70..90%"


def test_plan_shows_max_replicas_as_not_raised_without_a_ceiling_and_up_to_it_with_one() -> None:
    assert bounds_for(Setting.HPA_MAX_REPLICAS, _spec()) == "not raised"
    assert bounds_for(Setting.HPA_MAX_REPLICAS, _spec(hpa={"maxReplicasCeiling": 30})) == "up to 30"


# --- simulate: flags at their bounds ---------------------------------------------------------------------------


def test_simulate_takes_a_start_of_zero_seconds_from_the_trace_start(
    small_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--trace", str(small_trace), "--start", "0", "--hours", "0.5"]) == 0
    assert ", 30 min; scenario right-sized" in capsys.readouterr().out


def test_simulate_takes_hours_of_exactly_its_maximum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Accepted by the flag; the run then stops at the missing trace, before any replay.
    missing = tmp_path / "missing.csv"
    assert main(["simulate", "--trace", str(missing), "--hours", f"{MAX_HOURS:g}"]) == 2
    err = capsys.readouterr().err
    assert "--hours" not in err
    assert f"--trace {missing}: No such file or directory" in err


def test_simulate_takes_hours_of_exactly_one_step_of_the_trace(
    small_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--trace", str(small_trace), "--hours", str(1 / 60)]) == 0
    assert "shorter than one step" not in capsys.readouterr().err


def test_simulate_refuses_a_start_at_the_traces_end(small_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # small_trace: 90 samples a minute apart from 0 s, each a minute long: it ends at 5400 s.
    assert main(["simulate", "--trace", str(small_trace), "--start", "5400"]) == 2
    assert "--start 5400: at or after the trace's end 5400" in capsys.readouterr().err


def test_simulate_replays_a_scaled_peak_of_exactly_one_request_a_minute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = _file(tmp_path, "timestamp_seconds,rps\n" + "".join(f"{60 * i},1\n" for i in range(30)), "t.csv")
    assert main(["simulate", "--trace", str(trace), "--scale", repr(1 / 60)]) == 0
    assert "under one request a minute" not in capsys.readouterr().err


# --- simulate: what it keeps of the profile it is given -------------------------------------------------------


def test_simulate_accepts_a_profile_slo_of_exactly_one_millisecond(tmp_path: Path) -> None:
    path = _file(tmp_path, PROFILE + "  slo: {latencyP95: 1ms}\n")
    assert read_profile(path, None).slo.latency_p95.seconds == 0.001


def test_simulate_ignores_a_profile_slo_out_of_its_range_when_the_flag_overrides_it(tmp_path: Path) -> None:
    path = _file(tmp_path, PROFILE + "  slo: {latencyP95: 0.5ms}\n")
    assert read_profile(path, 300).slo.latency_p95.seconds == 0.3


def test_simulate_keeps_the_profiles_error_objective_when_the_flag_overrides_its_latency(tmp_path: Path) -> None:
    path = _file(tmp_path, PROFILE + "  slo: {latencyP95: 500ms, maxErrorRatio: 0.01}\n")
    slo = read_profile(path, 300).slo
    assert (slo.latency_p95.seconds, slo.max_error_ratio) == (0.3, 0.01)


def test_simulate_leaves_a_profile_that_sizes_the_models_container_among_others_as_it_is(tmp_path: Path) -> None:
    path = _file(tmp_path, PROFILE + f"  mode: Auto\n  resources: {{containers: [{CONTAINER}, sidecar]}}\n")
    notes: list[str] = []
    assert read_profile(path, None, notes=notes).resources.containers == [CONTAINER, "sidecar"]
    assert notes == []


def test_simulate_says_kind_is_required_for_a_profile_with_metadata_but_no_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, "metadata: {name: api}\nspec:\n  targetRef: {kind: Deployment, name: api}\n")
    assert main(["simulate", "--profile", str(path), "--hours", "1"]) == 2
    assert f"--profile {path}: kind is required (kind: PerformanceProfile)" in capsys.readouterr().err
