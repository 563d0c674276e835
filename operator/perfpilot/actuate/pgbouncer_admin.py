"""pgBouncer's admin console: what a running pgBouncer shows for a pool, and the commands that change it
(``SHOW DATABASES``, ``RELOAD``, ``SET``).

The console speaks the simple query protocol only, which psycopg uses for a statement sent without
parameters; every statement here is one (the values are integers the caller computed, never text from
elsewhere). Each call opens its own connection: the console is reached once per evaluation per replica.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from perfpilot.actuate.pgbouncer_ini import AdminCommands
from perfpilot.api.status import PoolSize

# The console answers at once or not at all: a pgBouncer that does not is reported, not waited for.
CONNECT_TIMEOUT_SECONDS = 5
# After connecting, a peer gone (its node lost, a partition) would leave a read waiting for ever, and the tick
# with it: libpq's TCP keepalives and user timeout close such a connection within about ten seconds. (They are
# libpq's own settings, not sent to pgBouncer.)
DEAD_PEER_SECONDS = 10
# The admin console's pseudo-database.
ADMIN_DATABASE = "pgbouncer"


@dataclass(frozen=True)
class AdminLogin:
    """A user of ``admin_users`` in the ini and its password (from the profile's adminSecretRef)."""

    username: str
    password: str = field(repr=False)


class PgbouncerAdminError(Exception):
    """The console could not be reached, refused the login, or refused a command."""


@dataclass(frozen=True)
class AdminSync:
    """One pgBouncer brought to a pool: what it showed, what was sent, what it shows after."""

    before: PoolSize | None
    sent: tuple[str, ...]
    after: PoolSize | None


def _shown_pool(connection: psycopg.Connection[tuple[object, ...]], database: str) -> PoolSize | None:
    cursor = connection.execute("SHOW DATABASES")
    columns = [column.name for column in cursor.description or []]
    for row in cursor.fetchall():
        shown = dict(zip(columns, row, strict=True))
        if shown.get("name") == database:
            reserve = shown.get("reserve_pool", shown.get("reserve_pool_size"))  # renamed in pgBouncer 1.24
            return PoolSize(default_pool_size=int(str(shown["pool_size"])), reserve_pool_size=int(str(reserve)))
    return None


def apply_admin_sync(host: str, port: int, *, login: AdminLogin, database: str,
                     decide: Callable[[PoolSize | None], AdminCommands]) -> AdminSync:
    """Read the pool pgBouncer at ``host:port`` shows for ``database``, send what ``decide`` makes of it, and
    read it again. Raises ``PgbouncerAdminError`` naming the address."""
    where = f"pgBouncer admin console at {host}:{port}"
    try:
        with psycopg.connect(host=host, port=port, dbname=ADMIN_DATABASE, user=login.username,
                             password=login.password, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                             autocommit=True, keepalives=1, keepalives_idle=DEAD_PEER_SECONDS // 2,
                             keepalives_interval=2, keepalives_count=2,
                             tcp_user_timeout=DEAD_PEER_SECONDS * 1000) as connection:
            before = _shown_pool(connection, database)
            sent = tuple(decide(before).statements)
            for statement in sent:
                connection.execute(statement.encode())
            after = _shown_pool(connection, database) if sent else before
    except psycopg.Error as error:
        # libpq's words carry the address and the reason (refused, timeout, password authentication failed).
        raise PgbouncerAdminError(f"{where}: {str(error).strip()}") from error
    except (KeyError, ValueError) as error:
        raise PgbouncerAdminError(f"{where}: SHOW DATABASES answered in a form not understood ({error})") from error
    return AdminSync(before=before, sent=sent, after=after)
