"""A real PostgreSQL (the Debian server package's binaries) on a loopback port, in a throwaway folder.

PostgreSQL refuses to run as root, and the tests run as root in CI: the cluster is created and run as the
``postgres`` user the Debian package adds (as whoever runs the tests otherwise), in a folder under /tmp that user
owns. The server runs in the foreground as a child of the test (no ``pg_ctl`` daemon), so it is stopped and
waited for on every way out. The module name is unique across the test tree (see ``pgbouncer_harness``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from promharness import free_port

SERVER_USER = "postgres"  # the account the Debian package creates; also the cluster's superuser role
INSTALL_HINT = ("PostgreSQL's server binaries are required (/usr/lib/postgresql/<version>/bin/initdb: apt-get "
                "install postgresql; scripts/packages.sh installs it when run as root)")


def server_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder (initdb, postgres, pgbench are not on PATH in Debian)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[-3]))
    if not found:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return Path(found[-1]).parent


def _run_as() -> str | None:
    """Whom the server runs as: ``postgres`` when the tests run as root (which initdb and postgres refuse),
    else the current user (None: no switch)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        pytest.fail(f"running as root, PostgreSQL needs the {SERVER_USER!r} user, which the Debian package "
                    f"postgresql creates: {INSTALL_HINT}", pytrace=False)
    return SERVER_USER


def _switch_to(user: str | None) -> dict[str, Any]:
    """Popen's arguments that run a child as ``user``, its group and none of root's other groups."""
    return {} if user is None else {"user": user, "group": user, "extra_groups": []}


def _server_env() -> dict[str, str]:
    # Only what the server needs: no PG* variables of the caller (PGDATA, PGPORT) leak into initdb or postgres.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


@dataclass(frozen=True)
class Postgres:
    port: int
    data_dir: Path
    bin_dir: Path
    host: str = "127.0.0.1"
    superuser: str = SERVER_USER

    def tool(self, name: str) -> str:
        """Path of one of the server package's programs (pgbench, psql)."""
        return str(self.bin_dir / name)


def _accepting(postgres: Postgres, process: subprocess.Popen[bytes], *, seconds: float) -> bool:
    """Whether the server accepts connections before it exits or ``seconds`` pass (pg_isready: a port that is
    open still answers "starting up" until recovery is done)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        ready = subprocess.run(
            [postgres.tool("pg_isready"), "-q", "-h", postgres.host, "-p", str(postgres.port), "-t", "1"],
            env=_server_env(), check=False,
        )
        if ready.returncode == 0:
            return True
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT ends the sessions, SIGTERM would wait for every client to leave), then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(timeout=10)


@contextmanager
def running_postgres(*, max_connections: int = 40) -> Iterator[Postgres]:
    """A fresh cluster (trust authentication, superuser ``postgres``) listening on 127.0.0.1 at a free port,
    stopped and removed on leaving. It fails the test, with the server's log, when it does not come up."""
    bin_dir = server_bin_dir()
    user = _run_as()
    with tempfile.TemporaryDirectory(prefix="perfpilot-postgres-", dir="/tmp") as name:
        folder = Path(name)
        if user is not None:
            shutil.chown(folder, user=user, group=user)
        data_dir, log = folder / "data", folder / "postgres.log"
        postgres = Postgres(port=free_port(), data_dir=data_dir, bin_dir=bin_dir)
        # --no-sync: a throwaway cluster need not wait for the disk (initdb takes a few seconds less).
        created = subprocess.run(
            [postgres.tool("initdb"), "-D", str(data_dir), "-U", postgres.superuser, "--auth=trust", "--no-sync",
             "--no-instructions"],
            capture_output=True, text=True, timeout=120, check=False, env=_server_env(), **_switch_to(user),
        )
        if created.returncode != 0:
            pytest.fail(f"initdb failed ({created.returncode}): {created.stderr[-2000:]}", pytrace=False)
        # Small and unsafe on purpose: a test database needs no durability, and the machine has 2 cores.
        settings = {"listen_addresses": postgres.host, "unix_socket_directories": str(folder), "fsync": "off",
                    "shared_buffers": "16MB", "max_connections": str(max_connections)}
        command = [postgres.tool("postgres"), "-D", str(data_dir), "-p", str(postgres.port)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        with log.open("wb") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=_server_env(),
                                       **_switch_to(user))
        try:
            if not _accepting(postgres, process, seconds=20):
                pytest.fail(f"PostgreSQL did not start: {log.read_text()[-2000:]}", pytrace=False)
            yield postgres
        finally:
            _stop(process)
