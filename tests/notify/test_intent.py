"""What an inbox row means, read from its raw bytes (pure): named cases, one comment each."""

from __future__ import annotations

import json
from typing import NamedTuple
from urllib.parse import urlencode

import pytest

from incidentctl.incidents.model import Via
from incidentctl.ingest.inbox import ActionKind
from incidentctl.notify.intent import AllowList, InboxRow, Unusable, read_intent, refusal, response_url_of
from tests.support import T0
from tests.support.slack_interactions import SlackInteractions

CLICKS = SlackInteractions("secret", clock=lambda: T0.timestamp())
URL = "https://hooks.slack.com/actions/T0FAKETEAM/1/abc"


def slack_row(action_id: str, value: str | None = None, **fields) -> InboxRow:
    fields.setdefault("response_url", URL)
    return InboxRow(1, "slack", T0, CLICKS.raw(action_id, value, **fields).body)


def api_row(body: dict | bytes, token: str | None = "bob", incident_id: int | None = 42) -> InboxRow:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return InboxRow(2, "api", T0, raw, incident_id, token)


class Case(NamedTuple):
    name: str
    row: InboxRow
    expected: tuple | None  # (kind, incident, by, via, duration, text); None: Unusable
    words: str = ""  # in the reason when Unusable


CASES = [
    # A button's value is the action.
    Case("slack ack button", slack_row("ic1:ack:42", "ic1:ack:42"),
         (ActionKind.ACK, 42, "alice", Via.SLACK, None, None)),
    # An overflow's selected option is the action; its action_id names the same incident.
    Case("slack silence from the overflow", slack_row("ic1:menu:7", message={"type": "message", "ts": "1.2", "blocks": [
        {"type": "section", "block_id": "b", "text": {"type": "mrkdwn", "text": "x"},
         "accessory": {"type": "overflow", "action_id": "ic1:menu:7", "options": [
             {"text": {"type": "plain_text", "text": "Silence 4 h"}, "value": "ic1:silence:7:4h"}]}}]},
        value="ic1:silence:7:4h"), (ActionKind.SILENCE, 7, "alice", Via.SLACK, "4h", None)),
    # An action_id naming another incident than the value: altered, refused.
    Case("slack action_id and value disagree", slack_row("ic1:ack:43", "ic1:ack:42"), None,
         "not an incidentctl action"),
    # Another app's button in the same workspace.
    Case("slack foreign button", slack_row("approve", "yes"), None, "not an incidentctl action"),
    # A silence longer than 30 days cannot be encoded.
    Case("slack silence too long", slack_row("ic1:silence:42:31d", "ic1:silence:42:31d"), None, "not an incidentctl"),
    # Not a form post with a payload field.
    Case("slack garbage", InboxRow(3, "slack", T0, b"\xff\x00"), None, "no JSON payload"),
    # A view_submission, not a click.
    Case("slack other interaction", InboxRow(4, "slack", T0, urlencode({"payload": json.dumps(
        {"type": "view_submission", "user": {"id": "U1"}})}).encode()), None, "not a button click"),
    # The REST door: the token's owner acts.
    Case("api resolve", api_row({"action": "resolve", "text": "fixed"}),
         (ActionKind.RESOLVE, 42, "bob", Via.API, None, "fixed")),
    # `by` naming the owner changes nothing.
    Case("api by the owner", api_row({"action": "ack", "by": "bob"}), (ActionKind.ACK, 42, "bob", Via.API, None, None)),
    # A bot acting for someone: both are recorded.
    Case("api by someone else", api_row({"action": "note", "by": "carol", "text": "hi"}, token="ci-bot"),
         (ActionKind.NOTE, 42, "carol via ci-bot", Via.API, None, "hi")),
    Case("api silence", api_row({"action": "silence", "duration": "1h"}),
         (ActionKind.SILENCE, 42, "bob", Via.API, "1h", None)),
    # A body the receiver would not have stored (an old row, or written by hand).
    Case("api bad body", api_row(b"{nope"), None, "not JSON"),
    Case("api no token", api_row({"action": "ack"}, token=None), None, "without a token"),
    Case("unknown door", InboxRow(5, "pager", T0, b""), None, "unknown door"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_read_intent(case):
    if case.expected is None:
        with pytest.raises(Unusable, match=case.words):
            read_intent(case.row)
        return
    intent = read_intent(case.row)
    assert (intent.kind, intent.incident_id, intent.by, intent.via, intent.duration, intent.text) == case.expected
    assert intent.at == T0


def test_a_slack_refusal_carries_the_response_url_when_the_payload_has_one():
    with pytest.raises(Unusable) as caught:
        read_intent(slack_row("approve", "yes"))
    assert caught.value.response_url == URL
    assert response_url_of(slack_row("approve", "yes").body) == URL
    assert response_url_of(b"nothing") is None


def test_dedupe_key_same_click_same_key_another_click_another():
    click = CLICKS.payload("ic1:ack:42", "ic1:ack:42", response_url=URL)
    again = urlencode({"payload": json.dumps(click)}).encode()  # sent again: same action_ts
    first = read_intent(InboxRow(1, "slack", T0, again))
    assert read_intent(InboxRow(2, "slack", T0, again)).dedupe_key == first.dedupe_key
    later = SlackInteractions("secret", clock=lambda: T0.timestamp() + 1)
    other = read_intent(InboxRow(3, "slack", T0, later.raw("ic1:ack:42", "ic1:ack:42").body))
    assert other.dedupe_key != first.dedupe_key
    assert read_intent(api_row({"action": "ack"})).dedupe_key is None  # REST: every request counts


def test_slack_user_and_channel_come_from_the_payload():
    intent = read_intent(slack_row("ic1:ack:42", "ic1:ack:42", channel={"id": "C0OPS", "name": "ops"},
                                   user={"id": "U0BOB", "username": "bob", "name": "bob"}))
    assert (intent.by, intent.slack_user, intent.slack_channel) == ("bob", "U0BOB", "C0OPS")


class AllowCase(NamedTuple):
    name: str
    allow: AllowList
    row: InboxRow
    words: str | None  # in the refusal; None: allowed


ALLOW = [
    # Empty lists allow everyone.
    AllowCase("open", AllowList(), slack_row("ic1:ack:1", "ic1:ack:1"), None),
    AllowCase("channel listed", AllowList(slack_channels=frozenset({"C0ALERTS"})), slack_row("ic1:ack:1", "ic1:ack:1"),
              None),
    AllowCase("channel not listed", AllowList(slack_channels=frozenset({"C0OPS"})), slack_row("ic1:ack:1", "ic1:ack:1"),
              "this channel"),
    AllowCase("user not listed", AllowList(slack_users=frozenset({"U0BOB"})), slack_row("ic1:ack:1", "ic1:ack:1"),
              "you are not allowed"),
    AllowCase("user listed", AllowList(slack_users=frozenset({"U0ALICE"})), slack_row("ic1:ack:1", "ic1:ack:1"), None),
    # The Slack lists do not restrict the REST door, and the other way round.
    AllowCase("slack lists vs api", AllowList(slack_users=frozenset({"U0BOB"})), api_row({"action": "ack"}), None),
    AllowCase("token not listed", AllowList(tokens=frozenset({"carol"})), api_row({"action": "ack"}), "token 'bob'"),
    AllowCase("token listed", AllowList(tokens=frozenset({"bob"})), api_row({"action": "ack"}), None),
]


@pytest.mark.parametrize("case", ALLOW, ids=[c.name for c in ALLOW])
def test_allow_lists(case):
    why = refusal(read_intent(case.row), case.allow)
    assert (why is None) if case.words is None else (case.words in why)
