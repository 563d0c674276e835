"""pgbouncer.ini read by perfpilot and by a real pgBouncer: the same pool sizes, or both refuse the file.

Each case starts pgBouncer (the Debian package) on the ini, with the listen and admin settings it needs added
to its ``[pgbouncer]`` section (last in every case), and reads the sizes it applies to database ``app`` from the admin
console's ``SHOW DATABASES``; ``parse_pgbouncer_ini`` must give the same. pgBouncer connects to a database
only for a client, so no PostgreSQL is needed for it to start and show its pools.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from promharness import free_port

from perfpilot.observe.workload import WorkloadSpecError, parse_pgbouncer_ini

pytestmark = pytest.mark.integration

INSTALL_HINT = ("pgbouncer and psql are required (apt-get install pgbouncer postgresql-client; scripts/test.sh "
                "installs them when run as root)")


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    if found is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return found


@pytest.fixture
def folder() -> Iterator[Path]:
    # Started as root, pgBouncer runs as nobody, which must read the ini and the users file here: under /tmp,
    # not pytest's tmp_path or a private TMPDIR, which only their owner may enter.
    with tempfile.TemporaryDirectory(prefix="perfpilot-pgbouncer-", dir="/tmp") as name:
        Path(name).chmod(0o755)
        yield Path(name)


def _listening(process: subprocess.Popen[bytes], port: int, *, seconds: float) -> bool:
    """Whether pgBouncer listens on ``port`` before it exits or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def _pgbouncer_sizes(folder: Path, ini: str) -> tuple[int, int] | str:
    """The (pool size, reserve) pgBouncer applies to ``app`` with this ini, or its log when it refuses it."""
    users, log = folder / "users.txt", folder / "pgbouncer.log"
    users.write_text('"admin" ""\n')
    port = free_port()
    if "app =" not in ini:
        ini = "[databases]\napp = host=db\n" + ini
    headers = [line.split("]")[0] + "]" for line in ini.splitlines() if line.startswith("[")]
    # Added to the case's own [pgbouncer] section: a second one would start again from the defaults.
    if headers[-1] != "[pgbouncer]":
        assert "[pgbouncer]" not in headers, "the case's [pgbouncer] section must come last"
        ini += "[pgbouncer]\n"
    ini += (f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {users}\nadmin_users = admin\n")
    if os.geteuid() == 0:
        ini += "user = nobody\n"  # pgBouncer will not run as root
    config = folder / "pgbouncer.ini"
    config.write_text(ini)
    # In the foreground, so it is stopped and waited for whatever happens (no daemon left behind).
    with log.open("wb") as output:
        process = subprocess.Popen([_binary("pgbouncer"), str(config)], stdout=output, stderr=subprocess.STDOUT)
    try:
        if not _listening(process, port, seconds=10):
            return log.read_text()  # it refused the file (or could not listen: the log says which)
        # -X: no ~/.psqlrc; only PATH from the environment (no PGSSLMODE and the like).
        shown = subprocess.run(
            [_binary("psql"), "-X", "-h", "127.0.0.1", "-p", str(port), "-U", "admin", "-A", "-F", "|", "-c",
             "SHOW DATABASES", "pgbouncer"],
            capture_output=True, text=True, timeout=30, check=False, env={"PATH": os.environ.get("PATH", "")},
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    header = lines[0].split("|")
    app = next(line.split("|") for line in lines[1:] if line.startswith("app|"))
    reserve_column = "reserve_pool" if "reserve_pool" in header else "reserve_pool_size"
    return int(app[header.index("pool_size")]), int(app[header.index(reserve_column)])


@pytest.mark.parametrize("ini", [
    "[databases]\napp = host=db pool_size = 50\n",  # spaces around = in a connection string
    "[databases]\napp = host=db password='x pool_size=1' pool_size=9\n",  # a quoted value holding a setting
    "[databases]\napp = host=db password='it''s pool_size=1' pool_size=5\n",  # '' inside quotes
    "[databases]\napp = host=db pool_size='30'\n",  # a number in quotes on a database line
    "[databases]\napp = host=db pool_size=7 reserve_pool=1\n[pgbouncer]\ndefault_pool_size = 30\n",
    "[pgbouncer]\nlisten_port = 6432\n    default_pool_size = 30\n",  # an indented line is a line
    "; sizes\n[pgbouncer]\n# old\ndefault_pool_size = 10\ndefault_pool_size = 12\n",  # comments, later wins
    "[pgbouncer] ; main\ndefault_pool_size = 14\n",  # a comment after a section header
    "[pgbouncer]\ndefault_pool_size = 010\nreserve_pool_size = 0x1A\n",  # strtol base 0: octal, hex
    "[pgbouncer]\ndefault_pool_size = +12\nreserve_pool_size = 0\n",
    "[databases]\napp = host=db pool_size=010\n[pgbouncer]\ndefault_pool_size = 010\n",  # atoi on the line
    "[pgbouncer]\nreserve_pool_size = 3\n",  # the defaults: 20 and the reserve given
    "[pgbouncer]\ndefault_pool_size = 2147483647\n",  # the largest a C int holds
    # only a space separates a connection string's pairs: after a tab, the rest is the value before it
    "[databases]\napp = host=db\tpool_size=7\n",
    # a second [pgbouncer] section starts again from the defaults; a [databases] one adds to the first
    "[pgbouncer]\ndefault_pool_size = 12\n[databases]\napp = host=db\n[pgbouncer]\nreserve_pool_size = 2\n",
])
def test_perfpilot_reads_the_pool_sizes_pgbouncer_applies(folder: Path, ini: str) -> None:
    applied = _pgbouncer_sizes(folder, ini)
    assert not isinstance(applied, str), applied
    pool = parse_pgbouncer_ini(ini, database="app")
    assert (pool.default_pool_size, pool.reserve_pool_size) == applied


@pytest.mark.parametrize("ini", [
    "[PgBouncer]\ndefault_pool_size = 8\n",
    "[pgbouncer]\nDefault_Pool_Size = 8\n",
    "[databases]\napp = host=db Pool_Size=7\n",
])
def test_a_name_in_other_case_is_refused_as_pgbouncer_refuses_it(folder: Path, ini: str) -> None:
    # Read regardless of case, these gave sizes pgBouncer never applies: it will not start on the file.
    assert isinstance(_pgbouncer_sizes(folder, ini), str)
    with pytest.raises(WorkloadSpecError, match="pgBouncer reads names as written and refuses"):
        parse_pgbouncer_ini(ini, database="app")


@pytest.mark.parametrize("ini", [
    "[pgbouncer]\nreserve_pool_size = 08\n",  # no octal number
    "[pgbouncer]\ndefault_pool_size = '30'\n",  # quotes are no part of a [pgbouncer] value
    "[pgbouncer]\ndefault_pool_size = many\n",
])
def test_an_ini_pgbouncer_refuses_is_refused_with_the_setting_named(folder: Path, ini: str) -> None:
    refused = _pgbouncer_sizes(folder, ini)
    assert isinstance(refused, str) and "invalid value" in refused
    setting = ini.split("\n")[1].split("=", maxsplit=1)[0].strip()
    with pytest.raises(WorkloadSpecError, match=rf"\[pgbouncer\] {setting}: expected a whole number"):
        parse_pgbouncer_ini(ini, database="app")
