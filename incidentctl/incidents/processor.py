"""`process`: claim unprocessed raw rows oldest first, turn them into incident changes.

Each batch claims its rows, applies every decision and marks the rows in ONE transaction, so a
crash rolls the batch back and the next run takes the same rows again. MySQL/MariaDB claim with
`FOR UPDATE SKIP LOCKED` and take a named lock per batch, so overlapping runs apply batches one
after another in queue order (the result equals one run's); SQLite has one writer anyway
(BEGIN IMMEDIATE). A row that cannot be turned into events (a body that is not a payload, or
anything else one row raises) is marked with its error, changes nothing and is never retried;
the rest of its batch applies.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator, Sequence

from sqlalchemy import Connection, Engine, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from incidentctl.config import Settings
from incidentctl.db.capabilities import capabilities
from incidentctl.db.engine import database_errors, reader
from incidentctl.incidents.fingerprint import incident_fingerprint
from incidentctl.incidents.decide import Action, decide_row
from incidentctl.incidents.parsing import AlertEvent, PayloadError, parse_body
from incidentctl.db.schema import ERROR_TEXT_MAX, grafana_alerts
from incidentctl.incidents.lock import processing_connection
from incidentctl.incidents.series_cache import SeriesCache
from incidentctl.incidents.store import Changes, load_states, write
from incidentctl.slicing import chunks, clip

BATCH_RETRIES = 3


@dataclass
class ProcessSummary:
    rows: int = 0
    alerts: int = 0
    opened: int = 0
    updated: int = 0
    reopened: int = 0
    resolved: int = 0
    ignored: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def add(self, other: "ProcessSummary") -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def line(self) -> str:
        return ", ".join(f"{value} {name}" for name, value in asdict(self).items())


_COUNTER = {Action.OPEN: "opened", Action.REOPEN: "reopened", Action.AUTO_RESOLVE: "resolved",
            Action.IGNORE: "ignored"}


def backlog(engine: Engine) -> int:
    """Rows waiting to be processed."""
    with reader(engine).connect() as conn:
        return conn.scalar(select(func.count()).select_from(grafana_alerts)
                           .where(grafana_alerts.c.processed_at.is_(None)))


def process_pending(
    engine: Engine,
    settings: Settings,
    *,
    batch_size: int | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ProcessSummary:
    """Processes unprocessed rows until none are left (or `limit` rows are done).

    `progress(done_rows, total_rows)` is called after each batch. Raises DatabaseUnavailable,
    ProcessingBusy."""
    size = max(1, batch_size or settings.batch_size)
    group_by = tuple(settings.group_by)
    window = timedelta(seconds=settings.reopen_window)
    summary = ProcessSummary()
    cache = SeriesCache()
    with database_errors(engine):
        total = backlog(engine) if progress else 0
        if limit is not None:
            total = min(total, limit)
        while limit is None or summary.rows < limit:
            want = size if limit is None else min(size, limit - summary.rows)
            done = _run_batch(engine, want, group_by, window, cache)
            if done.rows == 0:
                break
            summary.add(done)
            if progress:
                progress(summary.rows, max(total, summary.rows))
    return summary


@contextmanager
def _transaction(conn: Connection, cache: SeriesCache | None) -> Iterator[None]:
    """`conn.begin()`; the cache keeps what the transaction staged only when it commits."""
    try:
        with conn.begin():
            yield
    except BaseException:
        if cache is not None:
            cache.rollback()
        raise
    if cache is not None:
        cache.commit()


def _run_batch(engine: Engine, size: int, group_by: tuple[str, ...], window: timedelta,
               cache: SeriesCache | None = None) -> ProcessSummary:
    for attempt in range(BATCH_RETRIES):
        try:
            with processing_connection(engine) as conn:
                with _transaction(conn, cache):
                    return _apply_batch(conn, size, group_by, window, cache)
        except IntegrityError:
            # A person reopened an incident of the same fingerprint meanwhile: nothing was
            # written (rolled back); reload the state and try the batch again.
            if attempt == BATCH_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


# What `process_as_stored`'s `store` returns: how many rows it will store, [(position, events)]
# of the processable ones in row order, and `insert(conn) -> ids` that stores them.
Stored = tuple[int, list[tuple[int, list[AlertEvent]]], Callable[[Connection], list[int]]]


def process_as_stored(engine: Engine, settings: Settings, store: Callable[[Connection], Stored],
                      cache: SeriesCache | None = None) -> ProcessSummary:
    """Stores rows and applies their events in one transaction, as a batch of `process` would.

    `store(conn)` prepares rows already marked processed (`processed_at` set, `process_error` for
    a body that cannot be processed) and returns how to insert them (`Stored`): `apply_events`
    inserts them while it decides their events (a row whose events then fail gets its
    `process_error` by one UPDATE afterwards). Rows already waiting in the queue
    are processed first, under the same lock, so the queue order holds. Like a batch, it is
    retried when a person's reopen races it (`store` is then called again). A `cache` kept across
    calls spares reading back the series of the incidents the previous calls touched. Raises
    DatabaseUnavailable, ProcessingBusy."""
    size = max(1, settings.batch_size)
    group_by = tuple(settings.group_by)
    window = timedelta(seconds=settings.reopen_window)
    summary = ProcessSummary()
    with database_errors(engine):
        for attempt in range(BATCH_RETRIES):
            try:
                with processing_connection(engine) as conn:
                    while True:
                        with _transaction(conn, cache):
                            done = _apply_batch(conn, size, group_by, window, cache)
                            ours = done.rows == 0  # the queue is empty: our rows come next
                            if ours:
                                stored, parsed, insert = store(conn)
                                done, failed = apply_events(conn, parsed, group_by, window, cache, insert)
                                if failed:  # stored as processed without error: say why after all
                                    conn.execute(_SET_ERROR, [{"_id": raw_id, "error": error}
                                                              for raw_id, error in failed.items()])
                                done.rows, done.errors = stored, stored - len(parsed) + len(failed)
                        summary.add(done)
                        if ours:
                            return summary
            except IntegrityError:
                if attempt == BATCH_RETRIES - 1:
                    raise
    raise AssertionError("unreachable")


def _claim(conn: Connection, size: int) -> list:
    query = (select(grafana_alerts.c.id, grafana_alerts.c.received_at, grafana_alerts.c.body,
                    grafana_alerts.c.user_agent)
             .where(grafana_alerts.c.processed_at.is_(None)).order_by(grafana_alerts.c.id).limit(size))
    if capabilities(conn).skip_locked:
        query = query.with_for_update(skip_locked=True)
    return list(conn.execute(query))


def _apply_batch(conn: Connection, size: int, group_by: tuple[str, ...], window: timedelta,
                 cache: SeriesCache | None = None) -> ProcessSummary:
    rows = _claim(conn, size)
    if not rows:
        return ProcessSummary()
    parsed: list[tuple[int, list[AlertEvent]]] = []
    failed: dict[int, str] = {}
    for row in rows:
        try:
            parsed.append((row.id, parse_body(bytes(row.body), row.received_at, row.user_agent)))
        except Exception as exc:  # whatever one body raises is that row's error, never the batch's
            failed[row.id] = error_text(exc)
    summary, undecided = apply_events(conn, parsed, group_by, window, cache)
    failed.update(undecided)
    summary.rows, summary.errors = len(rows), len(failed)
    now = datetime.now(timezone.utc)  # a processing mark, not an incident time
    ok_ids = [raw_id for raw_id, _ in parsed if raw_id not in failed]
    for chunk in chunks(ok_ids, 500):
        conn.execute(_MARK_PROCESSED, {"ids": chunk, "now": now})
    if failed:
        conn.execute(_MARK_FAILED, [{"_id": raw_id, "now": now, "error": error} for raw_id, error in failed.items()])
    return summary


# Built once (see state.py: per-call IN lists leave cyclic garbage).
_MARK_PROCESSED = (update(grafana_alerts).where(grafana_alerts.c.id.in_(bindparam("ids", expanding=True)))
                   .values(processed_at=bindparam("now"), process_error=None))
_MARK_FAILED = (update(grafana_alerts).where(grafana_alerts.c.id == bindparam("_id"))
                .values(processed_at=bindparam("now"), process_error=bindparam("error")))
_SET_ERROR = (update(grafana_alerts).where(grafana_alerts.c.id == bindparam("_id"))
              .values(process_error=bindparam("error")))


def apply_events(conn: Connection, parsed: Sequence[tuple[int, list[AlertEvent]]], group_by: tuple[str, ...],
                 window: timedelta, cache: SeriesCache | None = None,
                 insert: Callable[[Connection], list[int]] | None = None) -> tuple[ProcessSummary, dict[int, str]]:
    """Applies the events of raw rows (raw id, events; in queue order) to the incidents, in the
    caller's transaction. Returns the counts of alerts by outcome (not `rows` or `errors`) and,
    by raw id, the error of each row whose events could not be decided: such a row changes
    nothing (its events are decided whole, on copies, before any is applied) and the others
    apply as if it were not there; the caller marks it. With `cache`, what it reads and writes
    is staged there (the caller commits or rolls it back with the transaction).

    With `insert`, the rows are not stored yet and the keys in `parsed` are positions in what
    `insert(conn)` returns, their ids (also the keys of the errors returned). On MySQL it runs
    on a helper thread, which has the connection to itself until it returns, while the events
    are decided: the database's work on the rows (most of a replayed batch's) overlaps ours on
    their events. SQLite runs it first: its connections belong to the thread that opened them,
    and it has one writer anyway."""
    summary = ProcessSummary()
    failed: dict[int, str] = {}
    rows: list[tuple[int, list[AlertEvent]]] = []
    fingerprints: set[str] = set()
    for raw_key, events in parsed:
        try:
            fingerprints.update([incident_fingerprint(group_by, e.labels, e.fingerprint) for e in events])
        except Exception as exc:
            failed[raw_key] = error_text(exc)
            continue
        rows.append((raw_key, events))
    states = load_states(conn, fingerprints, cache)
    keys = {fp: state.id for fp, state in states.items()}
    decided: list[tuple] = []
    changes = Changes()

    def decide_all() -> None:
        for raw_key, events in rows:
            try:
                row = decide_row(states, events, group_by=group_by, reopen_window=window)
            except Exception as exc:  # a bug on one row's events must not stop the queue
                failed[raw_key] = error_text(exc)
                continue
            for event, fp, decision in row:
                summary.alerts += 1
                counter = _COUNTER.get(decision.action, "updated")
                setattr(summary, counter, getattr(summary, counter) + 1)
                if decision.state is None:
                    continue
                if decision.changed:
                    states[fp] = decision.state
                    if decision.action == Action.OPEN:
                        keys[fp] = changes.key_for_new()
                elif not decision.timeline:
                    continue
                decided.append((keys[fp], decision, event.fingerprint, raw_key))

    if insert is None or not capabilities(conn).server_process:
        raw_ids = insert(conn) if insert is not None else None
        decide_all()
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="incidentctl-insert") as helper:
            inserting = helper.submit(insert, conn)
            try:
                decide_all()
            finally:
                wait([inserting])  # the connection is ours again only once the helper is done
        raw_ids = inserting.result()
    for key, decision, series_fp, raw_key in decided:
        raw_id = raw_key if raw_ids is None else raw_ids[raw_key]
        if decision.changed:
            changes.record(key, decision.state, series_fp, decision.timeline, decision.messages, raw_id,
                           labels_changed=decision.labels_changed)
        else:  # ignored: its timeline entry, on the incident as it is
            changes.note(key, decision.timeline, raw_id)
    write(conn, changes)
    if cache is not None:
        cache.stage(changes.incidents.values())
    if raw_ids is not None:
        failed = {raw_ids[position]: error for position, error in failed.items()}
    return summary, failed


def error_text(exc: Exception) -> str:
    """What `process_error` holds for a row that cannot be processed: the PayloadError's message
    (the body is not a payload we read), else the exception's type and message (a payload we
    do not handle yet: worth a bug report). Always storable text."""
    text_ = str(exc) if isinstance(exc, PayloadError) else f"{type(exc).__name__}: {exc}"
    # A lone surrogate in the message would fail the very UPDATE that marks the row.
    text_ = text_.encode("utf-8", "backslashreplace").decode("utf-8")
    return clip(text_, ERROR_TEXT_MAX)
