"""Makes ``tuning_builders`` importable: pytest runs with ``--import-mode=importlib``, which does not put
test folders on ``sys.path``. The module name is unique across the test tree on purpose."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
