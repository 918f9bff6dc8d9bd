"""What an inbox row asks for, read from its raw bytes: pure, no database, no clock, no network.

`read_intent(row)` turns a stored request into an Intent — the action, the incident, who (the
Slack user's name, or the API token's owner), through which door, and for Slack the
response_url to answer on and a dedupe key — or raises Unusable with the reason. `refusal(intent,
allow)` says why the allow-lists refuse it, or None.

Dedupe (Slack): the key is a sha256 of the team, the user, the action's `action_ts` and the
element's action_id and value. Slack stamps `action_ts` when the person clicks, so a request
sent again for the same click (a retry, or a replay re-signed later) has the same key and is
applied once; a second click is a new action (a second ack is then refused: already
acknowledged). An identical request replayed inside its signature's five minutes is already
kept out by the receiver (seen_signatures). REST requests have no key: each is its own action.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from incidentctl.config import Settings
from incidentctl.incidents.model import Via
from incidentctl.ingest.inbox import ActionKind, BadRequest, Door, check_api_body
from incidentctl.notify.slack_blocks import action_from_payload

MAX_ACTOR = 255


@dataclass(frozen=True)
class InboxRow:
    """What the applier reads of an action_inbox row (token_name: the REST door's token owner).
    `incident_id`: the REST path's; on a Slack row, set only by `replay`, the incident here that
    the click named in the database it was exported from (the body keeps the original id)."""

    id: int
    door: str
    received_at: datetime
    body: bytes
    incident_id: int | None = None
    token_name: str | None = None


@dataclass(frozen=True)
class Intent:
    """One action to apply: `kind` on `incident_id` by `by`, through `via`, at `at` (when it
    arrived: a rebuilt timeline is the same whenever the batch ran)."""

    kind: ActionKind
    incident_id: int
    by: str
    via: Via
    at: datetime
    text: str | None = None
    duration: str | None = None  # a silence's length, e.g. 4h
    dedupe_key: str | None = None
    response_url: str | None = None  # Slack: where to tell the person it was refused
    slack_user: str | None = None
    slack_channel: str | None = None
    token: str | None = None  # REST: the token's name


class Unusable(Exception):
    """The row asks for nothing that can be applied; `reason` says why, `response_url` is where
    the person can be told (Slack, when the payload got that far)."""

    def __init__(self, reason: str, response_url: str | None = None):
        super().__init__(reason)
        self.reason, self.response_url = reason, response_url


def read_intent(row: InboxRow) -> Intent:
    """The Intent of a stored request; raises Unusable."""
    if row.door == Door.SLACK:
        return _slack_intent(row)
    if row.door == Door.API:
        return _api_intent(row)
    raise Unusable(f"unknown door {row.door!r}")


def slack_payload(body: bytes) -> dict[str, Any]:
    """The JSON `payload` field of Slack's form post; raises Unusable."""
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        (raw,) = fields["payload"]
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise Unusable("not a Slack interaction (no JSON payload field)") from None
    if not isinstance(payload, dict):
        raise Unusable("not a Slack interaction (payload is not an object)")
    return payload


def response_url_of(body: bytes) -> str | None:
    """The response_url of a stored Slack request, or None."""
    try:
        url = slack_payload(body).get("response_url")
    except Unusable:
        return None
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def _slack_intent(row: InboxRow) -> Intent:
    payload = slack_payload(row.body)
    response_url = response_url_of(row.body)
    kind = payload.get("type")
    if kind != "block_actions":
        raise Unusable(f"a Slack {str(kind)[:40]!r} interaction, not a button click (block_actions)", response_url)
    items = payload.get("actions")
    actions = [a for a in items if isinstance(a, Mapping)] if isinstance(items, list) else []
    found = [(a, d) for a in actions if (d := action_from_payload(a)) is not None]
    if not found:
        raise Unusable("the click is not an incidentctl action (unknown or altered action value)", response_url)
    item, action = found[0]
    user = _mapping(payload.get("user"))
    user_id = str(user.get("id") or "")
    name = str(user.get("username") or user.get("name") or user_id or "")
    if not name:
        raise Unusable("the click names no Slack user", response_url)
    channel = str(_mapping(payload.get("channel")).get("id") or _mapping(payload.get("container")).get("channel_id")
                  or "") or None
    team = str(_mapping(payload.get("team")).get("id") or "")
    stamp = str(item.get("action_ts") or payload.get("trigger_id") or "")
    value = action.encode()
    key = hashlib.sha256(f"slack:{team}:{user_id}:{stamp}:{item.get('action_id')}:{value}".encode()).hexdigest()
    incident_id = row.incident_id if row.incident_id is not None else action.incident_id
    return Intent(ActionKind(action.kind), incident_id, name[:MAX_ACTOR], Via.SLACK, row.received_at,
                  duration=action.duration, dedupe_key=key if stamp else None, response_url=response_url,
                  slack_user=user_id or None, slack_channel=channel)


def _api_intent(row: InboxRow) -> Intent:
    if row.incident_id is None:
        raise Unusable("a REST action without an incident id")
    if not row.token_name:
        raise Unusable("a REST action without a token")
    try:
        asked = check_api_body(row.body)
    except BadRequest as exc:
        raise Unusable(str(exc)) from None
    owner = row.token_name
    # The token's owner is who acted; a caller acting for someone else (a bot) names them in `by`.
    by = owner if asked.by in (None, owner) else f"{asked.by} via {owner}"
    return Intent(asked.kind, row.incident_id, by[:MAX_ACTOR], Via.API, row.received_at, text=asked.text,
                  duration=asked.duration, token=owner)


@dataclass(frozen=True)
class AllowList:
    """Who may act; an empty set allows everyone through that door."""

    slack_channels: frozenset[str] = frozenset()
    slack_users: frozenset[str] = frozenset()
    tokens: frozenset[str] = frozenset()

    @classmethod
    def configured(cls, settings: Settings) -> AllowList:
        return cls(frozenset(settings.slack_allowed_channels), frozenset(settings.slack_allowed_users),
                   frozenset(settings.api_allowed_tokens))


def refusal(intent: Intent, allow: AllowList) -> str | None:
    """Why the allow-lists refuse `intent`, or None."""
    if intent.via is Via.SLACK:
        if allow.slack_channels and intent.slack_channel not in allow.slack_channels:
            return "actions from this channel are not allowed (INCIDENTCTL_SLACK_ALLOWED_CHANNELS)"
        if allow.slack_users and intent.slack_user not in allow.slack_users:
            return "you are not allowed to act on incidents from Slack (INCIDENTCTL_SLACK_ALLOWED_USERS)"
    if intent.via is Via.API and allow.tokens and intent.token not in allow.tokens:
        return f"token {intent.token!r} is not allowed to act (INCIDENTCTL_API_ALLOWED_TOKENS)"
    return None


def _mapping(value: object) -> Mapping:
    return value if isinstance(value, Mapping) else {}
