"""Export of the raw archive as JSON Lines: one object per stored webhook request.

The record format (documented in docs/REPORTS.md, "Export format") is shared with `replay`,
which reads it back: `to_record` writes it, `from_record` checks and decodes it.
Rows are read by keyset pagination on the id, one short read per page, so memory stays flat
however large the archive is and no long transaction holds back writers. `incident_rows`
finds the rows one incident was made from (`show --raw`, `export --incident`): the rows its
timeline names and, since a repeat writes no timeline entry, the processed rows received during
its life whose body carries one of its series — no link table, so the processor's hot path
writes nothing more; `export --incident` adds the actions that name it (action_records.py).
Files are written through a temporary file renamed at the end.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from io import BufferedIOBase
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Engine, func, select

from incidentctl.db.engine import database_errors, reader
from incidentctl.db.schema import grafana_alerts, incident_alerts, incident_events, incidents
from incidentctl.errors import ExportFileError, NotFound
from incidentctl.incidents.parsing import PayloadError, parse_body
from incidentctl.slicing import chunks

PAGE_SIZE = 1000
RECORD_KEYS = ("id", "received_at", "source", "remote_addr", "user_agent", "content_type", "body_sha256")
_TEXT_FIELDS = {"source": 32, "remote_addr": 64, "user_agent": 255, "content_type": 255}


class BadRecord(ValueError):
    """A JSON object looks like an export record but cannot be one (bad time, hash mismatch…)."""


@dataclass(frozen=True)
class ExportSummary:
    rows: int
    first_id: int | None
    last_id: int | None
    path: str | None  # None: standard output
    purged_ids: tuple[int, ...] = ()  # rows an exported incident's timeline names, no longer stored
    actions: int = 0  # people's actions (action inbox rows) written beside the webhooks


@dataclass(frozen=True)
class IncidentRows:
    """The raw rows an incident was made from, in id order, and the ids its timeline names
    that are no longer stored (purged by retention)."""

    incident_id: int
    rows: list[Any]
    purged_ids: list[int]


@dataclass(frozen=True)
class Record:
    """An export record decoded: what `replay` stores."""

    received_at: datetime
    body: bytes
    source: str | None
    remote_addr: str | None
    user_agent: str | None
    content_type: str | None


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with microseconds and a `Z`: 2026-11-26T16:36:00.123456Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> datetime:
    """An ISO 8601 time → aware UTC datetime; a time without offset is UTC. Raises ValueError."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def to_record(row: Any) -> dict:
    """One grafana_alerts row → the export object (body as text when UTF-8, else base64)."""
    record = {key: row[key] for key in RECORD_KEYS}
    record["received_at"] = format_time(row["received_at"])
    record.update(body_fields(row["body"], with_sha256=False))
    return record


def body_fields(body: bytes, *, with_sha256: bool = True) -> dict[str, str]:
    """A record's body: `body` as text when it is UTF-8, else `body_base64`, and its `body_sha256`
    (a webhook row keeps its own sha256 column). Webhook and action records write bodies alike."""
    fields = {"body_sha256": hashlib.sha256(body).hexdigest()} if with_sha256 else {}
    try:
        fields["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        fields["body_base64"] = base64.b64encode(body).decode("ascii")
    return fields


def record_body(obj: dict) -> bytes:
    """The body `body_fields` wrote, checked against its `body_sha256`; raises BadRecord naming
    what is wrong."""
    if "body" in obj and "body_base64" in obj:
        raise BadRecord("record has both `body` and `body_base64`")
    if "body" in obj:
        if not isinstance(obj["body"], str):
            raise BadRecord("`body` is not a string")
        try:
            body = obj["body"].encode("utf-8")
        except UnicodeEncodeError:
            raise BadRecord("`body` holds text that is not valid Unicode") from None
    elif "body_base64" in obj:
        try:
            body = base64.b64decode(obj["body_base64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise BadRecord("`body_base64` is not valid base64") from None
    else:
        raise BadRecord("record has neither `body` nor `body_base64`")
    if hashlib.sha256(body).hexdigest() != obj.get("body_sha256"):
        raise BadRecord("body does not match `body_sha256`")
    return body


def is_record(obj: Any) -> bool:
    """Whether a parsed JSON line is an export record rather than a webhook body."""
    return (isinstance(obj, dict) and "received_at" in obj and "body_sha256" in obj
            and ("body" in obj or "body_base64" in obj))


def from_record(obj: dict) -> Record:
    """Decodes an export record; raises BadRecord naming what is wrong."""
    body = record_body(obj)
    if not isinstance(obj["received_at"], str):
        raise BadRecord("`received_at` is not a string")
    try:
        received_at = parse_utc(obj["received_at"])
    except ValueError:
        raise BadRecord(f"`received_at` is not an ISO 8601 time: {obj['received_at']!r}") from None
    texts = {}
    for key, limit in _TEXT_FIELDS.items():
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise BadRecord(f"`{key}` is not a string")
        if key == "source" and value is not None and not 0 < len(value) <= limit:
            raise BadRecord(f"`source` must be 1 to {limit} characters")
        texts[key] = value
    return Record(received_at, body, **texts)


def iter_rows(engine: Engine, since: datetime | None = None, until: datetime | None = None,
              page_size: int = PAGE_SIZE) -> Iterator[Any]:
    """The archive's rows in id order, received in [since, until), read page by page."""
    table = grafana_alerts
    columns = [table.c[key] for key in RECORD_KEYS] + [table.c.body]
    readonly = reader(engine)
    last_id = 0
    while True:
        query = select(*columns).where(table.c.id > last_id).order_by(table.c.id).limit(page_size)
        if since is not None:
            query = query.where(table.c.received_at >= since)
        if until is not None:
            query = query.where(table.c.received_at < until)
        with database_errors(engine), readonly.connect() as conn:
            page = [row._mapping for row in conn.execute(query)]
        if not page:
            return
        yield from page
        last_id = page[-1]["id"]


def incident_rows(engine: Engine, incident_id: int) -> IncidentRows:
    """The processed raw rows that touched the incident: every row its timeline names, and
    every row received while it was alive (from its opening row and `opened_at` to
    `last_alert_at`, the newest arrival applied to it) that carries an alert of one of its
    series — the repeats, which change counts but write no timeline entry. Replaying them into
    an empty database under the same rules rebuilds the incident. Raises NotFound."""
    i, e, s, g = incidents.c, incident_events.c, incident_alerts.c, grafana_alerts.c
    readonly = reader(engine)
    with database_errors(engine), readonly.connect() as conn:
        incident = conn.execute(select(i.opened_at, i.last_alert_at).where(i.id == incident_id)).first()
        if incident is None:
            raise NotFound(f"incident {incident_id} not found")
        named = set(conn.execute(select(e.raw_alert_id).where(e.incident_id == incident_id,
                                                                e.raw_alert_id.is_not(None))).scalars())
        series = set(conn.execute(select(s.alert_fingerprint).where(s.incident_id == incident_id)).scalars())
        # ids first, from the received_at index; bodies then by primary key, a page at a time
        alive = select(g.id).where(g.received_at >= incident.opened_at, g.received_at <= incident.last_alert_at)
        if named:
            alive = alive.where(g.id >= min(named))
        candidates = sorted(named.union(conn.execute(alive).scalars()))
    columns = [g[key] for key in RECORD_KEYS] + [g.body, g.processed_at, g.process_error]
    found = {}
    for page in chunks(candidates, PAGE_SIZE):
        query = select(*columns).where(g.id.in_(page))
        with database_errors(engine), readonly.connect() as conn:
            for row in conn.execute(query):
                record = row._mapping
                if record["id"] in named or (record["processed_at"] is not None and record["process_error"] is None
                                             and _carries(record, series)):
                    found[record["id"]] = record
    return IncidentRows(incident_id, [found[k] for k in sorted(found)], sorted(named - set(found)))


def _carries(row: Any, series: set[str]) -> bool:
    try:
        events = parse_body(bytes(row["body"]), row["received_at"], row["user_agent"])
    except PayloadError:
        return False
    return any(event.fingerprint in series for event in events)


def export_archive(engine: Engine, out: BinaryIO | BufferedIOBase, *, since: datetime | None = None,
                   until: datetime | None = None, incident: int | None = None,
                   progress: Callable[[int], None] | None = None) -> ExportSummary:
    """Writes the archive (received in [since, until), or the rows of `incident`) as JSON
    Lines to `out`; `progress(rows)` is called after each page. People's actions (the action
    inbox; with `incident`, those that name it) are written among the webhooks in the order they
    were received (action_records.py), so a replay applies them where they happened."""
    # Imported here: action_records reads this module's record helpers.
    from incidentctl.history.action_records import actions_on, iter_actions, to_action_record

    purged: list[int] = []
    source: Iterable[Any]
    actions: Iterator[dict]
    if incident is not None:
        selected = incident_rows(engine, incident)
        source, purged = selected.rows, selected.purged_ids
        actions = actions_on(engine, incident)
    else:
        source = iter_rows(engine, since, until)
        actions = iter_actions(engine, since, until)
    rows, first_id, last_id, written_actions = 0, None, None, 0
    action = next(actions, None)
    for row in source:
        # A webhook and an action received at the same instant: the webhook first, as `process` does.
        while action is not None and action["received_at"] < row["received_at"]:
            _write(out, to_action_record(action))
            written_actions += 1
            action = next(actions, None)
        _write(out, to_record(row))
        rows += 1
        first_id = row["id"] if first_id is None else first_id
        last_id = row["id"]
        if progress is not None and rows % PAGE_SIZE == 0:
            progress(rows)
    while action is not None:
        _write(out, to_action_record(action))
        written_actions += 1
        action = next(actions, None)
    if progress is not None:
        progress(rows)
    return ExportSummary(rows, first_id, last_id, None, tuple(purged), written_actions)


def _write(out: BinaryIO | BufferedIOBase, record: dict) -> None:
    out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    out.write(b"\n")


def count_rows(engine: Engine, since: datetime | None, until: datetime | None) -> int:
    """How many rows an export of [since, until) writes (for the progress bar)."""
    query = select(func.count()).select_from(grafana_alerts)
    if since is not None:
        query = query.where(grafana_alerts.c.received_at >= since)
    if until is not None:
        query = query.where(grafana_alerts.c.received_at < until)
    with database_errors(engine), reader(engine).connect() as conn:
        return conn.execute(query).scalar_one()


def export_to_file(engine: Engine, path: Path, **kwargs) -> ExportSummary:
    """Exports into `path` (gzip when it ends in .gz) through a temporary file renamed at the
    end, so a failed export never leaves a partial file under the requested name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as raw:
            if path.suffix == ".gz":
                with gzip.GzipFile(filename=path.name[:-3], mode="wb", fileobj=raw, compresslevel=6) as out:
                    summary = export_archive(engine, out, **kwargs)
            else:
                summary = export_archive(engine, raw, **kwargs)
        os.replace(tmp, path)
    except OSError as exc:
        raise ExportFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return ExportSummary(summary.rows, summary.first_id, summary.last_id, str(path), summary.purged_ids,
                         summary.actions)
