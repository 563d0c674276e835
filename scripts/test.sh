#!/usr/bin/env bash
# Sets up everything the tests need on a new machine, then runs every check and every test.
# Integration tests start real components, so this installs them (Debian packages, as root) first;
# they are never skipped. Extra arguments go to pytest (e.g. scripts/test.sh -k prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # the TLS test's certificate
# pgbouncer.ini is read as a real pgBouncer reads it (its admin console through psql); /usr/sbin is not on
# every PATH.
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
# pgbouncer pulls in /usr/bin/psql as a wrapper that fails without a client package: ask it for its version.
psql --version >/dev/null 2>&1 || missing+=(postgresql-client)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing ${missing[*]}: run this once as root, or install them with apt-get" >&2
    exit 1
  fi
fi

scripts/setup.sh test,sim

.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
# pytest exits 5 when it collects nothing; that must fail CI, and it does (non-zero).
.venv/bin/pytest "$@"
