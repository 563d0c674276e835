#!/usr/bin/env bash
# Installs the Debian packages of the real components the tests and benchmarks start (Prometheus and
# pgBouncer, psql for pgBouncer's admin console, openssl for the TLS test's certificate) when they are
# missing: as root with apt-get, otherwise it names them and fails. They are never skipped.
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)  # promtool comes with it
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# /usr/sbin is not on every PATH.
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
