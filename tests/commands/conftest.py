"""A valid PerformanceProfile file for the command-line tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# pytest's importlib mode does not put test folders on sys.path: command_profiles sits here.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from command_profiles import PROFILE  # noqa: E402  (importable only once the folder is on sys.path)


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(PROFILE)
    return path

