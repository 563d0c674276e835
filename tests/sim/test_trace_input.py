"""Trace CSVs from the outside world: implausible timestamps, bad cells, odd encodings, finer steps and gaps.

Each bad input is refused by ``load_trace`` with a ``ValueError`` naming the file, the line, the column and
the value (``simulate`` prints it and exits 2); each good one resamples as the module docstring says.
"""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from perfpilot.cli import main
from perfpilot.sim.trace import LATEST_SECONDS, Trace, join_traces, load_trace, scale_for_peak

HEADER = "timestamp_seconds,rps\n"


def _csv(tmp_path: Path, text: str, *, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _refusal(path: Path, **kwargs: str) -> str:
    with pytest.raises(ValueError) as error:
        load_trace(path, **kwargs)
    return str(error.value)


# 1. A far-out timestamp: refused while reading, not after allocating a grid over the whole span.

def test_a_timestamp_far_after_the_others_is_refused_before_anything_is_allocated(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + "0,1\n60,2\n100000000000,3\n")
    tracemalloc.start()
    try:
        message = _refusal(path)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message == (f"{path}:4: column timestamp_seconds: 100000000000 is 100,000,000,000 s (3,168.8 years) "
                       "after line 2's 0: a 60 s grid over that span would need 1,666,666,667 points, more than "
                       "the 5,256,000 (ten years of minutes) a trace may have")
    assert peak_bytes < 1_000_000  # the old loader filled 1.7e9 points: gigabytes, then MemoryError


def test_a_span_that_overflowed_the_grid_arithmetic_is_refused_by_the_timestamp_range(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + "0,1\n1e300,2\n")
    assert _refusal(path) == (f"{path}:3: column timestamp_seconds: 1e300 is not Unix seconds between 0002-01-01 "
                              "and 9999-01-01 (-62104060800 to 253370764800); line 2 has 0")


# 2. Timestamps must be plausible Unix seconds.

def test_millisecond_timestamps_are_refused_and_named_as_milliseconds(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + "1600000000000,1\n1600000060000,2\n")
    assert _refusal(path) == (f"{path}:2: column timestamp_seconds: 1600000000000 is after the year 9999 as Unix "
                              "seconds; the timestamps look like milliseconds (divide them by 1000)")


@pytest.mark.parametrize(("stamp", "line"), [("1000000000000", 4), ("-1e12", 2)], ids=["after", "before"])
def test_a_timestamp_a_datetime_cannot_hold_is_refused_with_its_line(tmp_path: Path, stamp: str, line: int) -> None:
    rows = f"0,1\n60,2\n{stamp},3\n" if line == 4 else f"{stamp},1\n0,2\n"
    path = _csv(tmp_path, HEADER + rows)
    message = _refusal(path)
    assert message.startswith(f"{path}:{line}: column timestamp_seconds: {stamp} is not Unix seconds between "
                              "0002-01-01 and 9999-01-01")
    assert message.endswith("; line 3 has 60") if line == 4 else message.endswith(")")


def test_the_latest_accepted_timestamp_leaves_the_replay_clock_a_year_of_dates(tmp_path: Path) -> None:
    trace = load_trace(_csv(tmp_path, HEADER + f"{LATEST_SECONDS - 60:.0f},1\n{LATEST_SECONDS:.0f},2\n"))
    end = trace.start_seconds + trace.duration_seconds
    assert datetime.fromtimestamp(end, tz=UTC) + timedelta(days=364) < datetime.max.replace(tzinfo=UTC)


@pytest.mark.parametrize(("rows", "expected"), [
    # a row without a rate is a gap, but its timestamp is still checked
    ("0,1\nsoon,\n120,3\n", "{path}:3: column timestamp_seconds: not a number (got 'soon')"),
    ("0,1\n,2\n", "{path}:3: column timestamp_seconds: empty; every row needs a timestamp"),
    # rates: never clamped or skipped silently
    ("0,1\n60,-2.5\n120,3\n", "{path}:3: column rps: a rate cannot be negative (got '-2.5')"),
    ("0,-1\n60,-2\n", "{path}:2: column rps: a rate cannot be negative (got '-1')"),
    # a blank cell is an empty one (", "-separated files): here it leaves one rate
    ("0,1\n60, \n", "{path}: column rps: a trace needs at least two rows with a rate (found 1)"),
    ("0,1\n60\n120,3\n", "{path}:3: the row has 1 field, the header 2 (timestamp_seconds, rps)"),  # not a gap
    ("0,\n60,5\n120,\n", "{path}: column rps: a trace needs at least two rows with a rate (found 1)"),
])
def test_a_bad_cell_or_row_is_refused_naming_file_line_column_and_value(
    tmp_path: Path, rows: str, expected: str
) -> None:
    path = _csv(tmp_path, HEADER + rows)
    assert _refusal(path) == expected.format(path=path)


def test_a_window_with_no_traffic_names_the_trace_and_column_it_cannot_scale() -> None:
    silent = Trace("quiet", "rps", 0.0, 60.0, (0.0, 0.0))
    with pytest.raises(ValueError) as error:
        scale_for_peak(silent, cpu_demand_seconds=0.05, cpu_request_millicores=500)
    assert str(error.value) == "quiet: column rps: the trace window has no traffic to scale (its peak is 0)"


# 4. The column picker.

def test_the_timestamp_column_cannot_be_picked_as_the_rate(tmp_path: Path) -> None:
    path = _csv(tmp_path, "timestamp_seconds,rps,other\n0,1,2\n60,2,3\n")
    assert _refusal(path, column="timestamp_seconds") == (
        f"{path}: column timestamp_seconds holds the timestamps, not a rate (rate columns: rps, other)")


def test_simulate_refuses_the_timestamp_column_as_the_rate_and_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path, HEADER + "0,1\n60,2\n")
    assert main(["simulate", "--trace", str(path), "--column", "timestamp_seconds"]) == 2
    assert f"{path}: column timestamp_seconds holds the timestamps, not a rate" in capsys.readouterr().err


def test_an_unknown_column_names_the_file(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + "0,1\n60,2\n")
    assert _refusal(path, column="nope") == f"{path}: column 'nope' not in the trace (columns: timestamp_seconds, rps)"


def test_a_rate_column_named_twice_is_refused_as_ambiguous(tmp_path: Path) -> None:
    path = _csv(tmp_path, "timestamp_seconds,rps,rps\n0,1,2\n60,2,3\n")
    assert _refusal(path) == f"{path}: column rps appears 2 times in the header"


# 5. Encodings.

def test_a_csv_with_a_utf8_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "0,1\n60,2\n").encode())
    assert load_trace(path).rates_per_second == (1.0, 2.0)


def test_a_binary_file_is_refused_as_not_utf8_text(tmp_path: Path) -> None:
    path = tmp_path / "image.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert _refusal(path) == f"{path}: not UTF-8 text (byte 0x89 cannot be decoded); a trace is a UTF-8 CSV file"


def test_simulate_reports_a_binary_trace_without_a_traceback_and_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "image.csv"
    path.write_bytes(HEADER.encode() + b"0,1\n60,\xff\xfe\n")
    assert main(["simulate", "--trace", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: not UTF-8 text (byte 0xff cannot be decoded)" in err
    assert "Traceback" not in err


def test_an_empty_file_says_it_is_empty(tmp_path: Path) -> None:
    path = _csv(tmp_path, "")
    assert _refusal(path) == f"{path}: the file is empty; a trace needs a header with a timestamp_seconds column"


# 6. Resampling: finer steps are averaged, coarser ones interpolated, 60 s copied.

def test_a_finer_trace_is_averaged_over_each_minute_so_a_spike_keeps_its_requests(tmp_path: Path) -> None:
    # 10 req/s with a 1000 req/s spike in the last 10 s of every minute: the old loader kept every sixth
    # sample and showed a flat 10.
    rows = "".join(f"{10 * i},{1000 if i % 6 == 5 else 10}\n" for i in range(18))
    trace = load_trace(_csv(tmp_path, HEADER + rows))
    assert trace.rates_per_second == (175.0, 175.0, 175.0)
    assert sum(trace.rates_per_second) * 60 == 3 * (5 * 10 + 1000) * 10  # the request count is kept


def test_irregular_steps_average_the_short_intervals_each_sample_holding_until_the_next(tmp_path: Path) -> None:
    # Samples hold [0,45) 10, [45,90) 100, [90,150) 10, and the last one [150,210) 20 (as long as the one
    # before it): minute 0 is (45*10 + 15*100)/60, minute 1 (30*100 + 30*10)/60, minute 2 (30*10 + 30*20)/60,
    # and minute 3, half covered by the last sample, is kept with its rate.
    trace = load_trace(_csv(tmp_path, HEADER + "0,10\n45,100\n90,10\n150,20\n"))
    assert trace.rates_per_second == pytest.approx((32.5, 55.0, 15.0, 20.0))


def test_a_finer_trace_keeps_its_request_count_to_the_last_minute(tmp_path: Path) -> None:
    # 10 s samples over [0, 600): ten whole minutes, every request counted, none made up past the end.
    rows = "".join(f"{10 * i},{i % 7}\n" for i in range(60))
    trace = load_trace(_csv(tmp_path, HEADER + rows))
    assert len(trace.rates_per_second) == 10
    assert sum(rate * 60 for rate in trace.rates_per_second) == pytest.approx(sum(10 * (i % 7) for i in range(60)))


def test_a_last_step_the_samples_barely_reach_is_left_out(tmp_path: Path) -> None:
    # 10 s samples over [0, 610): the sample at 600 holds 10 s of the eleventh minute, not enough to fill it.
    trace = load_trace(_csv(tmp_path, HEADER + "".join(f"{10 * i},4\n" for i in range(61))))
    assert len(trace.rates_per_second) == 10


def test_a_coarser_trace_is_still_interpolated_between_its_samples(tmp_path: Path) -> None:
    trace = load_trace(_csv(tmp_path, HEADER + "0,100\n3600,160\n"))
    assert trace.rates_per_second == pytest.approx(tuple(100.0 + i for i in range(61)))


def test_a_trace_at_the_grid_step_is_copied_without_rounding(tmp_path: Path) -> None:
    trace = load_trace(_csv(tmp_path, HEADER + "0,0.1\n60,0.7\n120,1e-7\n"))
    assert trace.rates_per_second == (0.1, 0.7, 1e-7)


# 7. Gaps are filled, and reported.

def test_a_window_that_ends_on_a_gaps_first_sample_has_no_gap(tmp_path: Path) -> None:
    # Samples 0..540 s, then 1800..2340 s: a window of the first ten minutes holds only real samples.
    rows = "".join(f"{60 * i},5\n" for i in range(10)) + "".join(f"{60 * i},7\n" for i in range(30, 40))
    trace = load_trace(_csv(tmp_path, HEADER + rows))
    assert trace.window(start_seconds=0, hours=600 / 3600).gaps == ()
    assert trace.window(start_seconds=0, hours=660 / 3600).gaps == ((540.0, 1800.0),)


def test_a_lone_gap_of_a_three_row_trace_is_listed(tmp_path: Path) -> None:
    trace = load_trace(_csv(tmp_path, HEADER + "0,1\n60,1\n4000,1\n"))
    assert trace.gaps == ((60.0, 4000.0),)


def test_a_gap_of_hours_is_filled_and_listed_in_gaps(tmp_path: Path) -> None:
    rows = "".join(f"{60 * i},5\n" for i in range(10)) + "".join(f"{60 * i},7\n" for i in range(250, 260))
    trace = load_trace(_csv(tmp_path, HEADER + rows))
    assert trace.gaps == ((540.0, 15000.0),)
    assert len(trace.rates_per_second) == 260
    assert trace.rates_per_second[9] == 5.0
    assert trace.rates_per_second[10] == pytest.approx(5.0 + 2.0 * 60 / (15000 - 540))


def test_a_few_missing_minutes_and_an_hourly_step_are_not_gaps(tmp_path: Path) -> None:
    minutes = load_trace(_csv(tmp_path, HEADER + "0,1\n60,1\n420,1\n480,1\n", name="minutes.csv"))
    hourly = load_trace(_csv(tmp_path, HEADER + "".join(f"{3600 * i},1\n" for i in range(5)), name="hourly.csv"))
    assert (minutes.gaps, hourly.gaps) == ((), ())


def test_empty_rate_cells_of_an_hourly_trace_make_a_gap(tmp_path: Path) -> None:
    rows = "".join(f"{3600 * i},{'' if 2 <= i <= 4 else 1}\n" for i in range(8))
    assert load_trace(_csv(tmp_path, HEADER + rows)).gaps == ((3600.0, 18000.0),)


def test_a_window_keeps_the_gaps_that_overlap_it_and_scaling_and_joining_keep_them() -> None:
    trace = Trace("t", "rps", 0.0, 60.0, (1.0,) * 100, gaps=((600.0, 1800.0), (3000.0, 4200.0)))
    assert trace.window(start_seconds=1200, hours=0.25).gaps == ((600.0, 1800.0),)
    assert trace.window(start_seconds=1800, hours=0.25).gaps == ()
    assert trace.scaled(2.0).gaps == trace.gaps
    later = Trace("t", "rps", 6000.0, 60.0, (1.0,), gaps=((6000.0, 9000.0),))
    assert join_traces(trace, later).gaps == trace.gaps + later.gaps
