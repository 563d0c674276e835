"""Parsing and normalising the API's durations and quantities."""

from __future__ import annotations

import pytest

from perfpilot.api.quantities import CpuQuantity, Duration, MemoryQuantity


@pytest.mark.parametrize(
    ("text", "seconds", "normalised"),
    [
        ("500ms", 0.5, "500ms"),
        ("30s", 30, "30s"),
        ("90s", 90, "1m30s"),
        ("10m", 600, "10m"),
        ("1h30m", 5400, "1h30m"),
        ("1.5h", 5400, "1h30m"),
        ("0.5ms", 0.0005, "0.5ms"),  # under a millisecond it was written as "", which reads back as nothing
        ("1.25s", 1.25, "1s250ms"),
        ("123.4567ms", 0.1234567, "123.4567ms"),
    ],
)
def test_duration_parses_go_notation_and_normalises(text: str, seconds: float, normalised: str) -> None:
    duration = Duration.parse(text)
    assert duration.seconds == seconds
    assert str(duration) == normalised


@pytest.mark.parametrize("text", ["", "30", "10 minutes", "-5s", "1d", "m", 30])
def test_duration_rejects_what_is_not_go_notation_naming_the_value(text: object) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("(", r"\(").replace(")", r"\)")):
        Duration.parse(text)


@pytest.mark.parametrize(
    ("raw", "millicores", "normalised"),
    [("500m", 500, "500m"), ("2", 2000, "2"), (4, 4000, "4"), ("0.5", 500, "500m"), ("1500m", 1500, "1500m"),
     ("0.0001", 1, "1m")],
)
def test_cpu_quantity_in_millicores(raw: object, millicores: int, normalised: str) -> None:
    quantity = CpuQuantity.parse(raw)
    assert quantity.millicores == millicores
    assert str(quantity) == normalised


@pytest.mark.parametrize(
    ("raw", "count", "normalised"),
    [("64Mi", 64 * 2**20, "64Mi"), ("1Gi", 2**30, "1Gi"), ("1024Mi", 2**30, "1Gi"), ("500M", 500_000_000, "500000000"),
     ("1e9", 10**9, "1000000000"), (1024, 1024, "1Ki")],
)
def test_memory_quantity_in_bytes(raw: object, count: int, normalised: str) -> None:
    quantity = MemoryQuantity.parse(raw)
    assert quantity.bytes == count
    assert str(quantity) == normalised


@pytest.mark.parametrize("raw", ["-1", "-500m", "abc", "1Xi", "", True, None, "1.2.3", "1e9999999", "1e-99"])
def test_quantity_rejects_negative_or_non_numeric(raw: object) -> None:
    with pytest.raises(ValueError, match="got"):
        CpuQuantity.parse(raw)
