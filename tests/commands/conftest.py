"""A valid PerformanceProfile file for the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest

PROFILE = """\
apiVersion: perfpilot.io/v1alpha1
kind: PerformanceProfile
metadata: {name: api, namespace: shop}
spec:
  targetRef: {kind: Deployment, name: api}
"""


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(PROFILE)
    return path

