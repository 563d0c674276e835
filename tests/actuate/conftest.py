"""Makes ``pgbouncer_harness`` (and the ``promharness`` it imports) importable: they sit with the observe tests,
which read pgbouncer.ini against the same real pgBouncer, and pytest's ``--import-mode=importlib`` does not put
test folders on ``sys.path``."""

from __future__ import annotations

import sys
from pathlib import Path

_OBSERVE_TESTS = str(Path(__file__).resolve().parent.parent / "observe")
if _OBSERVE_TESTS not in sys.path:
    sys.path.insert(0, _OBSERVE_TESTS)
