"""Request-rate traces: read a CSV, cut a window, resample to the replay step, scale to the model.

A trace CSV has a ``timestamp_seconds`` column (anywhere) and at least one rate column
(``shared/traces/`` layout); timestamps increase and every value is a finite number. Gaps and
coarser steps (Wikipedia is hourly) are filled by linear interpolation onto a regular 60 s grid, because
the replay advances minute by minute. The rate is then scaled so that the window's peak needs
``PEAK_REPLICAS`` of the static baseline's pods at its CPU target (see ``scale_for_peak``), unless the
caller gives the peak or the factor.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

STEP_SECONDS = 60.0
BUNDLED_TRACE = "worldcup98_1998-06-25_2d.csv"
# The week before the bundled slice (the default peakWindow): the Prometheus history perfpilot would find
# when installed.
BUNDLED_HISTORY = "worldcup98_1998-06-18_history.csv"
# The scaling rule of the issue: the window's peak needs 8 of the static baseline's 10 replicas at 70% CPU.
PEAK_REPLICAS = 8
PEAK_CPU_TARGET_PERCENT = 70
PREFERRED_COLUMNS = ("requests_per_second", "mcr_value", "events_per_second")


@dataclass(frozen=True)
class Trace:
    """A regular request-rate series: ``rates_per_second[i]`` holds over ``[start + i*step, start + (i+1)*step)``."""

    name: str
    column: str
    start_seconds: float
    step_seconds: float
    rates_per_second: tuple[float, ...]

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
        return Trace(self.name, self.column, self.start_seconds + first * self.step_seconds, self.step_seconds,
                     self.rates_per_second[first:last])

    def scaled(self, factor: float) -> Trace:
        return Trace(self.name, self.column, self.start_seconds, self.step_seconds,
                     tuple(rate * factor for rate in self.rates_per_second))


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
                 first.rates_per_second + second.rates_per_second)


def history_before(whole: Trace, window: Trace, *, seconds: float) -> Trace | None:
    """Up to ``seconds`` of ``whole`` just before ``window`` starts (the warm-up a real Prometheus would hold);
    None when ``whole`` starts with the window."""
    available = window.start_seconds - whole.start_seconds
    if available < whole.step_seconds:
        return None
    span = min(seconds, available)
    return whole.window(start_seconds=window.start_seconds - span, hours=span / 3600)


def _pick_column(header: list[str], column: str | None) -> str:
    if column is not None:
        if column not in header:
            raise ValueError(f"column {column!r} not in the trace (columns: {', '.join(header)})")
        return column
    for name in PREFERRED_COLUMNS:
        if name in header:
            return name
    candidates = [name for name in header if name != "timestamp_seconds"]
    if not candidates:
        raise ValueError("the trace has no rate column besides timestamp_seconds")
    return candidates[0]


def _number(text: str, *, path: Path, line: int, column: str) -> float:
    """A finite float from one CSV field; the error names the file, line and column and shows the text."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}:{line}: column {column}: not a number (got {text!r})") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}:{line}: column {column}: not a finite number (got {text!r})")
    return value


def load_trace(path: Path, *, column: str | None = None, step_seconds: float = STEP_SECONDS) -> Trace:
    """Read a trace CSV and resample it onto a regular grid of ``step_seconds`` by linear interpolation.

    Rows with an empty rate are gaps (interpolated over); any other field must be a finite number, and the
    timestamps must increase from row to row. Errors name the file, the line and the column.
    """
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        if "timestamp_seconds" not in header:
            raise ValueError(f"{path}: the trace needs a timestamp_seconds column (columns: {', '.join(header)})")
        name = _pick_column(header, column)
        points: list[tuple[float, float]] = []
        previous: tuple[float, int] | None = None  # the last timestamp and its line
        for row in reader:
            line = reader.line_num
            rate_text = row.get(name)
            if rate_text in (None, ""):
                continue
            stamp = _number(row["timestamp_seconds"] or "", path=path, line=line, column="timestamp_seconds")
            rate = _number(rate_text, path=path, line=line, column=name)
            if previous is not None and stamp <= previous[0]:
                raise ValueError(f"{path}:{line}: column timestamp_seconds: {stamp:g} does not increase on "
                                 f"line {previous[1]}'s {previous[0]:g}")
            previous = (stamp, line)
            points.append((stamp, rate))
    if len(points) < 2:
        raise ValueError(f"{path}: a trace needs at least two samples")
    start, end = points[0][0], points[-1][0]
    count = math.floor((end - start) / step_seconds) + 1
    rates: list[float] = []
    j = 0
    for i in range(count):
        t = start + i * step_seconds
        while j + 1 < len(points) and points[j + 1][0] <= t:
            j += 1
        t0, v0 = points[j]
        if j + 1 < len(points) and t > t0:
            t1, v1 = points[j + 1]
            v0 = v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        rates.append(max(0.0, v0))
    return Trace(path.stem, name, start, step_seconds, tuple(rates))


def scale_for_peak(trace: Trace, *, cpu_demand_seconds: float, cpu_request_millicores: int) -> float:
    """The factor that makes the trace's peak use ``PEAK_REPLICAS`` pods at ``PEAK_CPU_TARGET_PERCENT`` of
    the request: peak rate x CPU demand = 8 x 0.7 x request."""
    peak = trace.peak_per_second
    if peak <= 0:
        raise ValueError("the trace window has no traffic to scale")
    needed_rate = PEAK_REPLICAS * PEAK_CPU_TARGET_PERCENT / 100 * cpu_request_millicores / 1000 / cpu_demand_seconds
    return needed_rate / peak
