"""docs/tuning-tables.md reproduces every table row and threshold that the engine uses."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from pathlib import Path

import pytest

from perfpilot.api.spec import Slo
from perfpilot.tuning.tables import (
    CPU_TARGET_ROWS,
    MEMORY_TARGET_ROWS,
    POOL_TIERS,
    POOL_UTILISATION_LEVELS,
    RESOURCE_ROWS,
    SCALE_DOWN_ROWS,
    SCALE_UP_ROWS,
    BehaviourRow,
    PoolTier,
    ResourceRow,
    TargetRow,
)
from perfpilot.tuning.thresholds import DEFAULT_THRESHOLDS, Thresholds

DOC = (Path(__file__).resolve().parents[2] / "docs" / "tuning-tables.md").read_text(encoding="utf-8")


def doc_rows() -> set[tuple[str, ...]]:
    return {
        tuple(cell.strip() for cell in line.strip().strip("|").split("|"))
        for line in DOC.splitlines() if line.startswith("|")
    }


@pytest.mark.parametrize("row", [*CPU_TARGET_ROWS.values(), *MEMORY_TARGET_ROWS.values()], ids=lambda r: r.name)
def test_every_target_row_is_documented_with_its_value(row: TargetRow) -> None:
    assert any(cells[:3] == (row.name, row.label, f"{row.target_percent}%") for cells in doc_rows()), row.name


@pytest.mark.parametrize("row", [*SCALE_UP_ROWS.values(), *SCALE_DOWN_ROWS.values()], ids=lambda r: r.name)
def test_every_behaviour_row_is_documented_with_its_numbers(row: BehaviourRow) -> None:
    expected = (row.name, f"{row.stabilization_window_seconds}s", f"Percent {row.percent} per {row.period_seconds}s")
    assert any(cells[:3] == expected for cells in doc_rows()), expected


@pytest.mark.parametrize("tier", POOL_TIERS, ids=lambda t: t.name)
def test_every_pool_tier_is_documented(tier: PoolTier) -> None:
    expected = (tier.name, tier.label, str(tier.default_pool_size), str(tier.reserve_pool_size))
    assert expected in doc_rows()


def _factor(factor: float | None) -> str:
    return "keep" if factor is None else f"{(factor - 1) * 100:+.0f}%"


@pytest.mark.parametrize("row", RESOURCE_ROWS.values(), ids=lambda r: r.name)
def test_every_resource_row_is_documented_with_its_factors(row: ResourceRow) -> None:
    expected = (row.name, row.label, _factor(row.cpu_factor), _factor(row.memory_factor))
    assert any(cells[:4] == expected for cells in doc_rows()), expected


@pytest.mark.parametrize(("level", "cell"), [
    ("target", f"< {POOL_UTILISATION_LEVELS.target_percent:.0f}%"),
    ("warning", f"< {POOL_UTILISATION_LEVELS.warning_percent:.0f}%"),
    ("critical", f"> {POOL_UTILISATION_LEVELS.critical_percent:.0f}%"),
])
def test_every_pool_utilisation_level_is_documented_with_its_value(level: str, cell: str) -> None:
    assert any(cells[:2] == (level, cell) for cells in doc_rows()), (level, cell)


def test_the_latency_target_row_is_the_api_default_slo() -> None:
    default_ms = round(Slo().latency_p95.seconds * 1000)
    assert ("target", f"< {default_ms}ms") in {cells[:2] for cells in doc_rows()}


def threshold_rows() -> dict[str, str]:
    """Each threshold's documented default, from the rows of the thresholds table: a first cell naming one or
    more `fields` (separated by " / ") and a second cell with their values in the same order."""
    documented: dict[str, str] = {}
    for cells in doc_rows():
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        names = [name.strip().strip("`") for name in cells[0].split(" / ")]
        values = [value.strip() for value in cells[1].split(" / ")]
        if len(names) == len(values):
            documented.update(zip(names, values, strict=True))
    return documented


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Thresholds)])
def test_every_threshold_is_documented_with_its_value_on_its_row(field: str) -> None:
    documented = threshold_rows()
    assert field in documented, f"{field} has no row of its own in the thresholds table"
    value = float(Fraction(documented[field]))
    assert math.isclose(value, float(getattr(DEFAULT_THRESHOLDS, field)), rel_tol=1e-9), (field, documented[field])
