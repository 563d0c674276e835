"""Fixtures shared by the command-line tests of several folders, and the property tests' hypothesis profile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# The same examples on every run, so a run of CI on a clean clone passes or fails on the code alone (a random
# draw once found a state the properties had not foreseen, on a clean clone only). HYPOTHESIS_PROFILE=explore
# draws afresh each run, with more examples, to look for new counterexamples.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture
def small_trace(tmp_path: Path) -> Path:
    """90 minutes of traffic and no history before it: a replay in well under a second (the bundled slice
    warms perfpilot up on its week of history first)."""
    path = tmp_path / "small.csv"
    path.write_text("timestamp_seconds,rps\n" + "".join(f"{60 * i},{10 + i % 7}\n" for i in range(90)))
    return path
