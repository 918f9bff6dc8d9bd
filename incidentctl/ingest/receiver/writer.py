"""Group commit: one thread writes every waiting row in one transaction, one fsync for all.

The rows are webhooks for the raw archive and people's actions for the inbox (both doors),
written together.

Each request still gets its answer only after its own row is committed: the request thread
(or event loop) waits on a Future that the writer resolves with the row id after COMMIT, or fails
with DatabaseUnavailable. While the writer commits a batch, new rows queue up and form the next
batch, so the batch size follows the load (1 when idle, dozens under load).

One request's failure never answers for its neighbours: when a group's statements fail (a row
the database refuses), each row is written again on its own and answered by its own outcome.
A failure no row can cause — connecting, beginning, committing, a lost connection — fails the
whole group at once, as the database is the problem and trying row by row would only wait longer.
A COMMIT whose answer was lost (the connection dropped or timed out during it) may have committed
all the same: the writer reads one of its rows back before answering (db/lost_commit.py), so a
503 still means "not stored".
A conflict (1213: deadlock, or a Galera certification failure during a cluster reconfiguration;
1205) is neither: the group is written again after a jittered backoff (db/retry.py), each retry
reported to `on_conflict(code)`. Rows not reached within `write_timeout` are withdrawn
unwritten (the request answers 503).

A request's signature, when it has one, is claimed in the group's transaction, one statement for
the group: a request whose signature was already claimed is answered as a replay and not
inserted. Once a minute, a writer that has claimed signatures deletes the expired ones.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from incidentctl.db.engine import describe_url, short_error
from incidentctl.db.lost_commit import answer_lost, landed
from incidentctl.db.retry import conflict_code, retry_conflicts
from incidentctl.db.schema import action_inbox, grafana_alerts
from incidentctl.errors import DatabaseConflict, DatabaseUnavailable
from incidentctl.ingest import signatures
from incidentctl.ingest.archive import RawAlert, insert_raw_alerts
from incidentctl.ingest.inbox import InboxRequest, insert_requests
from incidentctl.ingest.signatures import Signature

log = logging.getLogger(__name__)

_STOP = object()
_FAILURES = (SQLAlchemyError, OSError)
# How often a writer deletes expired signatures (only once it has recorded one).
FORGET_EVERY = 60.0


@dataclass
class _Pending:
    raw: RawAlert | InboxRequest  # a webhook for the archive, or a person's action for the inbox
    future: Future
    signature: Signature | None = None


class _Whole(Exception):
    """The database failed the group as a whole (no row is to blame); __cause__ says how."""


class GroupCommitWriter:
    """Commits RawAlerts submitted from any thread, in groups of up to `max_batch`.

    `retry_within`: after a group fails for a reason one row may cause, how long the writer
    goes on writing its rows one by one; rows not reached by then fail (never written)."""

    def __init__(self, engine: Engine, *, max_batch: int = 256, retry_within: float = 5.0,
                 on_commit: Callable[[list[RawAlert | InboxRequest]], None] | None = None,
                 on_error: Callable[[Exception], None] | None = None,
                 on_queue: Callable[[int], None] | None = None,
                 on_conflict: Callable[[int], None] | None = None,
                 on_lost_answer: Callable[[str], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.retry_within = retry_within
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._on_commit = on_commit or (lambda rows: None)
        self._on_error = on_error or (lambda exc: None)
        self._on_queue = on_queue or (lambda depth: None)
        self._on_conflict = on_conflict or (lambda code: None)
        self._on_lost_answer = on_lost_answer or (lambda outcome: None)
        self._monotonic = monotonic
        self._forget_at: float | None = None  # set once a signature is recorded

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

    def submit(self, raw: RawAlert | InboxRequest, signature: Signature | None = None) -> Future:
        """Queues a row (a webhook, or an action for the inbox); the Future resolves to its id
        after COMMIT, or to None when `signature` was already recorded (a replay: the request
        was stored before and nothing is written)."""
        future: Future = Future()
        self._queue.put(_Pending(raw, future, signature))
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
            try:
                self._write(batch)
            except Exception as exc:  # a bug must not stop the thread: every later request would hang
                log.exception("unexpected error writing %d webhook row(s)", len(batch))
                self._fail(batch, exc, whole=True)
            self._forget_expired(batch)

    def _write(self, batch: list[_Pending]) -> None:
        # A request that gave up waiting (timeout → 503) cancelled its future: do not store it,
        # so the sender's retry is not a duplicate.
        live = [p for p in batch if p.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            self._commit(live)
        except _Whole as exc:
            self._fail(live, exc.__cause__, whole=True)
        except DatabaseConflict as exc:  # not an outage: "did not store the row"
            self._fail(live, exc)
        except _FAILURES as exc:
            if len(live) == 1:
                self._fail(live, exc)
                return
            log.debug("commit of %d webhook rows failed (%s); writing them one by one", len(live), short_error(exc))
            self._one_by_one(live)

    def _one_by_one(self, live: list[_Pending]) -> None:
        deadline = self._monotonic() + self.retry_within
        for n, pending in enumerate(live):
            if self._monotonic() > deadline:
                self._fail(live[n:], TimeoutError(f"not written within {self.retry_within:g}s"))
                return
            try:
                self._commit([pending])
            except _Whole as exc:
                self._fail(live[n:], exc.__cause__, whole=True)
                return
            except DatabaseConflict as exc:
                self._fail(live[n:], exc)
                return
            except _FAILURES as exc:
                self._fail([pending], exc)

    def _commit(self, pending: list[_Pending]) -> None:
        """Writes the rows in one transaction, again after a conflict, and answers them; raises
        _Whole, DatabaseConflict (still conflicting after the retries), or what a statement raised."""
        retry_conflicts(lambda: self._commit_once(pending), on_retry=self._on_conflict)

    def _commit_once(self, pending: list[_Pending]) -> None:
        try:
            conn = self.engine.connect()
        except _FAILURES as exc:
            raise _Whole() from exc
        with conn:
            try:
                transaction = conn.begin()  # SQLite: BEGIN IMMEDIATE waits here for the lock
            except _FAILURES as exc:
                raise _Whole() from exc
            try:
                ids = _store(conn, pending)
            except _FAILURES as exc:  # closing the connection rolls the transaction back
                if getattr(exc, "connection_invalidated", False):
                    raise _Whole() from exc
                raise
            try:
                transaction.commit()
            except _FAILURES as exc:
                if conflict_code(exc) is not None:  # certification lost: the group runs again
                    raise
                if not self._landed(pending, ids, exc):
                    raise _Whole() from exc
        self._on_commit([p.raw for p, row_id in zip(pending, ids, strict=True) if row_id is not None])
        for p, row_id in zip(pending, ids, strict=True):
            p.future.set_result(row_id)

    def _landed(self, pending: list[_Pending], ids: list[int | None], exc: BaseException) -> bool:
        """After a COMMIT that failed, whether it committed all the same: only when its answer was
        lost (db/lost_commit.py), and then read from one row it inserted, waiting up to
        `retry_within` for the server to end the transaction. False answers the group 503."""
        if not answer_lost(exc):
            return False
        inserted = [(p.raw, row_id) for p, row_id in zip(pending, ids, strict=True) if row_id is not None]
        if not inserted:  # only replays: nothing inserted but their signatures, and a retry is a replay
            return False
        raw, row_id = inserted[0]
        table = grafana_alerts if isinstance(raw, RawAlert) else action_inbox
        outcome = landed(self.engine, table, row_id, self.retry_within)
        said = {True: "it committed: answered as stored", False: "it did not commit: answered 503",
                None: f"not known within {self.retry_within:g}s: answered 503, a retry may store them twice"}
        log.warning("the answer to the commit of %d row(s) was lost (%s); %s", len(pending), short_error(exc),
                    said[outcome])
        self._on_lost_answer({True: "committed", False: "rolled_back", None: "unknown"}[outcome])
        return outcome is True

    def _fail(self, pending: list[_Pending], exc: BaseException | None, whole: bool = False) -> None:
        reason = short_error(exc) if exc is not None else "unknown error"
        # DEBUG: each request's refusal line (rate-limited) says this for every row
        log.debug("%d webhook row(s) not stored: %s", len(pending), reason)
        database = f"database {describe_url(self.engine.url)}"
        error = DatabaseUnavailable(f"{database} is unavailable: {reason}" if whole
                                    else f"{database} did not store the row: {reason}")
        self._on_error(exc if isinstance(exc, Exception) else error)
        for p in pending:
            if not p.future.done():
                p.future.set_exception(error)

    def _forget_expired(self, batch: list[_Pending]) -> None:
        """Now and then (and only once signatures are in use), deletes expired ones, in
        transactions of its own: a failure here never fails a webhook."""
        signed = [p for p in batch if p.signature is not None]
        now = self._monotonic()
        if signed and self._forget_at is None:
            self._forget_at = now + FORGET_EVERY
        if self._forget_at is None or now < self._forget_at:
            return
        self._forget_at = now + FORGET_EVERY
        newest = max(p.raw.received_at for p in batch)
        try:
            with self.engine.connect() as conn:
                signatures.forget_expired(conn, newest)
        except _FAILURES as exc:
            log.warning("could not delete expired signatures: %s", short_error(exc))


def _store(conn: Connection, pending: list[_Pending]) -> list[int | None]:
    """Inserts the rows whose signature is new (or that have none); returns each row's id, None
    for a replay."""
    uses = [p.signature for p in pending if p.signature is not None]
    fresh = signatures.claim(conn, uses, max(p.raw.received_at for p in pending)) if uses else set()
    kept: list[_Pending] = []
    for p in pending:
        if p.signature is None:
            kept.append(p)
        elif p.signature.key in fresh:
            fresh.discard(p.signature.key)  # a second use in the same group is a replay too
            kept.append(p)
    alerts = [(p, p.raw) for p in kept if isinstance(p.raw, RawAlert)]
    actions = [(p, p.raw) for p in kept if isinstance(p.raw, InboxRequest)]
    ids = dict(zip([id(p) for p, _ in alerts], insert_raw_alerts(conn, [raw for _, raw in alerts]), strict=True))
    ids.update(zip([id(p) for p, _ in actions], insert_requests(conn, [raw for _, raw in actions]), strict=True))
    return [ids.get(id(p)) for p in pending]
