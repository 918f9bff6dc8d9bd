"""Group commit: one thread writes every waiting row in one transaction, one fsync for all.

Each request still gets its answer only after its own row is committed: the request thread
(or event loop) waits on a Future that the writer resolves with the row id after COMMIT, or fails
with DatabaseUnavailable. While the writer commits a batch, new rows queue up and form the next
batch, so the batch size follows the load (1 when idle, dozens under load).
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..archive import RawAlert, insert_raw_alerts
from ..database import describe_url, short_error
from ..errors import DatabaseUnavailable

log = logging.getLogger(__name__)

_STOP = object()


@dataclass
class _Pending:
    raw: RawAlert
    future: Future


class GroupCommitWriter:
    """Commits RawAlerts submitted from any thread, in groups of up to `max_batch`."""

    def __init__(self, engine: Engine, *, max_batch: int = 256,
                 on_commit: Callable[[list[RawAlert]], None] | None = None,
                 on_error: Callable[[Exception], None] | None = None,
                 on_queue: Callable[[int], None] | None = None) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._on_commit = on_commit or (lambda rows: None)
        self._on_error = on_error or (lambda exc: None)
        self._on_queue = on_queue or (lambda depth: None)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Writes what is queued, then stops the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, raw: RawAlert) -> Future:
        """Queues a row; the Future resolves to its id after COMMIT."""
        future: Future = Future()
        self._queue.put(_Pending(raw, future))
        return future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._on_queue(self._queue.qsize())
            self._write(batch)

    def _write(self, batch: list[_Pending]) -> None:
        # A request that gave up waiting (timeout → 503) cancelled its future: do not store it,
        # so the sender's retry is not a duplicate.
        live = [p for p in batch if p.future.set_running_or_notify_cancel()]
        if not live:
            return
        rows = [p.raw for p in live]
        try:
            with self.engine.begin() as conn:
                ids = insert_raw_alerts(conn, rows)
        except (SQLAlchemyError, OSError) as exc:
            error = DatabaseUnavailable(f"database {describe_url(self.engine.url)} is unavailable: {short_error(exc)}")
            log.warning("commit of %d webhook row(s) failed: %s", len(live), short_error(exc))
            self._on_error(exc)
            for p in live:
                p.future.set_exception(error)
            return
        self._on_commit(rows)
        for p, row_id in zip(live, ids):
            p.future.set_result(row_id)
