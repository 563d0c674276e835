"""A real pgBouncer (the Debian package) on a loopback port, and its admin console through psql.

pgBouncer connects to a database only for a client, so no PostgreSQL is needed for it to start and show its
pools. The tests give it an ini; the listen and admin settings it needs are added to that ini's last
[pgbouncer] section (a second one would start again from the defaults). The module name is unique across the
test tree: pytest's importlib mode imports it through the folder a conftest puts on ``sys.path``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from promharness import free_port

INSTALL_HINT = ("pgbouncer and psql are required (apt-get install pgbouncer postgresql-client; scripts/test.sh "
                "installs them when run as root)")


def binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    if found is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return found


@contextmanager
def pgbouncer_folder() -> Iterator[Path]:
    """A folder for the ini, the users file and the log, removed afterwards."""
    # Started as root, pgBouncer runs as nobody, which must read the ini and the users file here (again on a
    # RELOAD): under /tmp, not pytest's tmp_path or a private TMPDIR, which only their owner may enter.
    with tempfile.TemporaryDirectory(prefix="perfpilot-pgbouncer-", dir="/tmp") as name:
        Path(name).chmod(0o755)
        yield Path(name)


def _listening(process: subprocess.Popen[bytes], host: str, port: int, *, seconds: float) -> bool:
    """Whether pgBouncer listens on ``host:port`` before it exits or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.05)
    return False


@dataclass(frozen=True)
class PgBouncer:
    config: Path  # the ini it runs on: the case's, with the listen and admin settings added
    port: int
    host: str = "127.0.0.1"
    password: str = ""  # the admin user's; none: auth_type trust
    pid: int = 0

    def admin(self, command: str) -> list[dict[str, str]]:
        """The rows the admin console answers ``command`` with, by column name."""
        # -X: no ~/.psqlrc; only PATH from the environment (no PGSSLMODE and the like).
        shown = subprocess.run(
            [binary("psql"), "-X", "-h", self.host, "-p", str(self.port), "-U", "admin", "-A", "-F", "|", "-c",
             command, "pgbouncer"],
            capture_output=True, text=True, timeout=30, check=False,
            env={"PATH": os.environ.get("PATH", ""), **({"PGPASSWORD": self.password} if self.password else {})},
        )
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        if not lines or "|" not in lines[0]:
            return []  # a command's tag (RELOAD), no table
        header = lines[0].split("|")
        # The last line is psql's "(N rows)".
        return [dict(zip(header, line.split("|"), strict=True)) for line in lines[1:] if not line.startswith("(")]

    def pool_sizes(self, database: str = "app") -> tuple[int, int]:
        """The (pool size, reserve) pgBouncer applies to ``database`` now (``SHOW DATABASES``)."""
        row = next(row for row in self.admin("SHOW DATABASES") if row["name"] == database)
        reserve_column = "reserve_pool" if "reserve_pool" in row else "reserve_pool_size"  # renamed in 1.24
        return int(row["pool_size"]), int(row[reserve_column])


@contextmanager
def running_pgbouncer(folder: Path, ini: str, *, host: str = "127.0.0.1", port: int | None = None,
                      password: str = "", client_users: Sequence[str] = ()) -> Iterator[PgBouncer | str]:
    """pgBouncer started on ``ini`` in ``folder`` (with a [databases] line for ``app`` when the ini has none),
    or its log when it refuses the file; stopped and waited for on leaving. It listens on ``host`` (any of
    127.0.0.0/8, so that several can share a port as pods do) at ``port`` (default: a free one); with a
    ``password`` the admin user needs it (md5), else it is trusted. ``client_users`` may connect too, trusted
    (only without a ``password``): pgBouncer admits no user missing from its auth_file, even under trust."""
    assert not (client_users and password), "client_users are trusted: no admin password with them"
    users, log = folder / "users.txt", folder / "pgbouncer.log"
    users.write_text(f'"admin" "{password}"\n' + "".join(f'"{user}" ""\n' for user in client_users))
    port = port or free_port()
    if "app =" not in ini:
        ini = "[databases]\napp = host=db\n" + ini
    headers = [line.split("]")[0] + "]" for line in ini.splitlines() if line.startswith("[")]
    # Added to the case's own [pgbouncer] section: a second one would start again from the defaults.
    if headers[-1] != "[pgbouncer]":
        assert "[pgbouncer]" not in headers, "the case's [pgbouncer] section must come last"
        ini += "[pgbouncer]\n"
    ini += (f"listen_addr = {host}\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = {'md5' if password else 'trust'}\nauth_file = {users}\nadmin_users = admin\n")
    if os.geteuid() == 0:
        ini += "user = nobody\n"  # pgBouncer will not run as root
    config = folder / "pgbouncer.ini"
    config.write_text(ini)
    # In the foreground, so it is stopped and waited for whatever happens (no daemon left behind).
    with log.open("wb") as output:
        process = subprocess.Popen([binary("pgbouncer"), str(config)], stdout=output, stderr=subprocess.STDOUT)
    try:
        if not _listening(process, host, port, seconds=10):
            yield log.read_text()  # it refused the file (or could not listen: the log says which)
        else:
            yield PgBouncer(config, port, host=host, password=password, pid=process.pid)
    finally:
        process.kill()  # SIGKILL: a test may have stopped it (SIGSTOP), which a SIGTERM would not end
        process.wait(timeout=10)
