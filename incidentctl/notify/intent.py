"""What an inbox row asks for, read from its raw bytes: pure, no database, no clock, no network.

`read_intent(row)` turns a stored request into an Intent — the action, the incident, who (the
Slack user's name, or the API token's owner), through which door, and for Slack the
response_url to answer on and a dedupe key — or raises Unusable with the reason. `refusal(intent,
allow, members)` says why the allow-lists refuse it, or None; `members` (a Slack user group's
members, looked up by notify/usergroups.py) is the one thing it is given rather than reads.

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
from collections.abc import Callable, Mapping
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
    """Who may act; an empty set allows everyone through that door. Slack people are allowed by
    user id or by membership of a user group (`S…`)."""

    slack_channels: frozenset[str] = frozenset()
    slack_users: frozenset[str] = frozenset()
    tokens: frozenset[str] = frozenset()
    slack_groups: frozenset[str] = frozenset()

    @classmethod
    def configured(cls, settings: Settings) -> AllowList:
        people = frozenset(settings.slack_allowed_users)
        groups = frozenset(p for p in people if p.startswith(GROUP_PREFIX))
        return cls(frozenset(settings.slack_allowed_channels), people - groups,
                   frozenset(settings.api_allowed_tokens), groups)


GROUP_PREFIX = "S"  # Slack user-group ids (subteams); user ids start with U or W


class MembershipUnknown(Exception):
    """Who is in a Slack user group could not be found out; `reason` says why, for a person."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# A user group's members (raises MembershipUnknown): notify/usergroups.py asks Slack.
Members = Callable[[str], frozenset[str]]
_NOT_ALLOWED = "you are not allowed to act on incidents from Slack (INCIDENTCTL_SLACK_ALLOWED_USERS)"


def refusal(intent: Intent, allow: AllowList, members: Members | None = None) -> str | None:
    """Why the allow-lists refuse `intent`, or None. A Slack user not listed by id is looked
    for in the listed user groups with `members`, in id order; a group that cannot be looked up
    (no `members`, or it raises) refuses with why: never an allow by default."""
    if intent.via is Via.SLACK:
        if allow.slack_channels and intent.slack_channel not in allow.slack_channels:
            return "actions from this channel are not allowed (INCIDENTCTL_SLACK_ALLOWED_CHANNELS)"
        if (allow.slack_users or allow.slack_groups) and intent.slack_user not in allow.slack_users:
            return _by_groups(intent.slack_user, allow.slack_groups, members)
    if intent.via is Via.API and allow.tokens and intent.token not in allow.tokens:
        return f"token {intent.token!r} is not allowed to act (INCIDENTCTL_API_ALLOWED_TOKENS)"
    return None


def _by_groups(user: str | None, groups: frozenset[str], members: Members | None) -> str | None:
    unknown = None
    for group in sorted(groups):
        try:
            if members is None:
                raise MembershipUnknown("no Slack bot token to look it up with")
            if user is not None and user in members(group):
                return None
        except MembershipUnknown as exc:
            unknown = unknown or f"could not check Slack user group {group}: {exc.reason}"
    if unknown is not None:
        return f"{_NOT_ALLOWED}: {unknown}"
    return _NOT_ALLOWED


def _mapping(value: object) -> Mapping:
    return value if isinstance(value, Mapping) else {}
