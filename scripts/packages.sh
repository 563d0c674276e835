#!/usr/bin/env bash
# Installs the Debian packages of the real components the tests and benchmarks start (Prometheus and
# pgBouncer, psql for pgBouncer's admin console, openssl for the TLS test's certificate, PostgreSQL's server
# and pgbench behind pgBouncer in the pool-chain test) when they are missing: as root with apt-get, otherwise
# it names them and fails. They are never skipped.
# Arguments name the components wanted (prometheus, openssl, pgbouncer, psql, postgresql); none: all of them.
set -euo pipefail

wanted=("$@")
((${#wanted[@]})) || wanted=(prometheus openssl pgbouncer psql postgresql)
missing=()
for component in "${wanted[@]}"; do
  case "$component" in
    prometheus) command -v prometheus >/dev/null 2>&1 || missing+=(prometheus) ;;  # promtool comes with it
    openssl) command -v openssl >/dev/null 2>&1 || missing+=(openssl) ;;
    # /usr/sbin is not on every PATH.
    pgbouncer) command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer) ;;
    # pgbouncer pulls in /usr/bin/psql as a wrapper that fails without a client package: ask for its version.
    psql) psql --version >/dev/null 2>&1 || missing+=(postgresql-client) ;;
    # Debian keeps initdb, postgres and pgbench off PATH, in one folder per major version. The tests run their
    # own cluster; the one the package creates is left alone (not started where policy-rc.d forbids it).
    postgresql) compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql) ;;
    *) echo "unknown component: $component" >&2; exit 2 ;;
  esac
done
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
