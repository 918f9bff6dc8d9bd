"""People's actions in the export format: action inbox rows as JSON Lines records beside the
webhook records, so `export` keeps them and `replay` re-applies them where they happened.

A record (docs/REPORTS.md, "Export format") is told from a webhook record by its `door`:
`{"action_id", "received_at", "door", "incident_id", "incident_fingerprint",
"incident_opened_at", "token", "headers", "content_type", "remote_addr", "state", "reason",
"applied_at", "body_sha256", "body" | "body_base64"}`. Ids differ between databases, so the
incident the action named is identified by its fingerprint and opening time (event times: the
same after a replay), and replay applies the action to the incident here that has both —
never to whatever incident holds the old id.

Replay keeps each action's outcome: one that was refused is stored refused with its reason;
one that was applied, or still pending, is stored pending and — with `replay --process`, right
after the webhooks received before it were processed — applied through the same transitions,
at the time it was first received.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select

from incidentctl.db.engine import database_errors, reader
from incidentctl.db.schema import action_inbox, incidents
from incidentctl.errors import NotFound
from incidentctl.history.export import BadRecord, body_fields, format_time, parse_utc, record_body
from incidentctl.ingest.inbox import Door, InboxRequest, InboxState, insert_requests
from incidentctl.notify.intent import InboxRow, Unusable, read_intent

PAGE_SIZE = 1000


@dataclass(frozen=True)
class ArchivedAction:
    """An action record decoded: the request as it will be stored again, and what became of it."""

    request: InboxRequest
    state: str
    reason: str | None
    incident_id: int | None  # the incident it named (REST: the path; Slack: the button)
    incident_fingerprint: str | None
    incident_opened_at: datetime | None


def is_action_record(obj: Any) -> bool:
    return isinstance(obj, dict) and "door" in obj and "action_id" in obj and "received_at" in obj


def iter_actions(engine: Engine, since: datetime | None = None, until: datetime | None = None) -> Iterator[dict]:
    """Inbox rows received in [since, until), by (received_at, id), each with the fingerprint of
    the incident it names; read page by page."""
    c = action_inbox.c
    readonly = reader(engine)
    after: tuple[datetime, int] | None = None
    while True:
        query = select(action_inbox).order_by(c.received_at, c.id).limit(PAGE_SIZE)
        if since is not None:
            query = query.where(c.received_at >= since)
        if until is not None:
            query = query.where(c.received_at < until)
        if after is not None:
            query = query.where(or_(c.received_at > after[0], and_(c.received_at == after[0], c.id > after[1])))
        with database_errors(engine), readonly.connect() as conn:
            page = [dict(r._mapping) for r in conn.execute(query)]
            named = {row["id"]: _named_incident(row) for row in page}
            ids = {i for i in named.values() if i is not None}
            named_rows = {r.id: r for r in conn.execute(
                select(incidents.c.id, incidents.c.fingerprint, incidents.c.opened_at)
                .where(incidents.c.id.in_(ids)))} if ids else {}
        if not page:
            return
        for row in page:
            row["named_incident"] = named[row["id"]]
            incident = named_rows.get(named[row["id"]])
            row["incident_fingerprint"] = incident.fingerprint if incident else None
            row["incident_opened_at"] = incident.opened_at if incident else None
            yield row
        after = (page[-1]["received_at"], page[-1]["id"])


def actions_on(engine: Engine, incident_id: int) -> Iterator[dict]:
    """The inbox rows that name incident `incident_id` (the REST path, or a Slack button's
    value), whatever became of them, by (received_at, id). An action on an incident comes after
    it opened, so only rows received since are read. Raises NotFound."""
    i = incidents.c
    with database_errors(engine), reader(engine).connect() as conn:
        opened_at = conn.scalar(select(i.opened_at).where(i.id == incident_id))
    if opened_at is None:
        raise NotFound(f"incident {incident_id} not found")
    return (row for row in iter_actions(engine, since=opened_at) if row["named_incident"] == incident_id)


def _named_incident(row: dict) -> int | None:
    if row["incident_id"] is not None:
        return row["incident_id"]
    try:
        return read_intent(InboxRow(row["id"], row["door"], row["received_at"], bytes(row["body"]))).incident_id
    except Unusable:
        return None


def to_action_record(row: dict) -> dict:
    body: bytes = bytes(row["body"])
    record = {"action_id": row["id"], "received_at": format_time(row["received_at"]), "door": row["door"],
              "incident_id": row["named_incident"], "incident_fingerprint": row["incident_fingerprint"],
              "incident_opened_at": format_time(row["incident_opened_at"]) if row["incident_opened_at"] else None,
              "token": row["token_name"], "headers": row["headers"], "content_type": row["content_type"],
              "remote_addr": row["remote_addr"], "state": row["state"], "reason": row["reason"],
              "applied_at": format_time(row["applied_at"]) if row["applied_at"] else None}
    record.update(body_fields(body))
    return record


def from_action_record(obj: dict) -> ArchivedAction:
    """Decodes an action record; raises BadRecord naming what is wrong."""
    body = record_body(obj)
    door = obj["door"]
    if door not in set(Door):
        raise BadRecord(f"unknown door {str(door)[:20]!r}")
    state = obj.get("state")
    if state not in set(InboxState):
        raise BadRecord(f"unknown state {str(state)[:20]!r}")
    try:
        received_at = parse_utc(str(obj["received_at"]))
    except ValueError:
        raise BadRecord(f"`received_at` is not an ISO 8601 time: {obj['received_at']!r}") from None
    incident_id = obj.get("incident_id")
    if incident_id is not None and (not isinstance(incident_id, int) or incident_id < 1):
        raise BadRecord("`incident_id` is not a positive integer")
    headers = obj.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise BadRecord("`headers` is not an object of strings")
    request = InboxRequest(received_at, Door(door), body, headers, _text(obj, "remote_addr"),
                           _text(obj, "content_type"), token_name=_text(obj, "token"))
    opened = _text(obj, "incident_opened_at")
    try:
        opened_at = parse_utc(opened) if opened else None
    except ValueError:
        raise BadRecord(f"`incident_opened_at` is not an ISO 8601 time: {opened!r}") from None
    return ArchivedAction(request, state, _text(obj, "reason"), incident_id, _text(obj, "incident_fingerprint"),
                          opened_at)


def _text(obj: dict, key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRecord(f"`{key}` is not a string")
    return value


def store_action(conn: Connection, action: ArchivedAction, now: datetime) -> int | None:
    """Stores the action in the caller's transaction; returns its id, or None when the same
    request (time, door, body) is already in the inbox. It is stored naming the incident that
    is the same one here — the newest incident with the exported fingerprint opened by the
    time the action arrived (ids differ between databases) — pending; or refused, when it was
    refused before or no incident here is that one."""
    c = action_inbox.c
    r = action.request
    same = conn.execute(select(c.body).where(c.received_at == r.received_at, c.door == r.door)).scalars()
    if any(bytes(body) == r.body for body in same):
        return None
    target, missing = _same_incident(conn, action)
    (new_id,) = insert_requests(conn, [replace(r, incident_id=target)])
    refusal = (action.reason or "refused") if action.state == InboxState.REFUSED else missing
    if refusal is not None:
        conn.execute(action_inbox.update().where(c.id == new_id).values(
            state=InboxState.REFUSED, reason=refusal[:1000], applied_at=now))
    return new_id


def _same_incident(conn: Connection, action: ArchivedAction) -> tuple[int | None, str | None]:
    """(the id here of the incident the action named, or why there is none)."""
    if action.incident_id is None:
        return None, None  # names none: the applier refuses it with its own reason
    if action.incident_fingerprint is None:
        return action.incident_id, (f"replayed: incident {action.incident_id} was gone when exported; "
                                    "not applied")
    i = incidents.c
    query = select(i.id).where(i.fingerprint == action.incident_fingerprint)
    if action.incident_opened_at is not None:  # event times: the same incident opened at the same time
        query = query.where(i.opened_at == action.incident_opened_at)
    else:
        query = query.where(i.opened_at <= action.request.received_at)
    here = conn.scalar(query.order_by(i.opened_at.desc(), i.id.desc()).limit(1))
    if here is None:
        return action.incident_id, (f"replayed: no incident here has the fingerprint of incident "
                                    f"{action.incident_id}; not applied")
    return here, None
