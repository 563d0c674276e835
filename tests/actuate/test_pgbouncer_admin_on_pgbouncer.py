"""apply_admin_sync against a real pgBouncer (the Debian package, ``pgbouncer_harness``) whose admin user needs
a password: what it shows, what is sent, what it runs afterwards; and the errors a console that refuses or is
not there gives."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgbouncer_harness import pgbouncer_folder, running_pgbouncer
from promharness import free_port

from perfpilot.actuate.pgbouncer_admin import AdminLogin, AdminSync, PgbouncerAdminError, apply_admin_sync
from perfpilot.actuate.pgbouncer_ini import AdminCommands, compute_admin_commands, compute_pgbouncer_ini
from perfpilot.api.status import PoolSize

pytestmark = pytest.mark.integration

PASSWORD = "s3cret 'quoted'"
LOGIN = AdminLogin(username="admin", password=PASSWORD)
GLOBAL = "[databases]\napp = host=db\nother = host=db pool_size=5\n[pgbouncer]\ndefault_pool_size = 10\n"
ON_LINE = "[databases]\napp = host=db pool_size=7\n[pgbouncer]\nreserve_pool_size = 1\n"


@pytest.fixture
def folder() -> Iterator[Path]:
    with pgbouncer_folder() as path:
        yield path


def _sync_to(ini: str, *, port: int, host: str = "127.0.0.1", login: AdminLogin = LOGIN) -> AdminSync:
    return apply_admin_sync(host, port, login=login, database="app",
                            decide=lambda shown: compute_admin_commands(ini, database="app", shown=shown))


def test_a_pool_the_pgbouncer_section_governs_is_set_live_without_a_reload(folder: Path) -> None:
    with running_pgbouncer(folder, GLOBAL, password=PASSWORD) as pgbouncer:
        assert not isinstance(pgbouncer, str), pgbouncer
        on_file = pgbouncer.config.read_text()
        wanted = compute_pgbouncer_ini(on_file, database="app", pool=PoolSize(default_pool_size=25,
                                                                               reserve_pool_size=3))
        synced = _sync_to(wanted, port=pgbouncer.port)

        assert synced.before == PoolSize(default_pool_size=10, reserve_pool_size=0)
        assert synced.sent == ("SET default_pool_size = 25", "SET reserve_pool_size = 3")
        assert synced.after == PoolSize(default_pool_size=25, reserve_pool_size=3) == PoolSize(
            default_pool_size=pgbouncer.pool_sizes("app")[0], reserve_pool_size=pgbouncer.pool_sizes("app")[1])
        assert pgbouncer.pool_sizes("other") == (5, 3)  # its own size; the shared reserve
        assert pgbouncer.config.read_text() == on_file  # live, not from the file


def test_a_pgbouncer_in_step_is_sent_nothing(folder: Path) -> None:
    with running_pgbouncer(folder, GLOBAL, password=PASSWORD) as pgbouncer:
        assert not isinstance(pgbouncer, str), pgbouncer
        synced = _sync_to(pgbouncer.config.read_text(), port=pgbouncer.port)
        assert synced.sent == ()
        assert synced.before == synced.after == PoolSize(default_pool_size=10, reserve_pool_size=0)


def test_a_size_on_the_database_line_is_reloaded_from_the_file_once_it_has_it(folder: Path) -> None:
    pool = PoolSize(default_pool_size=12, reserve_pool_size=2)
    with running_pgbouncer(folder, ON_LINE, password=PASSWORD) as pgbouncer:
        assert not isinstance(pgbouncer, str), pgbouncer
        wanted = compute_pgbouncer_ini(pgbouncer.config.read_text(), database="app", pool=pool)

        assert "pool_size=12 reserve_pool=2" in wanted  # the reserve goes on the line beside the size

        # The ConfigMap has the new pool, the mounted file not yet: RELOAD reads the old one.
        reset = ("RELOAD", "SET default_pool_size = 20", "SET reserve_pool_size = 1")  # the [pgbouncer] sizes
        early = _sync_to(wanted, port=pgbouncer.port)
        assert early.sent == reset
        assert early.after == PoolSize(default_pool_size=7, reserve_pool_size=1)

        pgbouncer.config.write_text(wanted)  # the kubelet synced the file
        late = _sync_to(wanted, port=pgbouncer.port)
        assert late.sent == reset
        assert late.after == pool


def test_a_wrong_password_is_refused_with_the_address(folder: Path) -> None:
    with running_pgbouncer(folder, GLOBAL, password=PASSWORD) as pgbouncer:
        assert not isinstance(pgbouncer, str), pgbouncer
        with pytest.raises(PgbouncerAdminError, match=rf"127\.0\.0\.1:{pgbouncer.port}: .*password authentication "
                                                      rf"failed") as refused:
            _sync_to(GLOBAL, port=pgbouncer.port, login=AdminLogin(username="admin", password="wrong"))
        assert PASSWORD not in str(refused.value)
        assert pgbouncer.pool_sizes("app") == (10, 0)


def test_a_console_not_listening_is_reported_with_the_address() -> None:
    port = free_port()
    with pytest.raises(PgbouncerAdminError, match=rf"admin console at 127\.0\.0\.3:{port}: .*refused"):
        _sync_to(GLOBAL, port=port, host="127.0.0.3")


def test_the_password_is_not_in_the_login_repr() -> None:
    assert PASSWORD not in repr(LOGIN)


def test_a_size_set_live_is_set_again_after_the_reload_that_reverts_it(folder: Path) -> None:
    ini = "[databases]\napp = host=db reserve_pool=1\n[pgbouncer]\ndefault_pool_size = 10\n"
    pool = PoolSize(default_pool_size=25, reserve_pool_size=3)
    with running_pgbouncer(folder, ini, password=PASSWORD) as pgbouncer:
        assert not isinstance(pgbouncer, str), pgbouncer
        wanted = compute_pgbouncer_ini(pgbouncer.config.read_text(), database="app", pool=pool)

        reset = ("RELOAD", "SET default_pool_size = 25", "SET reserve_pool_size = 0")
        early = _sync_to(wanted, port=pgbouncer.port)
        assert early.sent == reset
        assert early.after == PoolSize(default_pool_size=25, reserve_pool_size=1)  # the reserve waits for the file

        # The next evaluation, the file still old: the size is in step, but the RELOAD the reserve needs takes it
        # back to the file's 10, so it is SET again.
        again = _sync_to(wanted, port=pgbouncer.port)
        assert again.sent == reset
        assert again.after == PoolSize(default_pool_size=25, reserve_pool_size=1)

        pgbouncer.config.write_text(wanted)
        late = _sync_to(wanted, port=pgbouncer.port)
        assert late.sent == reset
        assert late.after == pool


def test_a_pgbouncer_that_does_not_answer_is_given_up_on_after_the_connect_timeout(folder: Path) -> None:
    with running_pgbouncer(folder, GLOBAL, password=PASSWORD) as pgbouncer:
        assert not isinstance(pgbouncer, str), pgbouncer
        os.kill(pgbouncer.pid, signal.SIGSTOP)  # its socket still accepts; nothing answers
        # libpq's own words once CONNECT_TIMEOUT_SECONDS have passed (without a timeout it would wait for ever,
        # and pytest-timeout end the run).
        with pytest.raises(PgbouncerAdminError, match=rf"127\.0\.0\.1:{pgbouncer.port}: .*timeout expired"):
            _sync_to(GLOBAL, port=pgbouncer.port)


def test_a_pgbouncer_that_stops_answering_after_the_login_is_given_up_on_at_the_deadline(folder: Path) -> None:
    with running_pgbouncer(folder, GLOBAL, password=PASSWORD) as pgbouncer:
        assert not isinstance(pgbouncer, str), pgbouncer

        def freeze_then_decide(shown: PoolSize | None) -> AdminCommands:
            os.kill(pgbouncer.pid, signal.SIGSTOP)  # logged in and answered once; nothing answers from now
            return compute_admin_commands(GLOBAL.replace("= 10", "= 25"), database="app", shown=shown)

        # Without the deadline the SET would wait for ever (and pytest-timeout end the run).
        with pytest.raises(PgbouncerAdminError, match=r"no answer to SET default_pool_size = 25 in time") as late:
            apply_admin_sync("127.0.0.1", pgbouncer.port, login=LOGIN, database="app", decide=freeze_then_decide,
                             exchange_seconds=1.0)
        assert late.value.connected


def test_a_reload_for_one_database_keeps_the_shared_size_another_got_live(folder: Path) -> None:
    ini = "[databases]\napp = host=db pool_size=7\nother = host=db\n[pgbouncer]\ndefault_pool_size = 10\n"
    with running_pgbouncer(folder, ini, password=PASSWORD) as pgbouncer:
        assert not isinstance(pgbouncer, str), pgbouncer
        on_file = pgbouncer.config.read_text()
        # Two profiles on one ConfigMap: other's grows the shared default, app's its own line, the file still old.
        shared = compute_pgbouncer_ini(on_file, database="other", pool=PoolSize(default_pool_size=25,
                                                                                 reserve_pool_size=0))
        both = compute_pgbouncer_ini(shared, database="app", pool=PoolSize(default_pool_size=12, reserve_pool_size=0))
        apply_admin_sync("127.0.0.1", pgbouncer.port, login=LOGIN, database="other",
                         decide=lambda shown: compute_admin_commands(both, database="other", shown=shown))
        assert pgbouncer.pool_sizes("other") == (25, 0)

        _sync_to(both, port=pgbouncer.port)  # app's RELOAD reads the old file's default 10

        assert pgbouncer.pool_sizes("other") == (25, 0)
