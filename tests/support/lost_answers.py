"""A COMMIT whose answer is lost, on demand (MySQL/MariaDB): the server ends the transaction as
told, then the connection's socket is shut, so the driver's own COMMIT fails as a connection lost
mid-commit does (as a Galera node stalled past the client's read timeout, then committing, does)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event


@contextmanager
def lose_the_answer(engine: Engine, server_does: str = "COMMIT", times: int = 1) -> Iterator[list[int]]:
    """For the next `times` commits on `engine`: the server runs `server_does` (COMMIT or
    ROLLBACK), and the client never hears. Yields the server thread ids it did this to."""
    assert server_does in ("COMMIT", "ROLLBACK")
    done: list[int] = []

    def hook(conn) -> None:
        if len(done) >= times:
            return
        dbapi = conn.connection.dbapi_connection
        with dbapi.cursor() as cursor:
            cursor.execute(server_does)
        done.append(dbapi.thread_id())
        dbapi._sock.shutdown(socket.SHUT_RDWR)

    event.listen(engine, "commit", hook)
    try:
        yield done
    finally:
        event.remove(engine, "commit", hook)
