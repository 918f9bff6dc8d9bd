"""The action inbox (`action_inbox`): people's actions as they arrived, byte for byte.

Two doors append to it — Slack's interactivity URL (`door` slack: a signed block_actions form
post) and the REST API (`door` api: a JSON body with a token owner) — and the batch applies
its rows oldest first (notify/applier.py). The receiver decides nothing about incidents: it
stores what passed authentication, and the REST door's body check (`check_api_body`) only
says whether a body is a well-formed request at all.

ActionKind is the doors' vocabulary. It lives here, not in incidents/model.py, because the
receiver sits below the incident layer; the applier maps it onto the model's transitions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, exists, or_, select

from incidentctl.db.engine import database_errors
from incidentctl.db.rows import insert_rows
from incidentctl.db.schema import action_inbox, incidents
from incidentctl.durations import parse_duration
from incidentctl.slicing import clip


class Door(StrEnum):
    """Where an action came in."""

    SLACK = "slack"
    API = "api"


class ActionKind(StrEnum):
    """What a person asks for: the REST door's `action`, and (but note) a Slack button's."""

    ACK = "ack"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    NOTE = "note"
    SILENCE = "silence"


class InboxState(StrEnum):
    """An inbox row's life: pending until the applier decides, then applied or refused."""

    PENDING = "pending"
    APPLIED = "applied"
    REFUSED = "refused"


class ReplyState(StrEnum):
    """A refused Slack action's ephemeral answer (`reply_state`; NULL: none owed)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


# The Slack request headers kept with a row: enough to verify the signature again and to audit.
SLACK_HEADERS = ("x-slack-request-timestamp", "x-slack-signature", "x-slack-retry-num", "x-slack-retry-reason",
                 "user-agent")
API_HEADERS = ("user-agent",)
MAX_SILENCE = timedelta(days=30)
MAX_TEXT = 4000  # a note's characters
MAX_BY = 255


@dataclass(frozen=True)
class InboxRequest:
    """One request as the inbox will store it."""

    received_at: datetime
    door: Door
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    remote_addr: str | None = None
    content_type: str | None = None
    incident_id: int | None = None
    token_id: int | None = None
    token_name: str | None = None

    def row(self) -> dict:
        return {"received_at": self.received_at, "door": self.door, "remote_addr": clip(self.remote_addr, 64,
                ellipsis=False), "content_type": clip(self.content_type, 255, ellipsis=False),
                "headers": dict(self.headers), "body": self.body, "incident_id": self.incident_id,
                "token_id": self.token_id, "token_name": self.token_name, "state": InboxState.PENDING,
                "reply_attempts": 0}


def kept_headers(door: Door, headers: Mapping[str, str]) -> dict[str, str]:
    """The headers stored with a request of `door` (`headers` has lowercase names)."""
    names = SLACK_HEADERS if door is Door.SLACK else API_HEADERS
    return {name: headers[name] for name in names if name in headers}


def insert_requests(conn: Connection, requests: Sequence[InboxRequest]) -> list[int]:
    """Appends the requests in the caller's transaction; returns their ids in order."""
    return insert_rows(conn, action_inbox, [r.row() for r in requests], returning="id")


class BadRequest(ValueError):
    """A REST door body that is not a well-formed action request; the message says why."""


@dataclass(frozen=True)
class ApiAction:
    """A REST door body, checked: `kind`, and what it needs (`text` for a note, `duration` for a
    silence); `by` is whom the caller acts for, if it says."""

    kind: ActionKind
    by: str | None = None
    text: str | None = None
    duration: str | None = None


def check_api_body(body: bytes) -> ApiAction:
    """`{"action": "ack|resolve|reopen|note|silence", "by": …, "text": …, "duration": …}` →
    ApiAction. Raises BadRequest naming the problem. Pure: the receiver answers 400 with it, and
    the applier reads the stored body with the same function."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest('body must be a JSON object like {"action": "ack"}')
    unknown = sorted(set(doc) - {"action", "by", "text", "duration"})
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)} (fields: action, by, text, duration)")
    kinds = ", ".join(ActionKind)
    action = doc.get("action")
    if action is None:
        raise BadRequest(f'missing "action" (one of {kinds})')
    if action not in set(ActionKind):
        raise BadRequest(f'unknown action {str(action)[:40]!r} (one of {kinds})')
    kind = ActionKind(action)
    by, text, duration = (_text_field(doc, name) for name in ("by", "text", "duration"))
    if by is not None and len(by) > MAX_BY:
        raise BadRequest(f'"by" is longer than {MAX_BY} characters')
    if text is not None and len(text) > MAX_TEXT:
        raise BadRequest(f'"text" is longer than {MAX_TEXT} characters')
    if kind is ActionKind.NOTE and not text:
        raise BadRequest('a note needs "text"')
    if kind is ActionKind.SILENCE:
        if not duration:
            raise BadRequest('a silence needs "duration" (e.g. "4h")')
        try:
            length = parse_duration(duration)
        except ValueError as exc:
            raise BadRequest(f'"duration": {exc}') from None
        if not timedelta(0) < length <= MAX_SILENCE:
            raise BadRequest('"duration" must be more than 0 and at most 30d')
    elif duration is not None:
        raise BadRequest(f'"duration" is for a silence, not {kind}')
    return ApiAction(kind, by, text, duration)


def _text_field(doc: dict, name: str) -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f'"{name}" must be a string')
    return value.strip() or None


def incident_exists(conn: Connection, incident_id: int) -> bool:
    """Whether an incident has this id (the REST door's 404; it decides nothing else)."""
    return bool(conn.scalar(select(exists().where(incidents.c.id == incident_id))))


def action_status(conn: Connection, action_id: int) -> dict[str, Any] | None:
    """What became of inbox row `action_id`: id, door, incident_id (REST), state, reason,
    received_at, applied_at; None when there is no such row."""
    c = action_inbox.c
    row = conn.execute(select(c.id, c.door, c.incident_id, c.state, c.reason, c.received_at, c.applied_at)
                       .where(c.id == action_id)).first()
    return None if row is None else dict(row._mapping)


def actions_waiting(engine: Engine) -> bool:
    """Whether the applier has anything to do: a pending row, or a reply still owed. Lets a batch
    with none skip loading the applier and its Slack client. Raises DatabaseUnavailable."""
    c = action_inbox.c
    with database_errors(engine), engine.connect() as conn:
        return bool(conn.scalar(select(or_(exists().where(c.state == InboxState.PENDING),
                                           exists().where(c.reply_state == ReplyState.PENDING)))))
