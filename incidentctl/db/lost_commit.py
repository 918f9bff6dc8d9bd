"""A COMMIT whose answer never came: did it commit?

When the connection drops, or its read times out, while the server runs a COMMIT (a Galera node
waiting to certify while a peer is paused or dying, a stalled disk), the server may still commit
after the client gave up, or roll back once it sees the client gone. Either answer given to the
caller then is a guess, and a wrong "not stored" makes a sender store the same body twice.

`landed(engine, table, row_id, wait)` finds out on a new connection: a locking read of a row the
transaction inserted waits until that transaction has ended on the server (InnoDB holds an
inserted row's lock until then), after which the row is there (committed) or not (rolled back).
It answers None when that cannot be told within `wait` seconds: the transaction still undecided,
or the server unreachable. A new connection that reaches another server (a balancer in front of
Galera nodes) does not see a commit still under way on the first one, and answers False for it:
the caller's "not stored" is then as good as it was without this check.

MySQL/MariaDB only: SQLite commits in-process, and its COMMIT's answer is never lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine, Table, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from incidentctl.db.engine import STALE_SERVER, is_sqlite, short_error
from incidentctl.db.retry import LOCK_WAIT_TIMEOUT, conflict_code, error_code

log = logging.getLogger(__name__)


def answer_lost(exc: BaseException) -> bool:
    """Whether a failed COMMIT lost its answer (the connection dropped: SQLAlchemy invalidated it)
    rather than was refused by the server (which rolled the transaction back; a server that takes
    no writes refuses too, though its connections are dropped as if lost: STALE_SERVER)."""
    return bool(getattr(exc, "connection_invalidated", False)) and error_code(exc) not in STALE_SERVER


def landed(engine: Engine, table: Table, row_id: int, wait: float,
           monotonic: Callable[[], float] = time.monotonic) -> bool | None:
    """Whether the transaction that inserted `table`'s row `row_id` committed: True, False, or None
    when that is not known within about `wait` seconds. The read waits a second at a time, so it
    stays within any read timeout the engine's connections have."""
    if is_sqlite(engine):
        return None
    (key,) = table.primary_key.columns
    deadline = monotonic() + wait
    try:
        with engine.connect() as conn:
            conn.execute(text("SET SESSION innodb_lock_wait_timeout = 1"))
            try:
                while True:
                    try:
                        found = conn.execute(select(key).where(key == row_id).with_for_update(read=True)).first()
                        break
                    except DBAPIError as exc:
                        if conflict_code(exc) != LOCK_WAIT_TIMEOUT or monotonic() >= deadline:
                            raise
            finally:  # the connection goes back to the pool as it came
                conn.rollback()
                conn.execute(text("SET SESSION innodb_lock_wait_timeout = DEFAULT"))
                conn.commit()
    except SQLAlchemyError as exc:
        log.debug("could not read whether row %s of %s landed: %s", row_id, table.name, short_error(exc))
        return None
    return found is not None
