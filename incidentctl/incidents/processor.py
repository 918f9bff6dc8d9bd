"""`process`: claim unprocessed raw rows oldest first, turn them into incident changes.

Each batch claims its rows, applies every decision and marks the rows in ONE transaction, so a
crash rolls the batch back and the next run takes the same rows again. Batches apply one at a
time in queue order, whatever host or Galera node runs them: the worker holds the applier lease
(db/lease.py) and each batch's transaction fences on it before it commits, so a worker that lost
the lease commits nothing more. A conflict (1213: deadlock or Galera certification; 1205) rolls
the batch back and it runs again after a jittered backoff (db/retry.py), counted in the summary.
A row that cannot be turned into events (a body that is not a payload, or anything else one row
raises) is marked with its error, changes nothing and is never retried; the rest of its batch
applies. A batch whose changes the database refuses (a value a column does not take, a broken
constraint: SQLSTATE classes 22 and 23) runs again a row per transaction, and a row it still
refuses, while it takes others, is marked with the refusal the same way (`_one_by_one`).

A batch is three steps: `load_states` (store.py) reads the incidents its events touch,
`decide_batch` decides every row's events in memory, `write_batch` (store.py) writes the
outcome. While the server still runs the batch's writes, `ReadAhead` reads and parses the next
batch's rows on a connection of its own and decides them over the incidents as this batch leaves
them; the next batch uses that decision when `load_states`, under its locks, reads the very states
it was made on (else it decides again). `replay --process` takes the same steps for rows it
stores as it goes (`process_as_stored`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TypeVar

from sqlalchemy import Connection, Engine, bindparam, func, select, update
from sqlalchemy.exc import DataError, IntegrityError

from incidentctl.counting import Counts
from incidentctl.db.capabilities import capabilities
from incidentctl.db.engine import database_errors, reader, short_error
from incidentctl.db.lease import Lease, applier_connection
from incidentctl.db.mariadb_insert import ValueTooLong
from incidentctl.db.retry import Conflicts, retry_conflicts
from incidentctl.db.rows import insert_rows, pipelined, update_where_in
from incidentctl.db.schema import ERROR_TEXT_MAX, grafana_alerts
from incidentctl.errors import DatabaseRefused
from incidentctl.incidents.decide import decide_row
from incidentctl.incidents.fingerprint import incident_fingerprint
from incidentctl.incidents.model import Action, IncidentState, Rules
from incidentctl.incidents.parsing import AlertEvent, PayloadError, parse_body
from incidentctl.incidents.series_cache import SeriesCache, bare_series
from incidentctl.incidents.store import Changes, load_states, peek_states, write_batch
from incidentctl.slicing import clip

BATCH_RETRIES = 3
T = TypeVar("T")

# What the database says of the values a batch writes, which a smaller batch can pin on one row
# (unlike a lost connection or a conflict).
REFUSALS = (DataError, IntegrityError, ValueTooLong)
# Rows refused one after another from which the refusal is the database's (its schema, its
# settings), not the rows': processing stops there rather than mark the queue refused row by row.
REFUSED_IN_A_ROW = 5


@dataclass
class ProcessSummary(Counts):
    rows: int = 0
    alerts: int = 0
    opened: int = 0
    updated: int = 0
    reopened: int = 0
    resolved: int = 0
    ignored: int = 0
    errors: int = 0
    conflicts_retried: int = 0  # batches rolled back by a deadlock / certification conflict and run again

    def line(self) -> str:
        """`4 rows, 5 alerts, …`; conflicts only when there were some (they are rare, and news)."""
        counts = self.as_dict()
        conflicts = counts.pop("conflicts_retried")
        text = ", ".join(f"{value} {name}" for name, value in counts.items())
        return text + (f", {conflicts} conflicts retried" if conflicts else "")


_COUNTER = {Action.OPEN: "opened", Action.REOPEN: "reopened", Action.AUTO_RESOLVE: "resolved",
            Action.IGNORE: "ignored"}

Rows = Sequence[tuple[int, list[AlertEvent]]]  # (raw key, events) of raw rows, in queue order


@dataclass
class BatchDecision:
    """What `decide_batch` makes of a batch: the changes to write, the alerts counted by outcome
    (not `rows` or `errors`), and by raw key the error of each row whose events could not be
    decided."""

    changes: Changes
    summary: ProcessSummary
    errors: dict[int, str]
    states: dict[str, IncidentState]  # by incident fingerprint, as the batch leaves them


@dataclass(frozen=True)
class PreparedRows:
    """Raw rows to be stored already processed (`replay --process`), in order: their column
    values (`processed_at` set; `process_error` for a body that cannot be processed) and the
    events of each processable one by its position."""

    rows: list[dict]
    events_by_position: list[tuple[int, list[AlertEvent]]]

    @property
    def count(self) -> int:
        return len(self.rows)

    def insert(self, conn: Connection) -> list[int]:
        """Stores the rows in the caller's transaction; returns their ids in order."""
        return insert_rows(conn, grafana_alerts, self.rows, returning="id")


@dataclass(frozen=True)
class StoredBatch:
    """What `process_as_stored` did: the rows it stored (the last `prepare`, as a retry prepares
    again) and the summary of those and of the queued rows processed before them."""

    prepared: PreparedRows
    processed: ProcessSummary


def backlog(engine: Engine) -> int:
    """Rows waiting to be processed."""
    with reader(engine).connect() as conn:
        return conn.execute(select(func.count()).select_from(grafana_alerts)
                            .where(grafana_alerts.c.processed_at.is_(None))).scalar_one()


def process_pending(
    engine: Engine,
    rules: Rules,
    *,
    batch_size: int,
    clock: Callable[[], datetime],
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    cache: SeriesCache | None = None,
    lease: Lease | None = None,
    ahead: ReadAhead | None = None,
) -> ProcessSummary:
    """Processes unprocessed rows under `rules`, `batch_size` rows a transaction, until none are
    left (or `limit` rows are done); each batch marks its rows processed at one reading of
    `clock`. `progress(done_rows, total_rows)` is called after each batch. A `cache` kept across
    calls spares reading back the series of the incidents earlier calls touched. Holds `lease`
    (default: the applier lease with default times) for the run. `ahead`: the ReadAhead to use
    (one of `batch_size` rows; its counts tell how often its guesses held). Raises
    DatabaseUnavailable, ProcessingBusy, LeaseLost, DatabaseConflict."""
    size = max(1, batch_size)
    cache = SeriesCache() if cache is None else cache
    lease = lease or Lease(engine)
    summary = ProcessSummary()
    conflicts = Conflicts()
    ahead = ahead or ReadAhead(engine, size)
    with database_errors(engine), lease:
        total = backlog(engine) if progress else 0
        if limit is not None:
            total = min(total, limit)
        while limit is None or summary.rows < limit:
            want = size if limit is None else min(size, limit - summary.rows)
            try:
                done = _retrying(engine, lease, conflicts, partial(_queued_batch, size=want, rules=rules, clock=clock,
                                                                  cache=cache, lease=lease, ahead=ahead))
            except REFUSALS:
                one = partial(_queued_batch, size=1, rules=rules, clock=clock, cache=cache, lease=lease)
                done = _one_by_one(engine, lease, conflicts, want, one, clock)
            if done.rows == 0:
                break
            summary.add(done)
            if progress:
                progress(summary.rows, max(total, summary.rows))
    summary.conflicts_retried = conflicts.total
    return summary


def process_as_stored(engine: Engine, rules: Rules, *, batch_size: int, clock: Callable[[], datetime],
                      prepare: Callable[[Connection, datetime], PreparedRows], cache: SeriesCache | None = None,
                      decide_on: Executor | None = None, lease: Lease | None = None) -> StoredBatch:
    """Stores rows and applies their events in one transaction, as a batch of `process` would.

    `prepare(conn, now)` returns the rows to store, already marked processed at `now` (the
    transaction's reading of `clock`, as a batch of queued rows reads it once). Rows already
    waiting in the queue are processed first (batches of `batch_size`), under the same lock, so
    the queue order holds. Where the database works in a process of its own, the events are
    decided on `decide_on` while the rows are inserted, so the server's work on them overlaps
    ours; a row whose events then fail gets its `process_error` by one UPDATE afterwards. Like a
    batch, it is retried when a person's reopen races it (`prepare` is then called again).
    Holds `lease` (default: the applier lease) meanwhile; pass one already held to keep it across
    calls. Raises DatabaseUnavailable, ProcessingBusy, LeaseLost, DatabaseConflict."""
    size = max(1, batch_size)
    cache = SeriesCache() if cache is None else cache
    lease = lease or Lease(engine)
    summary = ProcessSummary()
    conflicts = Conflicts()

    def batches(conn: Connection) -> StoredBatch:
        while True:
            with _transaction(conn, cache):
                done = _process_queued(conn, size, rules, clock, cache)
                prepared = None
                if done.rows == 0:  # the queue is empty: our rows come next
                    prepared = prepare(conn, clock())
                    done = _apply_prepared(conn, prepared, rules, cache, decide_on)
                lease.fence(conn)
            summary.add(done)
            if prepared is not None:
                return StoredBatch(prepared, summary)

    with database_errors(engine), lease:
        stored = _retrying(engine, lease, conflicts, batches)
    summary.conflicts_retried += conflicts.total
    return stored


def batch_fingerprints(rows: Rows, group_by: Sequence[str]) -> set[str]:
    """The incident fingerprints of the rows' events, which `load_states` reads. A row whose
    events cannot all be fingerprinted is left out: `decide_batch` fails it."""
    fingerprints: set[str] = set()
    for _, events in rows:
        try:
            fingerprints.update([incident_fingerprint(group_by, e.labels, e.fingerprint) for e in events])
        except Exception:  # that row's error is decide_batch's to record
            continue
    return fingerprints


def decide_batch(states: Mapping[str, IncidentState], rows: Rows, rules: Rules) -> BatchDecision:
    """Decides the events of raw rows (raw key, events; in queue order) in memory, each row seeing
    what the rows before it did. `states` (incident fingerprint → the incident its next alert
    applies to, as `load_states` reads them) is not changed. A row whose events cannot all be
    decided changes nothing (`decide_row` decides a row whole and undoes a row that fails): the
    others apply as if it were not there, and its error is in `errors`. The changes' timeline
    entries name their raw row by its key; `write_batch` turns keys into ids."""
    states = dict(states)
    keys: dict[str, int] = {}  # incident fingerprint → its key in `changes`: its id, or a new one's key
    for fp, state in states.items():
        assert state.id is not None, "states are incidents read from the database"
        keys[fp] = state.id
    changes = Changes()
    summary = ProcessSummary()
    errors: dict[int, str] = {}
    owned: set[str] = set()  # incidents whose state here is one a decision of this batch made
    for raw_key, events in rows:
        try:
            decided = decide_row(states, events, group_by=rules.group_by, reopen_window=rules.reopen_window,
                                 owned=owned)
        except Exception as exc:  # a bug on one row's events must not stop the queue
            errors[raw_key] = error_text(exc)
            continue
        for event, fp, decision in decided:
            summary.alerts += 1
            counter = _COUNTER.get(decision.action, "updated")
            setattr(summary, counter, getattr(summary, counter) + 1)
            if decision.state is None:
                continue
            if decision.changed:
                states[fp] = decision.state
                owned.add(fp)
                if decision.action == Action.OPEN:
                    keys[fp] = changes.key_for_new()
                changes.record(keys[fp], decision, event.fingerprint, raw_key)
            elif decision.timeline:  # ignored: its timeline entry, on the incident as it is
                changes.note(keys[fp], decision.timeline, raw_key)
    return BatchDecision(changes, summary, errors, states)


def _retrying(engine: Engine, lease: Lease, conflicts: Conflicts, work: Callable[[Connection], T]) -> T:
    """`work(conn)` on an applier connection, again (after a jittered backoff) when it conflicts
    with a concurrent transaction, and again at once when it fails on the one unresolved incident
    per fingerprint: a person reopened an incident of the same fingerprint meanwhile. Either way
    nothing was written (rolled back), and the next attempt reads the state afresh."""
    def attempt() -> T:
        for n in range(BATCH_RETRIES):
            try:
                with applier_connection(engine) as conn:
                    return work(conn)
            except IntegrityError:
                if n == BATCH_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")
    return retry_conflicts(attempt, counts=conflicts)


def _one_by_one(engine: Engine, lease: Lease, conflicts: Conflicts, rows: int,
                one: Callable[..., ProcessSummary], clock: Callable[[], datetime]) -> ProcessSummary:
    """The `rows` queued rows of a batch whose changes the database refused, each in a transaction
    of its own (`one(conn, skip=ids)` processes the oldest queued row but `ids`), until it finds
    the rows it refuses: those are marked with the refusal, changing nothing, once a row behind
    them applies (or the window ends), and the rows after that go in whole batches again (the
    caller's). REFUSED_IN_A_ROW refusals in a row are the database's doing (its schema, its
    settings), not the rows': DatabaseRefused, and those rows stay queued, so a run after the
    database is mended applies them."""
    summary = ProcessSummary()
    refused: list[tuple[int, Exception]] = []  # in a row, in queue order, not marked yet
    for _ in range(rows):
        skip = [raw_id for raw_id, _ in refused]
        try:
            done = _retrying(engine, lease, conflicts, partial(one, skip=skip))
        except REFUSALS as exc:
            # The row it claimed is still the oldest queued but `skip`: nothing was committed,
            # and the lease keeps other workers from taking it.
            head = _retrying(engine, lease, conflicts, partial(_head, skip=skip))
            if head is None:
                raise
            refused.append((head, exc))
            if len(refused) >= REFUSED_IN_A_ROW:
                raise DatabaseRefused(f"the database refused the changes of {len(refused)} rows in a row: its "
                                      f"schema or settings, not the rows; they stay queued: "
                                      f"{short_error(exc)}") from exc
            continue
        if done.rows == 0:
            break
        summary.add(done)
        if refused:  # found: the rows after them go in whole batches again
            summary.add(_retrying(engine, lease, conflicts, partial(_mark_refused, refused=refused, clock=clock,
                                                                    lease=lease)))
            return summary
    if refused:
        summary.add(_retrying(engine, lease, conflicts, partial(_mark_refused, refused=refused, clock=clock,
                                                                lease=lease)))
    return summary


def _head(conn: Connection, skip: Sequence[int]) -> int | None:
    """The id of the oldest queued row but `skip`."""
    return conn.execute(_HEAD_BUT, {"current": list(skip)}).scalar()


def _mark_refused(conn: Connection, refused: Sequence[tuple[int, Exception]], clock: Callable[[], datetime],
                  lease: Lease) -> ProcessSummary:
    """Marks each (row, refusal) processed with what the database said of the row's changes."""
    with conn.begin():
        now = clock()
        conn.execute(_MARK_FAILED, [
            {"_id": raw_id, "now": now,
             "error": clip(_storable(f"the database refused this row's changes: {short_error(exc)}"), ERROR_TEXT_MAX)}
            for raw_id, exc in refused])
        lease.fence(conn)
    return ProcessSummary(rows=len(refused), errors=len(refused))


@contextmanager
def _transaction(conn: Connection, cache: SeriesCache) -> Iterator[None]:
    """`conn.begin()`; the cache keeps what the transaction staged only when it commits."""
    try:
        with conn.begin():
            yield
    except BaseException:
        cache.rollback()
        raise
    cache.commit()


def _queued_batch(conn: Connection, size: int, rules: Rules, clock: Callable[[], datetime],
                  cache: SeriesCache, lease: Lease, ahead: ReadAhead | None = None,
                  skip: Sequence[int] = ()) -> ProcessSummary:
    try:
        with _transaction(conn, cache):
            done = _process_queued(conn, size, rules, clock, cache, ahead, skip)
            if done.rows:
                lease.fence(conn)
            return done
    except BaseException:
        if ahead is not None:
            ahead.drop()  # read while this batch's rows were queued: run again, the batch claims them
        raise


@dataclass
class Claimed:
    """A batch's queued rows: their ids in queue order, the events of each row that parsed (by
    position) and why each other row did not."""

    ids: list[int]
    parsed: list[tuple[int, list[AlertEvent]]]
    failed: dict[int, str]
    guess: Guess | None = None  # ReadAhead's decision on these rows


@dataclass(frozen=True)
class Guess:
    """A decision made before its batch began, and the incident states it was made on."""

    fingerprints: set[str]
    states: dict[str, IncidentState]
    decision: BatchDecision


def _claim(conn: Connection, size: int, skip: Sequence[int] = ()) -> Claimed:
    """The oldest unprocessed rows but `skip`, parsed: the lease makes this worker the only one taking them."""
    if skip:
        return _parsed(conn.execute(_QUEUED_BUT.limit(size), {"current": list(skip)}))
    return _parsed(conn.execute(_QUEUED.limit(size)))


def _parsed(rows: Iterable) -> Claimed:
    claimed = Claimed([], [], {})
    for position, row in enumerate(rows):
        claimed.ids.append(row.id)
        try:
            claimed.parsed.append((position, parse_body(bytes(row.body), row.received_at, row.user_agent)))
        except Exception as exc:  # whatever one body raises is that row's error, never the batch's
            claimed.failed[position] = error_text(exc)
    return claimed


class ReadAhead:
    """The next batch's rows, read on a connection of their own and parsed while the server is
    still writing and marking the current batch (on MariaDB those statements run on a thread of
    their own, `db.rows.pipelined`): the next batch starts at once instead of waiting for the
    server, then parsing. The worker holds the lease, so nobody else takes queued rows: the rows
    read ahead are the ones the next batch would claim, the oldest unprocessed but the current
    batch's. Only a read: a batch that fails or is retried drops them and claims afresh.

    Meanwhile `guess` decides them too. The lease makes this worker the only one changing
    incidents by alerts, so the states the next batch will read are the ones this batch leaves,
    and for the other incidents the ones committed now; a person's ack or resolve in between
    is the exception, and the next batch finds it: it uses the guess only when the states
    `load_states` reads under its locks equal the ones the guess was made on. A decision is a
    pure function of those states and the rows, so the outcome is the same either way."""

    def __init__(self, engine: Engine, size: int) -> None:
        self.engine = engine
        self.size = size
        self._query = _QUEUED_BUT.limit(size)  # built once (ops/gc_tuning.py)
        self._next: Claimed | None = None
        self.guesses = 0  # decisions made ahead
        self.held = 0  # of them, the ones their batch used

    def read(self, current: Sequence[int]) -> list:
        """The rows the next batch would claim: the oldest queued but `current`, the batch's."""
        with reader(self.engine).connect() as conn:
            return list(conn.execute(self._query, {"current": list(current)}))

    def keep(self, rows: list) -> None:
        """Parses the rows `read` for the next batch to `take`."""
        self._next = _parsed(rows)

    def guess(self, after: Mapping[str, IncidentState], rules: Rules, cache: SeriesCache) -> None:
        """Decides the rows kept for the next batch over the incidents as the current batch
        leaves them (`after`, by fingerprint; its new incidents have their ids) and, for the
        others, as they are committed now (read on a connection of their own, without locks)."""
        claimed = self._next
        if claimed is None or not claimed.parsed:
            return
        fingerprints = batch_fingerprints(claimed.parsed, rules.group_by)
        states: dict[str, IncidentState] = {}
        unknown = []
        kept = cache.staged()
        for fp in fingerprints:
            state = after.get(fp)
            if state is None:
                unknown.append(fp)
            else:  # as load_states will read it: series without their labels, annotations, links
                states[fp] = loaded = state.copy()
                series = kept.get(state.id) if state.id is not None else None
                loaded.series = dict(series) if series is not None else bare_series(loaded.series)
        if unknown:
            with reader(self.engine).connect() as conn:
                states.update(peek_states(conn, unknown, cache))
        claimed.guess = Guess(fingerprints, states, decide_batch(states, claimed.parsed, rules))
        self.guesses += 1

    def decision(self, claimed: Claimed, states: Mapping[str, IncidentState]) -> BatchDecision | None:
        """The guess on `claimed` when `states` (read by its batch) are the ones it was made on."""
        guess = claimed.guess
        if guess is None or guess.states != states:
            return None
        self.held += 1
        return guess.decision

    def take(self, size: int) -> Claimed | None:
        """The rows read ahead for a batch of `size`, once; None when there are none to use (a
        batch that finds the queue empty claims, as rows may have come since)."""
        claimed, self._next = self._next, None
        if claimed is None or not claimed.ids or len(claimed.ids) > size:
            return None
        return claimed

    def drop(self) -> None:
        self._next = None


def _process_queued(conn: Connection, size: int, rules: Rules, clock: Callable[[], datetime],
                    cache: SeriesCache, ahead: ReadAhead | None = None, skip: Sequence[int] = ()) -> ProcessSummary:
    """Claims up to `size` queued rows (or takes those `ahead` read) and processes them,
    marking them processed at one reading of `clock`; meanwhile `ahead` reads the next ones."""
    claimed = ahead.take(size) if ahead is not None else None
    if claimed is None:
        claimed = _claim(conn, size, skip)
    if not claimed.ids:
        return ProcessSummary()
    now = clock()
    ids, parsed, failed = claimed.ids, claimed.parsed, dict(claimed.failed)
    fingerprints = claimed.guess.fingerprints if claimed.guess else batch_fingerprints(parsed, rules.group_by)
    states = load_states(conn, fingerprints, cache)
    decided = ahead.decision(claimed, states) if ahead is not None else None
    if decided is None:
        decided = decide_batch(states, parsed, rules)
    failed.update(decided.errors)
    ok_ids = [ids[position] for position, _ in parsed if position not in failed]
    # On MariaDB the statements run on while the next rows are read, parsed and decided.
    with pipelined(conn) as running_on:
        _write(conn, decided, ids, cache)
        # Read before the rows are marked: a read of the queue index while our uncommitted marks
        # change it would have to look past them, row by row.
        following = ahead.read(ids) if ahead is not None else []
        update_where_in(conn, grafana_alerts, {"processed_at": now, "process_error": None}, "id", ok_ids)
        if ahead is not None:
            ahead.keep(following)
            if running_on:  # else nothing runs meanwhile: the next batch decides when it begins
                ahead.guess(decided.states, rules, cache)
    if failed:
        conn.execute(_MARK_FAILED, [{"_id": ids[position], "now": now, "error": error}
                                    for position, error in failed.items()])
    summary = decided.summary
    summary.rows, summary.errors = len(ids), len(failed)
    return summary


def _apply_prepared(conn: Connection, prepared: PreparedRows, rules: Rules, cache: SeriesCache,
                    decide_on: Executor | None) -> ProcessSummary:
    """Stores the prepared rows and applies their events."""
    rows = prepared.events_by_position
    states = load_states(conn, batch_fingerprints(rows, rules.group_by), cache)
    if decide_on is not None and capabilities(conn).server_process:
        # Decisions are pure: they run beside the INSERT, which keeps the connection to this thread.
        deciding = decide_on.submit(decide_batch, states, rows, rules)
        ids = prepared.insert(conn)
        decided = deciding.result()
    else:
        ids = prepared.insert(conn)
        decided = decide_batch(states, rows, rules)
    _write(conn, decided, ids, cache)
    if decided.errors:  # stored as processed without error: say why after all
        conn.execute(_SET_ERROR, [{"_id": ids[position], "error": error} for position, error in decided.errors.items()])
    summary = decided.summary
    summary.rows, summary.errors = prepared.count, prepared.count - len(rows) + len(decided.errors)
    return summary


def _write(conn: Connection, decided: BatchDecision, raw_ids: Sequence[int], cache: SeriesCache) -> None:
    changes = decided.changes
    write_batch(conn, changes, raw_ids)
    cache.stage(changes.incidents.values(), [changes.series.get(key, ()) for key in changes.incidents])


# Built once: statements built per call leave cyclic garbage (ops/gc_tuning.py).
_QUEUED = (select(grafana_alerts.c.id, grafana_alerts.c.received_at, grafana_alerts.c.body, grafana_alerts.c.user_agent)
           .where(grafana_alerts.c.processed_at.is_(None)).order_by(grafana_alerts.c.id))
_QUEUED_BUT = _QUEUED.where(grafana_alerts.c.id.not_in(bindparam("current", expanding=True)))
_HEAD_BUT = _QUEUED_BUT.with_only_columns(grafana_alerts.c.id).limit(1)
_MARK_FAILED = (update(grafana_alerts).where(grafana_alerts.c.id == bindparam("_id"))
                .values(processed_at=bindparam("now"), process_error=bindparam("error")))
_SET_ERROR = (update(grafana_alerts).where(grafana_alerts.c.id == bindparam("_id"))
              .values(process_error=bindparam("error")))


def error_text(exc: Exception) -> str:
    """What `process_error` holds for a row that cannot be processed: the PayloadError's message
    (the body is not a payload we read), else the exception's type and message (a payload we
    do not handle yet: worth a bug report). Always storable text."""
    text_ = str(exc) if isinstance(exc, PayloadError) else f"{type(exc).__name__}: {exc}"
    return clip(_storable(text_), ERROR_TEXT_MAX)


def _storable(text_: str) -> str:
    # A lone surrogate in the message would fail the very UPDATE that marks the row.
    return text_.encode("utf-8", "backslashreplace").decode("utf-8")
