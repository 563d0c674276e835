"""Request-rate traces: read a CSV, cut a window, resample to the replay step, scale to the model.

A trace CSV (UTF-8, a byte-order mark allowed) has a ``timestamp_seconds`` column (anywhere) and at least
one rate column (``shared/traces/`` layout). Every row has as many fields as the header; timestamps are Unix
seconds (or seconds from the start) and increase from row to row; every number is written in plain ASCII
decimals, and every rate is finite and >= 0. An empty rate cell between two rates is a gap: the row's
timestamp is still checked, its rate is filled like any other gap; empty cells before the first rate or
after the last have nothing to bridge from, so the trace starts at its first rate and ends at its last (a
column that starts later than the file's first row). Bad input is refused with a ``ValueError`` naming the
file, the line, the column and the value; nothing is clamped.

Bounds, checked while reading so that nothing is allocated for a trace that breaks them:

- a timestamp must lie between 0002-01-01 and 9999-01-01 UTC (``EARLIEST_SECONDS``..``LATEST_SECONDS``):
  the replay turns the trace's clock into datetimes and adds windows and cooldowns to it, so a year is kept
  spare at each end of what a datetime holds. A first timestamp past that range whose thousandth lies in it
  is reported as milliseconds.
- the regular grid from the first to the last timestamp may hold at most ``MAX_GRID_POINTS`` steps (ten
  years of minutes): one far-out timestamp would otherwise ask for billions of points.

Resampling onto the regular ``step_seconds`` grid (60 s: the replay advances minute by minute). A sample's
rate holds from its timestamp until the next sample, but for at most one grid step; an interval longer than
the grid step (a coarser trace such as hourly Wikipedia, or a gap) is bridged by a straight line between its
two samples. A grid step's rate is the time-weighted mean of the samples that hold over it, which keeps the
request count of a finer trace (a 10 s spike still counts in its minute); a step over which no sample holds
takes the line's value at the step's start; the last sample holds as long as the one before it did, and a
last step it covers less than half of is left out.
Irregular steps follow from the same rule, interval by interval: short intervals are averaged, long ones
are bridged. A 60 s trace is copied as is.

Filled gaps are kept on the trace (``Trace.gaps``) so that the caller can say so: an interval is a gap when
it is longer than ``GAP_NOTICE_SECONDS`` and longer than twice the trace's usual (median) interval, so that
the hours of an hourly trace are not gaps.

The rate is then scaled so that the window's peak needs ``PEAK_REPLICAS`` of the static baseline's pods at
its CPU target (see ``scale_for_peak``), unless the caller gives the peak or the factor.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

STEP_SECONDS = 60.0
TIMESTAMP_COLUMN = "timestamp_seconds"
BUNDLED_TRACE = "worldcup98_1998-06-25_2d.csv"
# The week before the bundled slice (the default peakWindow): the Prometheus history perfpilot would find
# when installed.
BUNDLED_HISTORY = "worldcup98_1998-06-18_history.csv"
# The scaling rule of the issue: the window's peak needs 8 of the static baseline's 10 replicas at 70% CPU.
PEAK_REPLICAS = 8
PEAK_CPU_TARGET_PERCENT = 70
PREFERRED_COLUMNS = ("requests_per_second", "mcr_value", "events_per_second")
# Ten years of minutes (about 170 MB as a tuple of floats): far beyond any replay (the longest real trace
# is 87 days), far below the gigabytes one stray timestamp asked for.
MAX_GRID_POINTS = 10 * 365 * 24 * 60
EARLIEST_SECONDS = datetime(2, 1, 1, tzinfo=UTC).timestamp()
LATEST_SECONDS = datetime(9999, 1, 1, tzinfo=UTC).timestamp()
# Shorter holes are ordinary capture jitter (the World Cup logs miss a few single minutes); longer ones are
# worth a note, as the straight line across them is made up.
GAP_NOTICE_SECONDS = 600.0
SECONDS_PER_YEAR = 365.25 * 86400
# A number as a CSV or a command line writes it: ASCII digits, a point, an exponent. float() takes more
# (1_000, Arabic-Indic and other Unicode digits), which no trace means.
PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class Trace:
    """A regular request-rate series: ``rates_per_second[i]`` holds over ``[start + i*step, start + (i+1)*step)``.

    ``gaps`` are the ``(start_seconds, end_seconds)`` of the holes the loader filled by a straight line (the
    timestamps of the samples on either side), oldest first; a window keeps, whole, those whose bridged part
    (past the first sample's own step) it crosses.
    """

    name: str
    column: str
    start_seconds: float
    step_seconds: float
    rates_per_second: tuple[float, ...]
    gaps: tuple[tuple[float, float], ...] = ()

    @property
    def duration_seconds(self) -> float:
        return self.step_seconds * len(self.rates_per_second)

    @property
    def peak_per_second(self) -> float:
        return max(self.rates_per_second, default=0.0)

    def window(self, *, start_seconds: float | None, hours: float | None) -> Trace:
        """The part from ``start_seconds`` (absolute, or an offset from the trace start when smaller than the
        trace's first timestamp) for ``hours``; the whole trace when both are None."""
        first = 0
        if start_seconds is not None:
            absolute = start_seconds if start_seconds >= self.start_seconds else self.start_seconds + start_seconds
            first = max(0, math.floor((absolute - self.start_seconds) / self.step_seconds + 1e-9))
        last = len(self.rates_per_second)
        if hours is not None:
            last = min(last, first + round(hours * 3600 / self.step_seconds))
        if first >= last:
            raise ValueError(f"the window is empty: start {start_seconds}, hours {hours}, trace of "
                             f"{self.duration_seconds / 3600:.1f} h from {self.start_seconds:.0f}")
        begin = self.start_seconds + first * self.step_seconds
        end = self.start_seconds + last * self.step_seconds
        # A gap's first sample is real over its own step: the window crosses the bridged part only past it.
        bridged = tuple(gap for gap in self.gaps if min(gap[0] + self.step_seconds, gap[1]) < end and gap[1] > begin)
        return Trace(self.name, self.column, begin, self.step_seconds, self.rates_per_second[first:last], bridged)

    def scaled(self, factor: float) -> Trace:
        return Trace(self.name, self.column, self.start_seconds, self.step_seconds,
                     tuple(rate * factor for rate in self.rates_per_second), self.gaps)


def bundled_trace_path() -> Path:
    return Path(str(resources.files("perfpilot") / "data" / BUNDLED_TRACE))


def bundled_history_path() -> Path:
    return Path(str(resources.files("perfpilot") / "data" / BUNDLED_HISTORY))


def join_traces(first: Trace, second: Trace) -> Trace:
    """``first`` followed by ``second``: same column and step, ``second`` starting where ``first`` ends."""
    if (first.column, first.step_seconds) != (second.column, second.step_seconds):
        raise ValueError(f"cannot join {first.name} ({first.column}, {first.step_seconds:g} s) and "
                         f"{second.name} ({second.column}, {second.step_seconds:g} s)")
    if abs(first.start_seconds + first.duration_seconds - second.start_seconds) > 1e-6:
        raise ValueError(f"{second.name} does not start where {first.name} ends "
                         f"({second.start_seconds:.0f} vs {first.start_seconds + first.duration_seconds:.0f})")
    return Trace(second.name, second.column, first.start_seconds, first.step_seconds,
                 first.rates_per_second + second.rates_per_second, first.gaps + second.gaps)


def history_before(whole: Trace, window: Trace, *, seconds: float) -> Trace | None:
    """Up to ``seconds`` of ``whole`` just before ``window`` starts (the warm-up a real Prometheus would hold);
    None when ``whole`` starts with the window."""
    available = window.start_seconds - whole.start_seconds
    if available < whole.step_seconds:
        return None
    span = min(seconds, available)
    return whole.window(start_seconds=window.start_seconds - span, hours=span / 3600)


def _pick_column(header: list[str], column: str | None, *, path: Path) -> str:
    rates = [name for name in header if name not in (TIMESTAMP_COLUMN, "")]
    if column == TIMESTAMP_COLUMN:
        raise ValueError(f"{path}: column {TIMESTAMP_COLUMN} holds the timestamps, not a rate "
                         f"(rate columns: {', '.join(rates) or 'none'})")
    if column is not None:
        if column not in header:
            raise ValueError(f"{path}: column {column!r} not in the trace (columns: {', '.join(header)})")
        return column
    for name in PREFERRED_COLUMNS:
        if name in header:
            return name
    if not rates:
        raise ValueError(f"{path}: the trace has no rate column besides {TIMESTAMP_COLUMN}")
    return rates[0]


def _number(text: str, *, path: Path, line: int, column: str) -> float:
    """A finite float from one CSV field; the error names the file, line and column and shows the text."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}:{line}: column {column}: not a number (got {text!r})") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}:{line}: column {column}: not a finite number (got {text!r})")
    if not PLAIN_NUMBER.fullmatch(text):
        raise ValueError(f"{path}:{line}: column {column}: not a plain decimal number (got {text!r})")
    return value


def _timestamp(text: str, *, path: Path, line: int, previous: tuple[float, int] | None) -> float:
    """A timestamp a datetime can hold (see the module docstring); ``previous`` is the row before's, if any."""
    if text == "":
        raise ValueError(f"{path}:{line}: column {TIMESTAMP_COLUMN}: empty; every row needs a timestamp")
    stamp = _number(text, path=path, line=line, column=TIMESTAMP_COLUMN)
    if EARLIEST_SECONDS <= stamp <= LATEST_SECONDS:
        return stamp
    where = f"{path}:{line}: column {TIMESTAMP_COLUMN}: {text}"
    # Only the first row can tell: after plausible seconds, a huge value is one stray stamp, not a unit.
    if previous is None and stamp > LATEST_SECONDS and EARLIEST_SECONDS <= stamp / 1000 <= LATEST_SECONDS:
        raise ValueError(f"{where} is after the year 9999 as Unix seconds; the timestamps look like "
                         f"milliseconds (divide them by 1000)")
    before = f"; line {previous[1]} has {previous[0]:g}" if previous is not None else ""
    raise ValueError(f"{where} is not Unix seconds between 0002-01-01 and 9999-01-01 "
                     f"({EARLIEST_SECONDS:.0f} to {LATEST_SECONDS:.0f}){before}")


def _read_points(path: Path, rows: Iterator[tuple[int, list[str]]], *, column: str | None,
                 step_seconds: float) -> tuple[str, list[tuple[float, float]]]:
    """The picked column and its ``(timestamp, rate)`` samples, rows with an empty rate left out."""
    _, raw_header = next(rows, (0, []))
    header = [name.strip() for name in raw_header]  # "timestamp_seconds, rps" names the column rps
    if not header:
        raise ValueError(f"{path}: the file is empty; a trace needs a header with a {TIMESTAMP_COLUMN} column")
    if TIMESTAMP_COLUMN not in header:
        raise ValueError(f"{path}: the trace needs a {TIMESTAMP_COLUMN} column (columns: {', '.join(header)})")
    name = _pick_column(header, column, path=path)
    for used in (TIMESTAMP_COLUMN, name):
        if header.count(used) > 1:
            raise ValueError(f"{path}: column {used} appears {header.count(used)} times in the header")
    stamp_at, rate_at = header.index(TIMESTAMP_COLUMN), header.index(name)
    points: list[tuple[float, float]] = []
    previous: tuple[float, int] | None = None  # the last timestamp and its line, gap rows included
    first: tuple[float, int] | None = None  # the first sample with a rate: where the grid starts
    for line, fields in rows:
        if not fields:  # a blank line, which the csv module yields as no fields
            continue
        if len(fields) != len(header):
            raise ValueError(f"{path}:{line}: the row has {len(fields)} field{'s' * (len(fields) != 1)}, the "
                             f"header {len(header)} ({', '.join(header)})")
        stamp_text, rate_text = fields[stamp_at].strip(), fields[rate_at].strip()  # "60, 12" as the header's ", "
        stamp = _timestamp(stamp_text, path=path, line=line, previous=previous)
        if previous is not None and stamp <= previous[0]:
            # Every digit: Unix times differ in the last ones (":g" showed 1.6e+09 on both sides).
            raise ValueError(f"{path}:{line}: column {TIMESTAMP_COLUMN}: {stamp:.15g} does not increase on "
                             f"line {previous[1]}'s {previous[0]:.15g}")
        previous = (stamp, line)
        if rate_text == "":
            continue
        rate = _number(rate_text, path=path, line=line, column=name)
        if rate < 0:
            raise ValueError(f"{path}:{line}: column {name}: a rate cannot be negative (got {rate_text!r})")
        if first is None:
            first = (stamp, line)
        elif math.floor((stamp - first[0]) / step_seconds) + 1 > MAX_GRID_POINTS:
            span = stamp - first[0]
            raise ValueError(
                f"{path}:{line}: column {TIMESTAMP_COLUMN}: {stamp_text} is {span:,.0f} s "
                f"({span / SECONDS_PER_YEAR:,.1f} years) after line {first[1]}'s {first[0]:g}: a {step_seconds:g} s "
                f"grid over that span would need {math.floor(span / step_seconds) + 1:,} points, more than the "
                f"{MAX_GRID_POINTS:,} (ten years of minutes) a trace may have")
        points.append((stamp, rate))
    if len(points) < 2:
        raise ValueError(f"{path}: column {name}: a trace needs at least two rows with a rate "
                         f"(found {len(points)})")
    return name, points


def _records(path: Path, handle: Iterator[str]) -> Iterator[tuple[int, list[str]]]:
    """The CSV records of ``handle`` with the line each ends on; undecodable bytes and malformed CSV become
    errors that name the file."""
    reader = csv.reader(handle)
    try:
        for fields in reader:
            yield reader.line_num, fields
    except UnicodeDecodeError as error:
        # The decoder works on chunks, so neither its offset nor the reader's line locates the byte.
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} cannot be "
                         f"decoded); a trace is a UTF-8 CSV file") from None
    except csv.Error as error:
        raise ValueError(f"{path}:{reader.line_num}: not readable as CSV ({error})") from None


def _extent_ends(points: list[tuple[float, float]], step_seconds: float) -> list[float]:
    """Where each sample stops holding: at the next sample, at most one grid step on (the last sample holds
    as long as the one before it did)."""
    ends = [min(t1, t0 + step_seconds) for (t0, _), (t1, _) in itertools.pairwise(points)]
    last = points[-1][0]
    ends.append(last + (ends[-1] - points[-2][0]))
    return ends


def _resample(points: list[tuple[float, float]], step_seconds: float) -> list[float]:
    """The module docstring's rule: each grid step is the time-weighted mean of the samples holding over it,
    or, when none does, the straight line across the interval at the step's start."""
    ends = _extent_ends(points, step_seconds)
    start = points[0][0]
    # Up to where the last sample holds; a last step the samples cover less than half of is left out rather
    # than filled with a rate that held for seconds.
    count = max(1, math.ceil((ends[-1] - start) / step_seconds - 1e-9))
    if count > 1 and ends[-1] - (start + (count - 1) * step_seconds) < step_seconds / 2:
        count -= 1
    rates: list[float] = []
    j = 0  # the first sample still holding at the current step's start (sample extents are ordered)
    for i in range(count):
        low = start + i * step_seconds
        high = low + step_seconds
        while ends[j] <= low:
            j += 1
        weight = mean = 0.0
        k = j
        while k < len(points) and points[k][0] < high:
            overlap = min(high, ends[k]) - max(low, points[k][0])
            # A running mean: exact for a lone sample (a 60 s trace comes out unchanged), and no overflow from
            # summing huge finite rates.
            if overlap > 0 and weight == 0:
                weight, mean = overlap, points[k][1]
            elif overlap > 0:
                weight += overlap
                mean += (points[k][1] - mean) * overlap / weight
            k += 1
        if weight > 0:
            rates.append(mean)
        else:
            # No sample holds at ``low``, so it lies inside a bridged interval: points[j - 1] .. points[j].
            (t0, v0), (t1, v1) = points[j - 1], points[j]
            rates.append(v0 + (v1 - v0) * (low - t0) / (t1 - t0))
    return rates


def _gaps(points: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    intervals = [t1 - t0 for (t0, _), (t1, _) in itertools.pairwise(points)]
    threshold = max(GAP_NOTICE_SECONDS, 2 * statistics.median_low(intervals))
    return tuple((t0, t1) for (t0, _), (t1, _) in itertools.pairwise(points) if t1 - t0 > threshold)


def load_trace(path: Path, *, column: str | None = None, step_seconds: float = STEP_SECONDS) -> Trace:
    """Read a trace CSV and resample it onto a regular grid of ``step_seconds`` (see the module docstring).

    ``column`` picks the rate column; without it the first of ``PREFERRED_COLUMNS`` in the header, else the
    first column that is not the timestamp. Bad input raises ``ValueError`` naming the file, the line, the
    column and the value; a missing or unreadable file raises ``OSError``.
    """
    if not (math.isfinite(step_seconds) and step_seconds > 0):
        raise ValueError(f"the resampling step must be a positive number of seconds (got {step_seconds!r})")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        name, points = _read_points(path, _records(path, handle), column=column, step_seconds=step_seconds)
    return Trace(path.stem, name, points[0][0], step_seconds, tuple(_resample(points, step_seconds)),
                 _gaps(points))


def scale_for_peak(trace: Trace, *, cpu_demand_seconds: float, cpu_request_millicores: int) -> float:
    """The factor that makes the trace's peak use ``PEAK_REPLICAS`` pods at ``PEAK_CPU_TARGET_PERCENT`` of
    the request: peak rate x CPU demand = 8 x 0.7 x request."""
    peak = trace.peak_per_second
    if peak <= 0:
        raise ValueError(f"{trace.name}: column {trace.column}: the trace window has no traffic to scale "
                         f"(its peak is 0)")
    needed_rate = PEAK_REPLICAS * PEAK_CPU_TARGET_PERCENT / 100 * cpu_request_millicores / 1000 / cpu_demand_seconds
    return needed_rate / peak
