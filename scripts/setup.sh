#!/usr/bin/env bash
# Creates .venv (once) and installs perfpilot into it with the given extras (default: sim).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-sim}"
if [ ! -x .venv/bin/python ]; then
  # Debian ships the venv module (and the ensurepip it needs) in a package of its own.
  if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      echo "installing Debian package: python3-venv"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    else
      echo "python3's venv module is missing: run this once as root, or apt-get install python3-venv" >&2
      exit 1
    fi
  fi
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[${extras}]"
