"""`perfpilot run` refuses bad input before it connects anywhere: exit 2, one line naming the flag and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfpilot.actuate.kube import REQUEST_TIMEOUT_SECONDS
from perfpilot.cli import main
from perfpilot.commands.run import compute_request_timeout_seconds
from perfpilot.control.leader import LeaseSettings


@pytest.mark.parametrize(("args", "message"), [
    (["--tick", "0"], "perfpilot run: --tick: must be 1 to 300 seconds (got 0.0)"),
    (["--timeout", "0"], "perfpilot run: --timeout: Input should be greater than or equal to 0.1 (got 0.0)"),
    (["--prometheus-url", "ftp://prometheus"],
     "perfpilot run: --prometheus-url: expected an http:// or https:// URL (got 'ftp://prometheus')"),
])
def test_a_bad_setting_is_refused_naming_its_flag_and_value(args: list[str], message: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *args, "--kubeconfig", str(tmp_path / "kubeconfig")]) == 2
    assert capsys.readouterr().err.strip() == message


def test_a_missing_kubeconfig_is_refused_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert main(["run", "--prometheus-url", "http://prometheus:9090", "--kubeconfig", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"perfpilot run: kubeconfig {missing}: no such file"


def test_a_kubeconfig_that_is_not_one_is_refused_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    assert main(["run", "--prometheus-url", "http://prometheus:9090", "--kubeconfig", str(broken)]) == 2
    assert capsys.readouterr().err.startswith(f"perfpilot run: kubeconfig {broken}: ")


@pytest.mark.parametrize(("args", "message"), [
    (["--leader-election-namespace", "perfpilot", "--lease-duration", "29"],
     "perfpilot run: --lease-duration: must be 3 ticks (30 s) to 300 s, so the leader renews it in time (got 29)"),
    (["--leader-election-namespace", "perfpilot", "--identity", ""],
     "perfpilot run: --identity: must not be empty (got '')"),
    (["--metrics-port", "70000"], "perfpilot run: --metrics-port: must be 0 (off) to 65535 (got 70000)"),
    (["--header", "X-Scope-OrgID"], "perfpilot run: --header: expected NAME=VALUE (got 'X-Scope-OrgID')"),
    (["--header", "X-Scope-OrgID=a\nb"],
     "perfpilot run: --header: expected a header value without control characters such as a newline "
     "(got 'X-Scope-OrgID=a\\nb')"),
    (["--header", "Content-Type=text/plain"],
     "perfpilot run: --header: is set by the reader itself (the queries are a form POST); another value would void "
     "the query (got 'Content-Type=text/plain')"),
])
def test_bad_election_and_metrics_flags_are_refused_naming_them(args: list[str], message: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *args, "--kubeconfig", str(tmp_path / "kubeconfig")]) == 2
    assert capsys.readouterr().err.strip() == message


@pytest.mark.parametrize(("duration_seconds", "timeout_seconds"), [(300, REQUEST_TIMEOUT_SECONDS), (15, 5.0),
                                                                  (3, 1.0)])
def test_under_leader_election_an_api_call_ends_before_another_replica_may_take_over(
        duration_seconds: int, timeout_seconds: float) -> None:
    lease = LeaseSettings(namespace="perfpilot", identity="a", duration_seconds=duration_seconds)
    # A write sent just before the renew deadline (two thirds) ends by the Lease's end, when others may take it;
    # a long Lease keeps the usual timeout.
    assert compute_request_timeout_seconds(lease) == pytest.approx(timeout_seconds)
    assert lease.renew_deadline_seconds + compute_request_timeout_seconds(lease) <= lease.duration_seconds + 1e-9
    assert compute_request_timeout_seconds(None) == REQUEST_TIMEOUT_SECONDS


def test_a_prometheus_token_file_that_is_not_there_is_refused_naming_it(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "token"
    assert main(["run", "--bearer-token-file", str(missing), "--kubeconfig", str(tmp_path / "kubeconfig")]) == 2
    assert capsys.readouterr().err.strip() == f"perfpilot run: --bearer-token-file: no readable file (got '{missing}')"


def test_metrics_on_the_liveness_port_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--metrics-port", "8080", "--kubeconfig", str(tmp_path / "kubeconfig")]) == 2
    assert capsys.readouterr().err.strip() == (
        "perfpilot run: --metrics-port: the liveness endpoint uses it already (got 8080)")
