"""docs/tuning-tables.md reproduces every table row and threshold that the engine uses."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from perfpilot.tuning.tables import (
    CPU_TARGET_ROWS,
    MEMORY_TARGET_ROWS,
    POOL_TIERS,
    SCALE_DOWN_ROWS,
    SCALE_UP_ROWS,
    BehaviourRow,
    PoolTier,
    TargetRow,
)
from perfpilot.tuning.thresholds import Thresholds

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


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Thresholds)])
def test_every_threshold_is_documented(field: str) -> None:
    assert re.search(rf"`{field}`", DOC), field
