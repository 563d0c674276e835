"""Trace CSVs load into a regular series; a bad field is refused with its file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfpilot.cli import main
from perfpilot.sim.trace import load_trace


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


def test_the_timestamp_column_may_be_anywhere_and_empty_rates_are_interpolated(tmp_path: Path) -> None:
    path = _csv(tmp_path, "requests_per_second,timestamp_seconds\n10,0\n,60\n30,120\n")
    trace = load_trace(path)
    assert trace.rates_per_second == (10.0, 20.0, 30.0)
    assert trace.start_seconds == 0.0


def test_a_rate_that_is_not_a_number_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "timestamp_seconds,requests_per_second\n0,1\n60,abc\n120,3\n")
    with pytest.raises(ValueError) as error:
        load_trace(path)
    assert str(error.value) == f"{path}:3: column requests_per_second: not a number (got 'abc')"


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN"])
def test_a_rate_that_is_not_finite_is_refused_like_a_non_number(tmp_path: Path, text: str) -> None:
    path = _csv(tmp_path, f"timestamp_seconds,requests_per_second\n0,1\n60,2\n120,{text}\n")
    with pytest.raises(ValueError) as error:
        load_trace(path)
    assert str(error.value) == f"{path}:4: column requests_per_second: not a finite number (got {text!r})"


def test_a_timestamp_that_is_not_a_number_names_the_timestamp_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "timestamp_seconds,requests_per_second\n0,1\nsoon,2\n")
    with pytest.raises(ValueError, match=r":3: column timestamp_seconds: not a number \(got 'soon'\)"):
        load_trace(path)


def test_a_trace_without_a_timestamp_column_says_it_needs_one(tmp_path: Path) -> None:
    path = _csv(tmp_path, "time,requests_per_second\n0,1\n60,2\n")
    with pytest.raises(ValueError) as error:
        load_trace(path)
    assert str(error.value) == (f"{path}: the trace needs a timestamp_seconds column "
                                "(columns: time, requests_per_second)")


@pytest.mark.parametrize(("start", "later"), [(0, "60"), (0, "30"), (1609459140, "1609459170")],
                         ids=["repeated", "going-back", "unix-time"])
def test_timestamps_must_increase_and_the_error_names_the_line_that_breaks_it(
    tmp_path: Path, start: int, later: str
) -> None:
    path = _csv(tmp_path, f"timestamp_seconds,requests_per_second\n{start},1\n{start + 60},2\n{later},3\n"
                          f"{start + 120},4\n")
    with pytest.raises(ValueError) as error:
        load_trace(path)
    assert str(error.value) == (f"{path}:4: column timestamp_seconds: {later} does not increase on "
                                f"line 3's {start + 60}")


def test_simulate_reports_a_bad_trace_value_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path, "timestamp_seconds,rps\n0,1\n60,nan\n")
    assert main(["simulate", "--trace", str(path), "--column", "rps"]) == 2
    assert f"{path}:3: column rps: not a finite number (got 'nan')" in capsys.readouterr().err
