"""apply_admin_sync's deadline holds at every step of the exchange: a console that sends its rows and the
command's tag but never says it is ready for the next query (as a pgBouncer frozen, or a peer cut off, at that
moment would) is given up on, not waited for. A real pgBouncer cannot be stopped between those two messages
on purpose, so this console is a few lines of the PostgreSQL wire protocol on a loopback socket, a fault
injected the way the Kubernetes tests inject theirs."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from perfpilot.actuate.pgbouncer_admin import AdminLogin, PgbouncerAdminError, apply_admin_sync
from perfpilot.actuate.pgbouncer_ini import AdminCommands


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _receive_startup(connection: socket.socket) -> None:
    """The startup packet, after answering 'N' to libpq's SSL or GSS encryption requests."""
    while True:
        length = struct.unpack("!i", connection.recv(4))[0]
        body = connection.recv(length - 4)
        if struct.unpack("!i", body[:4])[0] in (80877103, 80877104):  # SSLRequest, GSSENCRequest
            connection.sendall(b"N")
            continue
        return


def _answer_show_without_ready(connection: socket.socket) -> None:
    _receive_startup(connection)
    connection.sendall(_message(b"R", struct.pack("!i", 0)) + _message(b"Z", b"I"))  # trusted; ready
    connection.recv(1024)  # the query
    field = b"name\x00" + struct.pack("!ihihih", 0, 0, 25, -1, -1, 0)
    row = struct.pack("!hi", 1, 3) + b"app"
    connection.sendall(_message(b"T", struct.pack("!h", 1) + field) + _message(b"D", row)
                       + _message(b"C", b"SHOW\x00"))  # and no ReadyForQuery
    connection.recv(1024)  # waits until the client gives up and closes


@contextmanager
def _console_that_never_gets_ready() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)

        def serve() -> None:
            connection, _ = server.accept()
            with connection:
                _answer_show_without_ready(connection)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield server.getsockname()[1]
        thread.join(timeout=10)


def test_a_console_that_never_says_it_is_ready_again_is_given_up_on_at_the_deadline() -> None:
    with (_console_that_never_gets_ready() as port,
          pytest.raises(PgbouncerAdminError, match=r"no answer to SHOW DATABASES in time") as late):
        apply_admin_sync("127.0.0.1", port, login=AdminLogin(username="admin", password="x"), database="app",
                         decide=lambda shown: AdminCommands(), exchange_seconds=1.0)
    assert late.value.connected
