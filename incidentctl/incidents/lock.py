"""The processing lock: batches that change incidents (`process`, `replay --process`, `rebuild`)
run one at a time, in queue order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text

from incidentctl.db.capabilities import capabilities
from incidentctl.errors import ProcessingBusy

LOCK_NAME = "incidentctl.process:"
LOCK_WAIT_SECONDS = 60


@contextmanager
def processing_connection(engine: Engine) -> Iterator[Connection]:
    """A connection that applies changes to incidents: READ COMMITTED on MySQL, which takes no
    gap locks, so the receiver's INSERTs into the queue never wait for a batch (the named lock
    already orders the batches), and holding the processing lock."""
    with engine.connect() as conn:
        if capabilities(conn).row_locks:
            conn.execution_options(isolation_level="READ COMMITTED")
        with ProcessingLock(conn):
            yield conn


class ProcessingLock:
    """MySQL: a named lock around one batch (or a whole `rebuild`), so overlapping runs apply
    batches one after another in queue order. SQLite needs none: it has one writer anyway."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.named = capabilities(conn).named_locks

    def __enter__(self):
        if self.named:
            # Named locks are server-wide: the database name keeps two databases apart.
            got = self.conn.scalar(text("SELECT GET_LOCK(CONCAT(:name, DATABASE()), :wait)"),
                                   {"name": LOCK_NAME, "wait": LOCK_WAIT_SECONDS})
            self.conn.commit()
            if got != 1:
                raise ProcessingBusy(f"another `incidentctl process` or `rebuild` held the processing lock for "
                                     f"{LOCK_WAIT_SECONDS}s")
        return self

    def __exit__(self, *exc):
        if self.named:
            if self.conn.in_transaction():
                self.conn.rollback()
            self.conn.scalar(text("SELECT RELEASE_LOCK(CONCAT(:name, DATABASE()))"), {"name": LOCK_NAME})
            self.conn.commit()
        return False
