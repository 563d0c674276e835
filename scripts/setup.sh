#!/usr/bin/env bash
# Creates .venv (once) and installs perfpilot into it with the given extras (default: sim).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-sim}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[${extras}]"
