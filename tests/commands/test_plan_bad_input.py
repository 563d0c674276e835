"""`perfpilot plan` refuses input it cannot use before asking Prometheus anything: one line naming the flag (or
the profile's field) and the value, exit status 2, nothing printed on stdout. A server that answers no query with
a result is exit status 3, like one that cannot be reached: there is nothing to plan from."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from perfpilot.api.spec import PerformanceProfile
from perfpilot.cli import main
from perfpilot.observe.reader import PrometheusSettings
from perfpilot.observe.snapshot import ProfileTarget, fetch_observations
from perfpilot.observe.workload import live_config_without_manifests
from perfpilot.tuning.observations import Unknown

# Port 9 (discard) is closed on loopback: a valid URL that no test below ever gets to query.
VALID_URL = "http://127.0.0.1:9"


def plan(profile: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    before = profile.read_bytes() if profile.is_file() else None
    status = main(["plan", "--profile", str(profile), "--at", "1700000000", "--timeout", "2", *flags])
    captured = capsys.readouterr()
    assert (profile.read_bytes() if profile.is_file() else None) == before  # plan writes nothing, ever
    return status, captured.out, captured.err


def assert_refused(status: int, out: str, err: str, *parts: str) -> None:
    assert status == 2
    assert out == ""
    assert err.startswith("perfpilot plan: ")
    assert err.count("\n") == 1, err  # one line, no traceback, no multi-line library dump
    for part in parts:
        assert part in err


# --- --prometheus -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "problem"), [
    ("http://127.0.0.1:99999", "expected a port from 1 to 65535"),
    ("http://127.0.0.1:abc", "expected a port from 1 to 65535"),
    ("http://127.0.0.1:0", "expected a port from 1 to 65535"),
    ("http://", "expected a URL with a host"),
    ("http://a b/", "expected a URL without spaces or control characters"),
    ("http://prometheus:9090/\n", "expected a URL without spaces or control characters"),
    ("http://prom\tetheus:9090", "expected a URL without spaces or control characters"),
    ("http://[::1", "expected a valid URL: Invalid IPv6 URL"),  # raised a traceback
    ("http://127.0.0.1:9090/?tenant=a", "expected a URL without a query"),  # the API path would land in it
])
def test_plan_refuses_an_unusable_prometheus_url_naming_the_flag_and_value(
    profile_file: Path, capsys: pytest.CaptureFixture[str], url: str, problem: str
) -> None:
    result = plan(profile_file, capsys, "--prometheus", url)
    assert_refused(*result, f"--prometheus: {problem}", f"(got {url!r})")


def test_plan_accepts_a_bracketed_ipv6_prometheus_url_with_a_port(
    profile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Valid, and nothing listens there: the run gets as far as the server, which is the unreachable exit.
    status, out, err = plan(profile_file, capsys, "--prometheus", "http://[::1]:9")
    assert status == 3
    assert out == ""
    assert "prometheus unreachable: prometheus http://[::1]:9: " in err


def test_plan_refuses_the_profiles_unusable_prometheus_url_naming_the_field(
    profile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = profile_file
    path.write_text(path.read_text() + "  metrics: {prometheusURL: 'http://prometheus:abc'}\n")
    result = plan(path, capsys)
    assert_refused(*result, f"{path}: spec.metrics.prometheusURL: expected a port from 1 to 65535",
                   "(got 'http://prometheus:abc')")
    assert "--prometheus" not in result[2]  # the flag was not given: the message points at the file


def test_a_profiles_unusable_prometheus_url_makes_its_signals_unknown_as_unreachable_not_an_exception() -> None:
    # The operator's path: the model refuses such a URL, but the CRD cannot check one, so the API server may
    # hold a profile with it; settings for a profile's own URL come from for_url, which does not validate.
    # One bad profile must not stop the cycle for the others, nor be taken for a server's odd answers.
    document = {
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"targetRef": {"kind": "Deployment", "name": "api"}},
    }
    profile = PerformanceProfile.model_validate(document)
    profile.spec.metrics = profile.spec.metrics.model_copy(update={"prometheus_url": "http://[::1"})
    target = ProfileTarget(profile, live_config_without_manifests(profile))
    cycle = fetch_observations([target], at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
                               settings=PrometheusSettings(timeout_seconds=2))
    assert str(cycle.unreachable["http://[::1"]) == (
        "prometheus http://[::1: invalid URL: expected a valid URL: Invalid IPv6 URL"
    )
    rate = cycle[("shop", "api")].request_rate_per_second
    assert isinstance(rate, Unknown)
    assert rate.reason.startswith("prometheus unreachable: prometheus http://[::1: invalid URL")


# --- --header and --bearer-token-file -----------------------------------------------------------------


def test_plan_refuses_a_header_value_with_a_newline_naming_the_flag_and_value(
    profile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = plan(profile_file, capsys, "--prometheus", VALID_URL, "--header", "X-A=a\nb")
    assert_refused(*result, "--header: expected a header value without control characters", r"(got 'X-A=a\nb')")


def test_plan_refuses_a_header_value_with_a_nul_naming_the_flag_and_value(
    profile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = plan(profile_file, capsys, "--prometheus", VALID_URL, "--header", "X-Scope-OrgID=a\x00")
    assert_refused(*result, "--header: expected a header value without control characters",
                   r"(got 'X-Scope-OrgID=a\x00')")


@pytest.mark.parametrize("raw", ["Content-Type=application/json", "content-length=10"])
def test_plan_refuses_a_header_the_query_sets_itself_naming_the_flag_and_value(
    profile_file: Path, capsys: pytest.CaptureFixture[str], raw: str
) -> None:
    # The queries are a form POST: a Content-Type of the user's made Prometheus ignore every query's form.
    result = plan(profile_file, capsys, "--prometheus", VALID_URL, "--header", raw)
    assert_refused(*result, "--header: is set by the reader itself (the queries are a form POST)", f"(got {raw!r})")


@pytest.mark.parametrize("raw", ["X A=b", "X-A:=b", "Tenant\u00e9=b"])
def test_plan_refuses_a_header_name_that_is_not_an_http_token_naming_the_flag_and_value(
    profile_file: Path, capsys: pytest.CaptureFixture[str], raw: str
) -> None:
    result = plan(profile_file, capsys, "--prometheus", VALID_URL, "--header", raw)
    assert_refused(*result, "--header: expected a header name of letters, digits and", f"(got {raw!r})")


@pytest.mark.parametrize(("content", "problem"), [
    (b"\x89\xfe\x00\xc3(binary", "is not UTF-8 text (byte 0 is 0x89)"),
    (b"\n", "is empty"),
    # the final newline is fine, the inner one is not
    (b"first-line\nsecond-line\n", "holds no usable token: expected a header value without control characters"),
])
def test_plan_refuses_an_unusable_bearer_token_file_naming_the_flag_and_file(
    profile_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, problem: str
) -> None:
    token = tmp_path / "token"
    token.write_bytes(content)
    result = plan(profile_file, capsys, "--prometheus", VALID_URL, "--bearer-token-file", str(token))
    assert_refused(*result, f"--bearer-token-file: bearer token file {token} {problem}")


# --- a server that answers, but nothing usable --------------------------------------------------------


@pytest.fixture
def not_prometheus(request: pytest.FixtureRequest) -> Iterator[str]:
    """A web server on loopback that answers every request with ``request.param``: (status, body)."""
    status, body = request.param

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("not_prometheus", [(200, b"<html><body>a web page</body></html>")], indirect=True)
def test_plan_exits_3_when_every_query_gets_an_unexpected_answer_and_says_what_failed(
    profile_file: Path, capsys: pytest.CaptureFixture[str], not_prometheus: str
) -> None:
    status, out, err = plan(profile_file, capsys, "--prometheus", not_prometheus)
    assert status == 3
    assert out == ""  # no plan that looks like one
    assert err.count("\n") == 1, err
    assert f"perfpilot plan: no query to prometheus {not_prometheus} got a result (" in err
    assert "nothing to plan from: unexpected answer: " in err


def _matrix(result: str) -> tuple[int, bytes]:
    body = {"status": "success", "data": {"resultType": "matrix", "result": json.loads(result)}}
    return 200, json.dumps(body).encode()


_NOT_A_MATRIX = "unexpected answer: not a range matrix ("


@pytest.mark.parametrize(("not_prometheus", "said"), [
    (_matrix('["x"]'), _NOT_A_MATRIX),
    (_matrix('[{"metric": null, "values": []}]'), _NOT_A_MATRIX),
    (_matrix('[{"metric": {}, "values": [["a", "1"]]}]'), _NOT_A_MATRIX),
    (_matrix('[{"metric": {}, "values": [[1]]}]'), _NOT_A_MATRIX),
    (_matrix('[{"metric": {}, "values": [[1, "abc"]]}]'), _NOT_A_MATRIX),  # a sample value that is no number
    (_matrix('[{"metric": {}, "values": [[1, null]]}]'), _NOT_A_MATRIX),
    # JSON, but not {"data": {"result": ...}}: the client trips over it before any matrix is seen.
    ((200, b"[]"), "unexpected answer: "),
    ((200, b"null"), "unexpected answer: "),
    ((200, b'{"status": "success", "data": null}'), "unexpected answer: "),
    ((200, b'{"status": "success", "data": []}'), "unexpected answer: "),
], indirect=["not_prometheus"])
def test_plan_exits_3_without_a_traceback_when_every_answer_is_not_a_result(
    profile_file: Path, capsys: pytest.CaptureFixture[str], not_prometheus: str, said: str
) -> None:
    status, out, err = plan(profile_file, capsys, "--prometheus", not_prometheus)
    assert status == 3
    assert out == ""
    assert err.count("\n") == 1, err
    assert said in err


@pytest.mark.parametrize("not_prometheus", [(404, b"404 page not found")], indirect=True)
def test_plan_exits_3_when_every_query_is_refused_and_says_what_failed(
    profile_file: Path, capsys: pytest.CaptureFixture[str], not_prometheus: str
) -> None:
    status, out, err = plan(profile_file, capsys, "--prometheus", not_prometheus, "--json")
    assert status == 3
    assert out == ""
    assert f"no query to prometheus {not_prometheus} got a result" in err
    assert "query refused: HTTP 404: 404 page not found" in err


# --- --timeout, --step, --rate-window -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "0.09", "301"])
def test_plan_says_timeout_must_be_a_finite_number_of_seconds_between_its_bounds(
    profile_file: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    # "--timeout=-inf": argparse would take a separate "-inf" for an option.
    status = main(["plan", "--profile", str(profile_file), "--prometheus", VALID_URL, f"--timeout={value}"])
    captured = capsys.readouterr()
    assert_refused(status, captured.out, captured.err,
                   "--timeout: must be a finite number of seconds from 0.1 to 300",
                   f"(got {float(value)!r})")


def test_plan_says_step_must_be_a_whole_number_of_seconds_between_its_bounds(
    profile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = plan(profile_file, capsys, "--prometheus", VALID_URL, "--step", "0")
    assert_refused(*result, "--step: must be a whole number of seconds from 1 to 3600 (got 0)")


def test_plan_refuses_a_rate_window_shorter_than_the_step(
    profile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The peaks rate each step over the rate window: a shorter window leaves the time between steps unread.
    result = plan(profile_file, capsys, "--prometheus", VALID_URL, "--step", "300", "--rate-window", "120")
    assert_refused(*result, "--rate-window: must be at least the step (300s): the time between would go unread "
                            "(got 120)")


def test_plan_takes_a_step_longer_than_the_default_rate_window_when_no_rate_window_is_given(
    profile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The default rate window (120 s) follows a longer step rather than refuse a flag nobody gave: the run gets
    # as far as the (unreachable) server.
    status, _, err = plan(profile_file, capsys, "--prometheus", "http://127.0.0.1:9", "--step", "300",
                          "--timeout", "0.5")
    assert status == 3, err
    assert "--rate-window" not in err


def test_plan_names_only_the_step_when_the_step_is_out_of_bounds_and_no_rate_window_is_given(
    profile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = plan(profile_file, capsys, "--prometheus", VALID_URL, "--step", "5000")
    assert_refused(*result, "--step: must be a whole number of seconds from 1 to 3600 (got 5000)")
    assert "--rate-window" not in result[2]


# --- --profile and --workload-spec files --------------------------------------------------------------


def test_plan_names_the_profile_flag_file_line_and_column_of_bad_yaml_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("spec:\n  mode: [\n")
    status, out, err = plan(path, capsys, "--prometheus", VALID_URL)
    assert_refused(status, out, err, f"--profile {path}: not valid YAML at line 3, column 1: ")
    assert "<unicode string>" not in err


def test_plan_names_the_profile_flag_when_the_profile_is_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = plan(tmp_path, capsys, "--prometheus", VALID_URL)
    assert_refused(*result, f"--profile {tmp_path}: cannot read: Is a directory")
    assert "[Errno" not in result[2]


def test_plan_names_the_profile_flag_when_the_profile_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing.yaml"
    result = plan(path, capsys, "--prometheus", VALID_URL)
    assert_refused(*result, f"--profile {path}: cannot read: No such file or directory")


def test_plan_names_the_profile_flag_when_the_profile_is_not_utf8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "profile.yaml"
    path.write_bytes(b"kind: \xff\n")
    result = plan(path, capsys, "--prometheus", VALID_URL)
    assert_refused(*result, f"--profile {path}: not UTF-8 text (byte 6 is 0xff)")


def test_plan_names_the_workload_spec_flag_file_line_and_column_of_bad_yaml(
    profile_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workload = tmp_path / "workload.yaml"
    workload.write_text("kind: Deployment\nspec: {replicas: 2\n")
    result = plan(profile_file, capsys, "--prometheus", VALID_URL, "--workload-spec", str(workload))
    assert_refused(*result, f"--workload-spec {workload}: not valid YAML at line 3, column 1: ")


def test_plan_names_the_workload_spec_flag_and_file_when_the_manifests_lack_the_target(
    profile_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workload = tmp_path / "workload.yaml"
    workload.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n")
    result = plan(profile_file, capsys, "--prometheus", VALID_URL, "--workload-spec", str(workload))
    assert_refused(*result, f"--workload-spec {workload}: no Deployment named ")
