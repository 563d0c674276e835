"""pgBouncer's admin console: what a running pgBouncer shows for a pool, and the commands that change it
(``SHOW DATABASES``, ``RELOAD``, ``SET``).

The console speaks the simple query protocol only. Statements go through libpq's asynchronous calls
(``psycopg.pq``: send, then wait on the socket), so that one exchange, connection included, ends by a
deadline: a pgBouncer that stops answering after the login (a frozen process, a node gone) is reported,
not waited for, and the operator's tick goes on. Every statement is fixed text or integers the caller
computed, never text from elsewhere.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import pq

from perfpilot.actuate.pgbouncer_ini import AdminCommands
from perfpilot.api.status import PoolSize

# The whole exchange with one pgBouncer (connect, SHOW, the commands, SHOW again) ends within this.
EXCHANGE_SECONDS = 10.0
# libpq's own limit on connecting (whole seconds, at least 2), within the exchange's.
CONNECT_TIMEOUT_SECONDS = 5
# The admin console's pseudo-database.
ADMIN_DATABASE = "pgbouncer"


@dataclass(frozen=True)
class AdminLogin:
    """A user of ``admin_users`` in the ini and its password (from the profile's adminSecretRef)."""

    username: str
    password: str = field(repr=False)


class PgbouncerAdminError(Exception):
    """The console could not be connected to (``connected`` False: refused, timed out, the login refused;
    nothing was sent), or, once connected, it refused a command, did not answer by the deadline, or the
    connection was lost (``connected`` True)."""

    def __init__(self, message: str, *, connected: bool) -> None:
        super().__init__(message)
        self.connected = connected


@dataclass(frozen=True)
class AdminSync:
    """One pgBouncer brought to a pool: what it showed, what was sent, what it shows after."""

    before: PoolSize | None
    sent: tuple[str, ...]
    after: PoolSize | None


Row = dict[str, str | None]


def _wait_for_result(pgconn: pq.abc.PGconn, statement: str, *, deadline: float, where: str) -> None:
    """Read the socket until libpq holds a whole result (or the end of them), so get_result does not block."""
    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PgbouncerAdminError(f"{where}: no answer to {statement} in time", connected=True)
        select.select([pgconn.socket], [], [], remaining)


def _run(pgconn: pq.abc.PGconn, statement: str, *, deadline: float, where: str) -> list[Row]:
    """One statement's rows (by column name), waiting on the socket no later than ``deadline``: before every
    result, the last (the end of them, which comes with pgBouncer's ready-for-query) included."""
    pgconn.send_query(statement.encode())
    rows: list[Row] = []
    while True:
        _wait_for_result(pgconn, statement, deadline=deadline, where=where)
        result = pgconn.get_result()
        if result is None:
            return rows
        if result.status == pq.ExecStatus.FATAL_ERROR:
            message = (result.error_message or b"").decode(errors="replace").strip()
            raise PgbouncerAdminError(f"{where}: {statement} refused: {message}", connected=True)
        if result.status == pq.ExecStatus.TUPLES_OK:
            columns = [(result.fname(i) or b"").decode() for i in range(result.nfields)]
            for row in range(result.ntuples):
                values = [result.get_value(row, i) for i in range(result.nfields)]
                rows.append({name: None if value is None else value.decode()
                             for name, value in zip(columns, values, strict=True)})


def _shown_pool(rows: list[Row], database: str, *, where: str) -> PoolSize | None:
    for shown in rows:
        if shown.get("name") == database:
            reserve = shown.get("reserve_pool", shown.get("reserve_pool_size"))  # renamed in pgBouncer 1.24
            try:
                return PoolSize(default_pool_size=int(str(shown["pool_size"])), reserve_pool_size=int(str(reserve)))
            except (KeyError, ValueError) as error:
                raise PgbouncerAdminError(f"{where}: SHOW DATABASES answered in a form not understood "
                                          f"({error!r})", connected=True) from error
    return None


def apply_admin_sync(host: str, port: int, *, login: AdminLogin, database: str,
                     decide: Callable[[PoolSize | None], AdminCommands],
                     exchange_seconds: float = EXCHANGE_SECONDS) -> AdminSync:
    """Read the pool pgBouncer at ``host:port`` shows for ``database``, send what ``decide`` makes of it, and
    read it again, all within ``exchange_seconds`` (the connection within ``CONNECT_TIMEOUT_SECONDS`` of them).
    Raises ``PgbouncerAdminError`` naming the address."""
    where = f"pgBouncer admin console at {host}:{port}"
    deadline = time.monotonic() + exchange_seconds
    try:
        # require_auth "!password": the password goes out hashed (md5, SCRAM) or not at all, never in clear to
        # whatever answers at the Pod's address.
        # The TCP keepalives and user timeout are a backstop below the deadline: a peer gone (its node lost)
        # ends the connection itself. They are libpq's own settings, not sent to pgBouncer.
        connection = psycopg.connect(host=host, port=port, dbname=ADMIN_DATABASE, user=login.username,
                                     password=login.password, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                     autocommit=True, require_auth="!password", keepalives=1, keepalives_idle=5,
                                     keepalives_interval=2, keepalives_count=2,
                                     tcp_user_timeout=int(EXCHANGE_SECONDS * 1000))
    except psycopg.Error as error:
        # libpq's words carry the reason (refused, timeout expired, password authentication failed).
        raise PgbouncerAdminError(f"{where}: {str(error).strip()}", connected=False) from error
    try:
        before = _shown_pool(_run(connection.pgconn, "SHOW DATABASES", deadline=deadline, where=where), database,
                             where=where)
        sent = tuple(decide(before).statements)
        for statement in sent:
            _run(connection.pgconn, statement, deadline=deadline, where=where)
        after = before if not sent else _shown_pool(
            _run(connection.pgconn, "SHOW DATABASES", deadline=deadline, where=where), database, where=where)
    except psycopg.Error as error:  # the connection lost mid-exchange
        raise PgbouncerAdminError(f"{where}: {str(error).strip()}", connected=True) from error
    finally:
        connection.close()  # does not wait for the server
    return AdminSync(before=before, sent=sent, after=after)
