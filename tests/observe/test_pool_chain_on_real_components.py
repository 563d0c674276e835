"""The pool observation chain end to end, every link real: PostgreSQL 15 <- pgBouncer 1.18 <- the PyPI pgBouncer
exporter 2.1.2 <- Prometheus scraping it every second <- perfpilot's own cycle read (``fetch_observations``, the
queries ``plan_queries`` builds with the ``PgbouncerExporterPyPI`` preset).

pgbench holds more clients than the pool has server connections, each transaction a ``pg_sleep``: the pool is
full and clients queue. Read as perfpilot reads it, the pool's server connections in use are its size, clients
wait, and the oldest has waited a while. Raising ``default_pool_size`` on pgBouncer's admin console (as
perfpilot's pool actuation does) must then read, through the same chain, as more servers in use and nobody
waiting, while the load still runs, and as the pool size every pooler pod serves (``SHOW DATABASES``, by the
database's name, which this exporter keeps in ``database`` and the server-side one in ``backend_database``):
what a pool change is verified against.

The exporter's series carry no ``namespace`` or ``pod``: Prometheus adds them as target labels, as Kubernetes
service discovery does for a pooler pod. The pod is named as a StatefulSet's, which perfpilot's queries turn into
the workload ``pgbouncer``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from exporter_harness import running_exporter
from pgbouncer_harness import PgBouncer, pgbouncer_folder, running_pgbouncer
from postgres_harness import Postgres, running_postgres
from promharness import ScrapeTarget, running_prometheus

from perfpilot.api.spec import PerformanceProfile, PoolExporter
from perfpilot.observe.reader import PrometheusSettings
from perfpilot.observe.snapshot import ProfileTarget, fetch_observations
from perfpilot.tuning.observations import LiveConfig, Series, Signal

pytestmark = pytest.mark.integration

NAMESPACE, PROFILE = "shop", "api"
POOLER_POD = "pgbouncer-0"
DATABASE = "app"  # pgBouncer's alias; the PostgreSQL database behind it is "postgres", so the two differ
POOL_SIZE, RAISED_POOL_SIZE = 2, 12
CLIENTS = 10  # more than POOL_SIZE (clients queue), fewer than RAISED_POOL_SIZE (nobody needs to)
HOLD_SECONDS = 0.2  # each transaction holds its server connection this long
LOAD_SECONDS = 15
# One point a second, as Prometheus scrapes: the latest point is the latest scrape, at most a second old.
ONE_POINT_PER_SCRAPE = dict(step_seconds=1, rate_window_seconds=1)


def pool_profile() -> PerformanceProfile:
    """A profile tuning the pool of database ``app`` served by the namespace's pgBouncers, read with the PyPI
    exporter's names. The shortest window the API accepts (10 s): at one point a second it is known after 6."""
    return PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": PROFILE, "namespace": NAMESPACE},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": PROFILE},
            "guardrails": {"interval": "10s", "window": "10s", "peakWindow": "10s", "verifyFor": "10s"},
            "pool": {"enabled": True, "pgbouncer": {
                "configMapRef": {"name": "pgbouncer"}, "database": DATABASE,
                "exporter": PoolExporter.PYPI.value}},
        },
    })


@dataclass(frozen=True)
class PoolReading:
    """The pool signals of one perfpilot cycle read, at ``at``."""

    at: datetime
    server_active: Signal
    client_waiting: Signal
    max_wait_seconds: Signal
    served_size_min: Signal
    served_size_max: Signal

    @staticmethod
    def latest(signal: Signal) -> float | None:
        return signal.latest if isinstance(signal, Series) else None

    def __str__(self) -> str:
        def show(signal: Signal) -> str:
            return f"{signal.latest:g}" if isinstance(signal, Series) else str(signal)
        return (f"{self.at:%H:%M:%S}: server active {show(self.server_active)}, client waiting "
                f"{show(self.client_waiting)}, max wait {show(self.max_wait_seconds)}, pool size served "
                f"{show(self.served_size_min)}..{show(self.served_size_max)}")


def read_pool(prometheus_url: str) -> PoolReading:
    """The pool signals as the operator's cycle reads them now (an explicit evaluation time, as always)."""
    at = datetime.now(UTC)
    target = ProfileTarget(pool_profile(), LiveConfig(hpa=None, containers=()))
    settings = PrometheusSettings(url=prometheus_url, **ONE_POINT_PER_SCRAPE)
    observed = fetch_observations([target], at=at, settings=settings)
    observations = observed[(NAMESPACE, PROFILE)]
    return PoolReading(at=observations.at, server_active=observations.pool_server_active,
                       client_waiting=observations.pool_client_waiting,
                       max_wait_seconds=observations.pool_max_wait_seconds,
                       served_size_min=observations.pool_served_size_min,
                       served_size_max=observations.pool_served_size_max)


def read_until(prometheus_url: str, seen: Callable[[PoolReading], bool], *, seconds: float, what: str,
               load: subprocess.Popen[bytes]) -> PoolReading:
    """The first reading where ``seen`` holds, polled while the load runs; the test fails with the readings
    when ``seconds`` pass or the load ends first."""
    deadline = time.monotonic() + seconds
    readings: list[PoolReading] = []
    while True:
        # Whether the load still ran is taken before the read: a reading seen is then one of the load.
        running = load.poll() is None
        readings.append(read_pool(prometheus_url))
        if seen(readings[-1]):
            if not running:
                pytest.fail(f"{what}: seen only after pgbench ended; readings:\n" + "\n".join(map(str, readings[-12:])),
                            pytrace=False)
            return readings[-1]
        if not running or time.monotonic() > deadline:
            reason = "pgbench ended" if not running else f"not within {seconds:g}s"
            pytest.fail(f"{what}: {reason}; readings:\n" + "\n".join(map(str, readings[-12:])), pytrace=False)
        time.sleep(0.25)


@contextmanager
def pgbench_load(postgres: Postgres, pgbouncer: PgBouncer, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """pgbench's CLIENTS clients through pgBouncer for LOAD_SECONDS, each transaction holding its connection;
    killed on leaving if it still runs."""
    script, log = folder / "hold.sql", folder / "pgbench.log"
    script.write_text(f"SELECT pg_sleep({HOLD_SECONDS});\n")
    command = [postgres.tool("pgbench"), "-n", "-c", str(CLIENTS), "-j", "2", "-T", str(LOAD_SECONDS),
               "-f", str(script), "-h", pgbouncer.host, "-p", str(pgbouncer.port), "-U", postgres.superuser, DATABASE]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin"})
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def first_scrape(prometheus_url: str) -> PoolReading:
    """The first reading with the pool size served, once the exporter's scrapes are in Prometheus (pool series
    appear only once a client connects; SHOW DATABASES' at once). Prometheus scrapes a new target only after
    several seconds (about 6 here: it batches its discovery updates); the load starts after that, so all of
    its run is watched and its length need not cover Prometheus' start."""
    deadline = time.monotonic() + 15
    while not isinstance((reading := read_pool(prometheus_url)).served_size_max, Series):
        if time.monotonic() > deadline:
            pytest.fail(f"no pool size served read within 15s: {reading}", pytrace=False)
        time.sleep(0.25)
    return reading


def served(reading: PoolReading) -> tuple[float | None, float | None]:
    return reading.latest(reading.served_size_min), reading.latest(reading.served_size_max)


def test_a_full_pool_and_its_raise_read_through_perfpilot_from_real_components(tmp_path: Path) -> None:
    started = time.monotonic()
    with running_postgres() as postgres, pgbouncer_folder() as folder:
        ini = (f"[databases]\n{DATABASE} = host={postgres.host} port={postgres.port} dbname=postgres\n"
               f"[pgbouncer]\npool_mode = transaction\ndefault_pool_size = {POOL_SIZE}\n")
        with running_pgbouncer(folder, ini, client_users=[postgres.superuser]) as pgbouncer:
            assert isinstance(pgbouncer, PgBouncer), pgbouncer  # else pgBouncer's log: it refused the ini
            with running_exporter(pgbouncer, folder) as exporter, running_prometheus(
                    workdir=tmp_path, openmetrics=None,
                    scrape_targets=[ScrapeTarget(exporter.address, {"namespace": NAMESPACE, "pod": POOLER_POD})],
            ) as prometheus:
                assert served(first_scrape(prometheus.url)) == (POOL_SIZE, POOL_SIZE)
                with pgbench_load(postgres, pgbouncer, folder) as load:
                    full = read_until(
                        prometheus.url, lambda r: (r.latest(r.server_active) == POOL_SIZE
                                                   and (r.latest(r.client_waiting) or 0) > 0
                                                   and (r.latest(r.max_wait_seconds) or 0) > 0),
                        seconds=15, what=f"a full pool of {POOL_SIZE} with clients waiting", load=load)
                    assert isinstance(full.server_active, Series)
                    # The pool's size caps the servers in use at every point of the window, not only the latest.
                    assert max(full.server_active.values) <= POOL_SIZE, full.server_active

                    pgbouncer.admin(f"SET default_pool_size = {RAISED_POOL_SIZE};")
                    raised = read_until(
                        prometheus.url, lambda r: ((r.latest(r.server_active) or 0) > POOL_SIZE
                                                   and r.latest(r.client_waiting) == 0),
                        seconds=8, what=f"the pool raised to {RAISED_POOL_SIZE} in use, nobody waiting", load=load)
                    assert raised.at > full.at
                    # The size SHOW DATABASES gives follows the SET too: the raise is served.
                    assert served(raised) == (RAISED_POOL_SIZE, RAISED_POOL_SIZE), raised

                    load.wait(timeout=LOAD_SECONDS + 10)
                    assert load.returncode == 0, (folder / "pgbench.log").read_text()
    assert time.monotonic() - started < 40
