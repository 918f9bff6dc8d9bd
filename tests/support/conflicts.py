"""Conflicts on demand: a statement hook that fails chosen statements with the driver's own 1213
(as a Galera certification failure or a deadlock reaches the client), so the retry paths run on
SQLite and MariaDB alike without a cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event

DEADLOCK_MESSAGE = "Deadlock found when trying to get lock; try restarting transaction"


@contextmanager
def conflicting(engine: Engine, starts_with: str, times: int = 1, code: int = 1213) -> Iterator[list[str]]:
    """Fails the first `times` statements starting with `starts_with` with error `code`; yields
    the statements it failed."""
    failed: list[str] = []

    def hook(conn, cursor, statement, *args):
        if statement.startswith(starts_with) and len(failed) < times:
            failed.append(statement)
            raise conn.dialect.loaded_dbapi.OperationalError(code, DEADLOCK_MESSAGE)

    event.listen(engine, "before_cursor_execute", hook)
    try:
        yield failed
    finally:
        event.remove(engine, "before_cursor_execute", hook)
