"""The emulated Kubernetes API's fixture, for the tests of this folder."""

import sys
from pathlib import Path

# The harness sits next to the tests; pytest's importlib mode does not put this folder on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from kubeharness import kube

# Re-exported: pytest finds fixtures in conftest modules.
__all__ = ["kube"]
