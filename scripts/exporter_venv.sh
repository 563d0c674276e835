#!/usr/bin/env bash
# Creates .venv-exporter (once) with the PyPI pgBouncer exporter the pool-chain test runs
# (prometheus-pgbouncer-exporter 2.1.2, whose metric names are perfpilot's PgbouncerExporterPyPI preset).
# A virtualenv of its own: the exporter pins prometheus_client 0.8.0, older than perfpilot's, and psycopg2 2.8.5,
# which does not build here, so it goes in without its dependencies and gets psycopg2-binary instead
# (shared/TESTING.md). Fast when already present: the check below imports the exporter and its dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-exporter
exporter="prometheus-pgbouncer-exporter==2.1.2"
dependencies=(psycopg2-binary "prometheus_client==0.8.0" "python-json-logger==0.1.11" pyyaml)

ready() {
  [ -x "$venv/bin/pgbouncer-exporter" ] &&
    "$venv/bin/python" -c "import prometheus_pgbouncer_exporter.cli, psycopg2, prometheus_client, pythonjsonlogger, yaml" \
      >/dev/null 2>&1
}

if ready; then
  exit 0
fi
# Debian ships the venv module (and the ensurepip it needs) in a package of its own; scripts/setup.sh, which runs
# first in scripts/test.sh, installs it when missing.
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$exporter"
# pip then reports the exporter's psycopg2==2.8.5 pin as a conflict ("ERROR: pip's dependency resolver ..."), and
# exits 0: psycopg2-binary is the same module, and the import check below is what counts.
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${dependencies[@]}"
if ! ready; then
  echo "$venv: pgbouncer-exporter is not usable after the install" >&2
  exit 1
fi
