"""The real PyPI pgBouncer exporter (``prometheus-pgbouncer-exporter`` 2.1.2, spreaker's) in front of a
``pgbouncer_harness`` pgBouncer.

It lives in a virtualenv of its own, ``.venv-exporter`` at the top of the checkout, which
``scripts/exporter_venv.sh`` (run by ``scripts/test.sh``) creates: it pins a ``prometheus_client`` far older than
perfpilot's and a ``psycopg2`` that does not build here (``shared/TESTING.md``). It reads pgBouncer's admin console
(SHOW POOLS, SHOW DATABASES, ...) at every scrape, so what Prometheus stores is what pgBouncer said at that moment.
The module name is unique across the test tree (see ``pgbouncer_harness``).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pgbouncer_harness import PgBouncer
from promharness import free_port

CHECKOUT = Path(__file__).resolve().parents[2]
EXPORTER = CHECKOUT / ".venv-exporter" / "bin" / "pgbouncer-exporter"
INSTALL_HINT = (f"the PyPI pgBouncer exporter is required at {EXPORTER}: run scripts/exporter_venv.sh "
                "(scripts/test.sh does)")


def exporter_binary() -> Path:
    if not EXPORTER.is_file():
        pytest.fail(INSTALL_HINT, pytrace=False)
    return EXPORTER


@dataclass(frozen=True)
class PgbouncerExporter:
    address: str  # host:port of its /metrics, for a Prometheus scrape target

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://{self.address}/metrics", timeout=5) as answer:
            text: str = answer.read().decode()
            return text


def _config(pgbouncer: PgBouncer, port: int) -> str:
    dsn = (f"postgresql://admin:{urllib.parse.quote(pgbouncer.password, safe='')}@{pgbouncer.host}:{pgbouncer.port}"
           "/pgbouncer?sslmode=disable")
    # exclude_databases as the exporter's README has it: pgBouncer's own admin database is no pool to observe.
    # No extra_labels: namespace and pod come from the scrape target, as Kubernetes service discovery sets them.
    return (f"exporter_host: 127.0.0.1\nexporter_port: {port}\npgbouncers:\n"
            f"  - dsn: '{dsn}'\n    connect_timeout: 2\n    exclude_databases:\n      - pgbouncer\n")


def _serving(exporter: PgbouncerExporter, process: subprocess.Popen[bytes], *, seconds: float) -> bool:
    """Whether the exporter answers with a successful read of pgBouncer (``pgbouncer_up 1.0``) before it exits
    or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError):
            if "\npgbouncer_up 1.0\n" in exporter.metrics_text():
                return True
        time.sleep(0.1)
    return False


@contextmanager
def running_exporter(pgbouncer: PgBouncer, folder: Path) -> Iterator[PgbouncerExporter]:
    """The exporter reading ``pgbouncer``'s admin console (as its ``admin`` user), serving on a free loopback
    port, with its config and log in ``folder``; killed and waited for on leaving. Fails the test, with the
    exporter's log, when it does not serve a successful read of pgBouncer."""
    binary = exporter_binary()
    port = free_port()
    config, log = folder / "exporter.yml", folder / "exporter.log"
    config.write_text(_config(pgbouncer, port))
    exporter = PgbouncerExporter(address=f"127.0.0.1:{port}")
    with log.open("wb") as output:
        process = subprocess.Popen([str(binary), "--config", str(config)], stdout=output, stderr=subprocess.STDOUT)
    try:
        if not _serving(exporter, process, seconds=15):
            pytest.fail(f"the pgBouncer exporter did not serve pgBouncer's metrics: {log.read_text()[-2000:]}",
                        pytrace=False)
        yield exporter
    finally:
        # SIGKILL: on SIGTERM it only leaves its 4-second sleep loop, and it holds nothing worth a clean exit.
        process.kill()
        process.wait(timeout=10)
