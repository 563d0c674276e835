#!/usr/bin/env bash
# Sets up everything the tests need on a new machine, then runs every check and every test.
# Integration tests start real components, so this installs them (Debian packages, as root) first;
# they are never skipped. Extra arguments go to pytest (e.g. scripts/test.sh -k prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/packages.sh
scripts/setup.sh test,sim
scripts/exporter_venv.sh  # the PyPI pgBouncer exporter, in .venv-exporter (its pins clash with perfpilot's)

.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
# pytest exits 5 when it collects nothing; that must fail CI, and it does (non-zero).
.venv/bin/pytest "$@"
