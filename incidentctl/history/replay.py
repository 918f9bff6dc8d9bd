"""Replay: import historical webhook bodies into the raw archive, idempotently.

An export also holds people's actions (action_records.py): each is stored in the action inbox
once the webhooks read before it are written, and with processing applied right then, so the
incidents come out as they were (acknowledged, resolved, silenced by whom and when).

Inputs are files or directories of `.json` files (one webhook body each) and JSON Lines files
(our own export, or one body per line), each possibly gzip-compressed. A stored request is
identified by (received_at, body_sha256): a row already in the archive, or met earlier in the
same run, is a duplicate and is not stored again, so replaying the same input twice stores
nothing new. Bad lines are reported with file:line and skipped; the rest is imported.
Rows are inserted in batches (one multi-row INSERT and one transaction per batch), so an
interrupted replay keeps what it committed and can simply be run again. With processing, a batch
is processed in the transaction that stores it.
"""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Connection, Engine, bindparam, select

from incidentctl.db.engine import database_errors
from incidentctl.db.lease import Lease
from incidentctl.db.rows import insert_rows
from incidentctl.db.schema import grafana_alerts
from incidentctl.history.action_records import ArchivedAction, from_action_record, is_action_record, store_action
from incidentctl.history.export import BadRecord, from_record, is_record
from incidentctl.incidents.model import Rules
from incidentctl.incidents.parsing import AlertEvent, parse_document
from incidentctl.incidents.processor import (
    REFUSALS,
    PreparedRows,
    ProcessSummary,
    error_text,
    process_as_stored,
    process_pending,
)
from incidentctl.incidents.series_cache import SeriesCache
from incidentctl.ingest import jsondoc
from incidentctl.ingest.archive import RawAlert
from incidentctl.ingest.sniff import decode_body, json_kind
from incidentctl.notify.applier import apply_pending
from incidentctl.notify.intent import AllowList

# Rows per transaction: per-batch costs (the lock, the batch's incidents and series, the commit)
# dominate below it, and two batches in memory stay within budget (docs/PERFORMANCE.md, History).
BATCH_SIZE = 5000
MAX_ERRORS_KEPT = 200  # the count is exact; only the first ones are kept for the report
REPLAY_SOURCE = "replay"  # source of bodies without a recorded one (not our export)
STDIN = "-"
SINGLE_BODY_SUFFIXES = (".json", ".json.gz")
LINES_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
PROGRESS_EVERY = 1000  # lines between progress reports
READ_BUFFER = 1 << 20  # bytes of decompressed input read at once


@dataclass(frozen=True)
class InputError:
    """A line or file that could not be imported, and why."""

    location: str  # `path:line`, or `path` for a whole file
    message: str


@dataclass(frozen=True)
class Item:
    """A body read for import. With processing, its events (or why it cannot be processed)."""

    alert: RawAlert
    events: list[AlertEvent] | None = None
    error: str | None = None


@dataclass
class ReplaySummary:
    files: int = 0
    read: int = 0  # bodies and lines read (blank lines aside): stored + duplicates + errors
    stored: int = 0
    duplicates: int = 0
    not_payloads: int = 0  # stored, but not a known webhook payload (see the row's parse_error)
    skipped_files: int = 0  # files in directories without a replayable suffix
    error_count: int = 0
    errors: list[InputError] = field(default_factory=list)
    processed: ProcessSummary | None = None  # with processing as it goes
    actions: int = 0  # people's actions stored in the action inbox
    action_duplicates: int = 0  # … already there
    actions_applied: int = 0  # with processing: applied again (the others were refused)

    def add_error(self, error: InputError) -> None:
        self.error_count += 1
        self.read += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(error)

    def as_dict(self) -> dict:
        return {"files": self.files, "read": self.read, "stored": self.stored, "duplicates": self.duplicates,
                "not_payloads": self.not_payloads, "skipped_files": self.skipped_files,
                "errors": self.error_count, "actions": self.actions, "action_duplicates": self.action_duplicates,
                "actions_applied": self.actions_applied,
                "error_list": [{"location": e.location, "message": e.message} for e in self.errors]}


def is_replayable(path: Path) -> bool:
    return path.name.endswith(SINGLE_BODY_SUFFIXES + LINES_SUFFIXES)


def expand_paths(paths: Sequence[str], summary: ReplaySummary) -> list[str]:
    """Files to read: the given files, and replayable files under given directories in name
    order. A missing path is an error in `summary`."""
    files: list[str] = []
    for name in paths:
        if name == STDIN:
            files.append(STDIN)
            continue
        path = Path(name)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if is_replayable(child):
                    files.append(str(child))
                else:
                    summary.skipped_files += 1
        elif path.is_file():
            files.append(name)
        else:
            summary.add_error(InputError(name, "no such file or directory"))
    return files


def file_time(path: str, received_at: datetime | None, now: datetime) -> datetime:
    """The receive time of bodies that carry none: --received-at, else the file's mtime
    (standard input: now)."""
    if received_at is not None:
        return received_at
    if path == STDIN:
        return now
    seconds, micros = divmod(Path(path).stat().st_mtime_ns // 1000, 1_000_000)
    return datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=micros)


def read_items(path: str, base_time: datetime, stream: BinaryIO, on_progress: Callable[[], None] = lambda: None,
               parse: bool = False) -> Iterator[Item | ArchivedAction | InputError]:
    """Bodies in one input: the whole file for `.json[.gz]`, else one per JSON line. A file that
    breaks off (truncated gzip, I/O error) ends with an InputError at the line it broke on.
    With `parse`, each body is also parsed into alert events as `process` would."""
    if path.endswith(SINGLE_BODY_SUFFIXES):
        try:
            body = stream.read()
        except (OSError, EOFError, zlib.error) as exc:
            yield InputError(path, f"cannot read: {_reason(exc)}")
            return
        yield item(body, parse, received_at=base_time, source=REPLAY_SOURCE)
        return
    number = 0
    try:
        for number, line in enumerate(stream, 1):
            if number % PROGRESS_EVERY == 0:
                on_progress()
            body = line.rstrip(b"\n").rstrip(b"\r")
            if not body.strip():
                continue
            yield line_item(f"{path}:{number}", body, base_time + timedelta(microseconds=number - 1), parse)
    except (OSError, EOFError, zlib.error) as exc:
        yield InputError(f"{path}:{number + 1}", f"cannot read further: {_reason(exc)}")


def line_item(location: str, line: bytes, line_time: datetime,
              parse: bool = False) -> Item | ArchivedAction | InputError:
    """One JSON line → an export record, a person's action, a webhook body (received at
    `line_time`), or an error."""
    try:
        obj = jsondoc.loads_fields(line)  # a record's numbers are not read; a body is decoded again
    except RecursionError:
        return InputError(location, "JSON nested too deeply")
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return InputError(location, f"invalid JSON: {exc}")
    if is_action_record(obj):
        try:
            return from_action_record(obj)
        except BadRecord as exc:
            return InputError(location, f"bad action record: {exc}")
    if is_record(obj):
        try:
            record = from_record(obj)
        except BadRecord as exc:
            return InputError(location, f"bad export record: {exc}")
        return item(record.body, parse, received_at=record.received_at, remote_addr=record.remote_addr,
                    user_agent=record.user_agent, content_type=record.content_type, source=record.source,
                    body_sha256=obj["body_sha256"])
    if not isinstance(obj, dict):
        return InputError(location, f"a JSON {json_kind(obj)} is neither a webhook body nor an export record")
    return item(line, parse, received_at=line_time, source=REPLAY_SOURCE)


def item(body: bytes, parse: bool, *, received_at: datetime, remote_addr: str | None = None,
         user_agent: str | None = None, content_type: str | None = None, source: str | None = None,
         body_sha256: str | None = None) -> Item:
    """A body as `archive.raw_alert` labels it; with `parse`, also its events as `process` would
    read them from the stored row (whose user agent is clipped), decoding the body once."""
    doc, label = decode_body(body, user_agent)
    alert = RawAlert(received_at, body, label, remote_addr, user_agent, content_type, source, body_sha256)
    if not parse:
        return Item(alert)
    if alert.stored_user_agent != user_agent:
        label = decode_body(body, alert.stored_user_agent)[1]
    try:
        return Item(alert, events=parse_document(doc, label, received_at))
    except Exception as exc:  # as `process`: one body's failure is that row's error
        return Item(alert, error=error_text(exc))


# Built once: statements built per call leave cyclic garbage (ops/gc_tuning.py).
_STORED = (select(grafana_alerts.c.body_sha256, grafana_alerts.c.received_at)
           .where(grafana_alerts.c.body_sha256.in_(bindparam("sha256s", expanding=True)))
           .where(grafana_alerts.c.received_at.between(bindparam("first"), bindparam("last"))))


def _fresh(conn: Connection, rows: list[dict]) -> list[int]:
    """Indexes of the rows not already stored (same received_at and body_sha256), nor earlier
    in `rows`."""
    if not rows:
        return []
    times = [r["received_at"] for r in rows]
    found = conn.execute(_STORED, {"sha256s": list({r["body_sha256"] for r in rows}),
                                   "first": min(times), "last": max(times)})
    seen = {(sha, at) for sha, at in found}
    fresh = []
    for i, row in enumerate(rows):
        key = (row["body_sha256"], row["received_at"])
        if key not in seen:
            seen.add(key)
            fresh.append(i)
    return fresh


def store_batch(conn: Connection, alerts: Sequence[RawAlert]) -> list[dict]:
    """Inserts the alerts not already stored (same received_at and body_sha256) in one
    executemany; returns the rows it stored."""
    rows = [alert.row() for alert in alerts]
    fresh = [rows[i] for i in _fresh(conn, rows)]
    insert_rows(conn, grafana_alerts, fresh)
    return fresh


def prepare_processed(conn: Connection, items: Sequence[Item], now: datetime) -> PreparedRows:
    """The parsed items not stored yet (as `store_batch` finds them), as rows already marked
    processed at `now` (with their process_error), and the events of the processable ones."""
    rows = []
    for entry in items:
        row = entry.alert.row()
        row["processed_at"], row["process_error"] = now, entry.error
        rows.append(row)
    fresh = _fresh(conn, rows)
    return PreparedRows([rows[i] for i in fresh],
                        [(n, events) for n, i in enumerate(fresh) if (events := _events(items[i])) is not None])


def _events(item: Item) -> list[AlertEvent] | None:
    """The events of an item that can be processed."""
    return item.events if item.error is None else None


def replay(engine: Engine, paths: Sequence[str], *, clock: Callable[[], datetime], received_at: datetime | None = None,
           batch_size: int = BATCH_SIZE, progress: Callable[[int, int], None] | None = None,
           stdin: BinaryIO | None = None, process_with: Rules | None = None,
           lease: Lease | None = None) -> ReplaySummary:
    """Imports `paths` into the archive; returns what it read, stored, skipped and why. Bodies
    that carry no receive time (standard input) get the time `clock` reads at the start.
    `progress(advance, total)` is called with the input bytes consumed since the last call and
    the size of all inputs (standard input counts as 0).

    With `process_with` (the rules `process` applies), each batch is processed as it is stored,
    in the same transaction (`processor.process_as_stored`), its rows marked processed at a
    reading of `clock`: the bodies are parsed once and the rows never wait in the queue. Rows
    queued before a batch are processed before it, `batch_size` at a time."""
    summary = ReplaySummary(processed=ProcessSummary() if process_with is not None else None)
    now = clock()
    cache = SeriesCache()  # used by the writer thread only
    batch: list[Item] = []
    files = expand_paths(paths, summary)
    total = sum(_size(path) for path in files)
    advance = (lambda n: progress(n, total)) if progress is not None else None

    def store(items: list[Item]) -> tuple[int, int, ProcessSummary | None]:
        if process_with is None:
            with database_errors(engine), engine.begin() as conn:
                stored = store_batch(conn, [entry.alert for entry in items])
            return len(stored), _not_payloads(stored), None
        try:
            done = process_as_stored(engine, process_with, batch_size=batch_size, clock=clock, cache=cache,
                                     prepare=lambda conn, at: prepare_processed(conn, items, at), decide_on=decider,
                                     lease=held)
        except REFUSALS:
            # The database refused a change of this batch (nothing of it was written): its rows
            # are stored queued and processed as `process` does, which finds the row it refuses
            # (a row per transaction), marks it, and applies the others.
            with database_errors(engine), engine.begin() as conn:
                stored = store_batch(conn, [entry.alert for entry in items])
            processed = process_pending(engine, process_with, batch_size=batch_size, clock=clock, cache=cache,
                                        lease=held)
            return len(stored), _not_payloads(stored), processed
        return done.prepared.count, _not_payloads(done.prepared.rows), done.processed

    def count(done: Future, size: int) -> None:
        stored, not_payloads, processed = done.result()  # re-raises the writer's error, e.g. DatabaseUnavailable
        summary.stored += stored
        summary.duplicates += size - stored
        summary.not_payloads += not_payloads
        if processed is not None:
            assert summary.processed is not None  # set when processing is on
            summary.processed.add(processed)

    # One batch is written on a thread while the next is read and parsed, so the database round
    # trip overlaps the parsing; at most two batches are in memory. With processing, the writer
    # has the batch's events decided on a thread of their own while it inserts the rows.
    # With processing, the applier lease is held for the whole replay, not taken per batch.
    held = (lease or Lease(engine)) if process_with is not None else None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-writer") as writer, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-decide") as decider, \
            database_errors(engine), (held if held is not None else nullcontext()):
        in_flight: tuple[Future, int] | None = None

        def flush() -> None:
            nonlocal in_flight
            if in_flight is not None:
                count(*in_flight)
            in_flight = (writer.submit(store, batch.copy()), len(batch))
            batch.clear()

        def act(action: ArchivedAction) -> None:
            """Stores (and with processing applies) an action once everything before it is written."""
            nonlocal in_flight
            if batch:
                flush()
            if in_flight is not None:
                count(*in_flight)
                in_flight = None
            with database_errors(engine), engine.begin() as conn:
                stored = store_action(conn, action, now)
            if stored is None:
                summary.action_duplicates += 1
                return
            summary.actions += 1
            if process_with is not None:
                summary.actions_applied += apply_pending(engine, allow=AllowList(), session=None, clock=clock,
                                                       lease=held).applied

        for path in files:
            summary.files += 1
            for entry in _read_file(path, received_at, now, advance, stdin, process_with is not None):
                if isinstance(entry, InputError):
                    summary.add_error(entry)
                    continue
                if isinstance(entry, ArchivedAction):
                    act(entry)
                    continue
                summary.read += 1
                batch.append(entry)
                if len(batch) >= batch_size:
                    flush()
        if batch:
            flush()
        if in_flight is not None:
            count(*in_flight)
    return summary


def replay_and_process(engine: Engine, paths: Sequence[str], rules: Rules, *, clock: Callable[[], datetime],
                       queue_batch_size: int, received_at: datetime | None = None, batch_size: int = BATCH_SIZE,
                       progress: Callable[[int, int], None] | None = None,
                       queue_progress: Callable[[int, int], None] | None = None,
                       stdin: BinaryIO | None = None, lease: Lease | None = None) -> ReplaySummary:
    """`replay --process`: `replay` processing each batch as it is stored (`process_with=rules`),
    then the rows still waiting in the queue (received while it ran, after its last batch)
    processed as `process` does, `queue_batch_size` a transaction, so none is left waiting.
    `queue_progress(done_rows, total_rows)` reports that last step; the summary's `processed`
    counts both. The applier `lease` (default: one with default times) is held across both."""
    lease = lease or Lease(engine)
    with lease:
        summary = replay(engine, paths, clock=clock, received_at=received_at, batch_size=batch_size,
                         progress=progress, stdin=stdin, process_with=rules, lease=lease)
        assert summary.processed is not None
        summary.processed.add(process_pending(engine, rules, batch_size=queue_batch_size, clock=clock,
                                              progress=queue_progress, lease=lease))
    return summary


def _read_file(path: str, received_at: datetime | None, now: datetime, progress: Callable[[int], None] | None,
               stdin: BinaryIO | None, parse: bool) -> Iterable[Item | ArchivedAction | InputError]:
    """Items of one input; a file that cannot be opened is an InputError, not an exception."""
    with ExitStack() as opened:  # closes the file, never stdin
        try:
            base_time = file_time(path, received_at, now)
            raw = (stdin or sys.stdin.buffer) if path == STDIN else opened.enter_context(open(path, "rb"))
        except OSError as exc:
            yield InputError(path, f"cannot open: {_reason(exc)}")
            return
        done = 0

        def report() -> None:
            nonlocal done
            if progress is not None and path != STDIN:
                position = raw.tell()
                progress(position - done)
                done = position

        stream = _GzipChunks.reader(raw) if path.endswith(".gz") else raw
        yield from read_items(path, base_time, stream, report, parse)
        report()


class _GzipChunks(io.RawIOBase):
    """A gzip stream as raw chunks of up to READ_BUFFER bytes, each what one step of decompression
    gives (`read1`), so a file that breaks off delivers every line decompressed before the break.
    Lines are read through a BufferedReader over it: GzipFile's own buffer is 8 KiB, refilled by
    Python code, and reading a line through it costs half as much again."""

    def __init__(self, raw: BinaryIO):
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")

    @classmethod
    def reader(cls, raw: BinaryIO) -> io.BufferedReader:
        return io.BufferedReader(cls(raw), READ_BUFFER)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._gzip.read1(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _not_payloads(rows: list[dict]) -> int:
    """Stored rows whose body is not a known webhook payload."""
    return sum(1 for row in rows if row["parse_error"] is not None)


def _size(path: str) -> int:
    try:
        return 0 if path == STDIN else Path(path).stat().st_size
    except OSError:
        return 0


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
