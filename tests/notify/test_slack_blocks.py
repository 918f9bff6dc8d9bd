"""Block Kit for the Slack app: actions on digest lines, an incident's current state, thread
replies; every message checked against Slack's limits (tests/support/slack_blockkit.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from incidentctl.notify.digest import Change, World, build_digest, entries
from incidentctl.notify.slack_api import SlackApi
from incidentctl.notify.slack_blocks import (
    ACK,
    REOPEN,
    RESOLVE,
    SILENCE,
    IncidentAction,
    IncidentState,
    action_buttons,
    action_from_payload,
    actions_for,
    decode_action,
    incident_message,
    lasted,
    overflow_menu,
    refusal,
    slack_time,
    thread_reply,
    with_actions,
)
from tests.support.factories import T0
from tests.support.slack_blockkit import MAX_ACTION_ID, MAX_BUTTON_VALUE, MAX_OPTION_VALUE, problems
from tests.support.slack_interactions import SlackInteractions
from tests.support.slack_web_fake import TOKEN, FakeSlackWeb, ManualClock

NOW = T0 + timedelta(hours=1)
BIGGEST_ID = 2**63 - 1


def change(i: int = 1, kind: str = "opened", **kw) -> Change:
    base = dict(notification_id=i, incident_id=100 + i, change=kind, severity="critical", created_at=T0,
                title=f"HighCPU {i}", cluster="prod", namespace="web", service="api", opened_at=T0,
                alert_count=3, series_count=2, series_firing=1)
    base.update(kw)
    return Change(**base)


def status_of(kind: str) -> str:
    return {"acknowledged": "acknowledged", "resolved": "resolved"}.get(kind, "open")


def digest(changes, states=None) -> dict:
    message = build_digest(changes, World({"critical": len(changes)}), NOW)
    return with_actions(message, entries(changes), NOW, states)


def menus(message: dict) -> dict[int, list[str]]:
    """incident id → the values its line's overflow offers."""
    found = {}
    for block in message["blocks"]:
        accessory = block.get("accessory")
        if accessory:
            found[int(accessory["action_id"].split(":")[2])] = [o["value"] for o in accessory["options"]]
    return found


# -- the encoding --------------------------------------------------------------------------

@pytest.mark.parametrize("action, encoded", [
    (IncidentAction(ACK, 42), "ic1:ack:42"),
    (IncidentAction(RESOLVE, 7), "ic1:resolve:7"),
    (IncidentAction(REOPEN, 7), "ic1:reopen:7"),
    (IncidentAction(SILENCE, 42, "4h"), "ic1:silence:42:4h"),
    (IncidentAction(SILENCE, BIGGEST_ID, "24h"), f"ic1:silence:{BIGGEST_ID}:24h"),  # the longest: 36 chars
])
def test_encode_and_decode(action, encoded):
    assert action.encode() == encoded and decode_action(encoded) == action
    assert len(encoded) <= 36 <= MAX_OPTION_VALUE


@pytest.mark.parametrize("value", [
    None, 42, "", "ack:42",                   # not text, or not ours
    "ic2:ack:42",                             # another version
    "ic1:delete:42",                          # no such action
    "ic1:ack:0", "ic1:ack:-1", "ic1:ack:042", "ic1:ack:x",  # not a positive id
    f"ic1:ack:{10**19}",                      # longer than a 64-bit id
    "ic1:ack:42:4h",                          # only a silence has a duration
    "ic1:silence:42",                         # a silence needs one
    "ic1:silence:42:31d", "ic1:silence:42:0h", "ic1:silence:42:1w", "ic1:silence:42:1h30m",  # too long, odd forms
    "ic1:ack:42" + " " * 60,                  # padded
])
def test_what_is_not_an_action(value):
    assert decode_action(value) is None


@given(st.sampled_from([ACK, RESOLVE, REOPEN, SILENCE]), st.integers(1, BIGGEST_ID),
       st.sampled_from(["1h", "4h", "24h", "30m", "30d"]))
def test_every_action_survives_the_round_trip(kind, incident_id, duration):
    action = IncidentAction(kind, incident_id, duration if kind == SILENCE else None)
    assert decode_action(action.encode()) == action


@pytest.mark.parametrize("status, offered", [
    ("open", ["Acknowledge", "Resolve", "Silence 1 h", "Silence 4 h", "Silence 24 h"]),
    ("acknowledged", ["Resolve", "Silence 1 h", "Silence 4 h", "Silence 24 h"]),
    ("resolved", ["Reopen", "Silence 1 h", "Silence 4 h", "Silence 24 h"]),
])
def test_actions_for_each_status(status, offered):
    assert [a.label for a in actions_for(42, status)] == offered
    menu = overflow_menu(42, status)
    assert [o["text"]["text"] for o in menu["options"]] == offered
    assert problems([{"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "accessory": menu}]) == []


def test_the_biggest_id_fits_every_element():
    for status in ("open", "resolved"):
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"},
                   "accessory": overflow_menu(BIGGEST_ID, status)}, action_buttons(BIGGEST_ID, status)]
        assert problems(blocks) == []
        for element in [blocks[0]["accessory"], *blocks[1]["elements"]]:
            assert len(element["action_id"]) <= MAX_ACTION_ID
            assert len(element.get("value", "")) <= MAX_BUTTON_VALUE


# -- a click comes back as the action it offered ----------------------------------------------

@pytest.mark.parametrize("status, value", [
    ("open", "ic1:ack:101"),
    ("open", "ic1:silence:101:4h"),
    ("resolved", "ic1:reopen:101"),
])
def test_a_click_on_a_digest_line_reads_back(status, value):
    message = digest([change(1, "resolved" if status == "resolved" else "opened", status=status)])
    payload = SlackInteractions("secret").payload("ic1:menu:101", value, message={"ts": "1.2", **message})
    assert action_from_payload(payload["actions"][0]) == decode_action(value)


@pytest.mark.parametrize("action_id, value", [
    ("ic1:ack:101", "ic1:ack:101"),               # the Acknowledge button
    ("ic1:resolve:101", "ic1:resolve:101"),       # the Resolve button
])
def test_a_click_on_an_incident_message_button_reads_back(action_id, value):
    message = incident_message(change(1), IncidentState(101, "open"), NOW)
    payload = SlackInteractions("secret").payload(action_id, message={"ts": "1.2", **message})
    assert action_from_payload(payload["actions"][0]) == decode_action(value)


def test_the_silence_menu_of_an_incident_message_reads_back():
    message = incident_message(change(1), IncidentState(101, "open"), NOW)
    payload = SlackInteractions("secret").payload("ic1:silence-menu:101", "ic1:silence:101:1h",
                                                  message={"ts": "1.2", **message})
    assert action_from_payload(payload["actions"][0]) == IncidentAction(SILENCE, 101, "1h")


@pytest.mark.parametrize("action", [
    {"action_id": "other_app_button", "value": "ic1:ack:101"},          # not our action_id
    {"action_id": "ic1:menu:102", "selected_option": {"value": "ic1:ack:101"}},  # ids disagree
    {"action_id": "ic1:ack:101", "value": "ic1:ack:102"},               # ids disagree
    {"action_id": "ic1:menu:101", "selected_option": {"value": "nonsense"}},
    {"action_id": "ic1:menu:101"},                                       # no value at all
    {"action_id": 5, "value": "ic1:ack:5"},                              # wrong type
])
def test_a_foreign_or_inconsistent_action_is_not_ours(action):
    assert action_from_payload(action) is None


# -- digests with actions ----------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 45, 500])
def test_a_digest_with_actions_is_one_valid_message(n):
    changes = [change(i, ["opened", "reopened", "escalated", "resolved", "acknowledged"][i % 5],
                      status=status_of(["opened", "reopened", "escalated", "resolved", "acknowledged"][i % 5]),
                      title="T" * 400 + str(i), reason="r" * 300) for i in range(n)]
    plain = build_digest(changes, World({"critical": n}), NOW)
    message = digest(changes)
    assert problems(message["blocks"]) == [] and len(message["blocks"]) == len(plain["blocks"]) <= 50
    assert message["text"] == plain["text"]
    lines = [b for b in plain["blocks"] if b["type"] == "section" and b["text"]["text"].startswith(":")]
    assert len(menus(message)) == len(lines) > 0   # every incident line shown has its menu
    if n == 500:
        assert "…and" in json.dumps(message, ensure_ascii=False)


def test_slack_takes_a_500_change_digest_with_actions_and_its_clicks_read_back():
    changes = [change(i, "opened") if i < 20 else change(i, "resolved", status="resolved") for i in range(500)]
    message = digest(changes)
    clock = ManualClock()
    with FakeSlackWeb(clock=clock) as fake, requests.Session() as session:
        api = SlackApi(session, TOKEN, base_url=fake.api_url, clock=clock, sleep=clock.advance)
        channel, ts = api.post_message("C0ALERTS", message["text"], message["blocks"])
        assert fake.rejected == [] and fake.notes == []
        context = fake.click_context(channel, ts)
    offered = menus(message)
    clicks = [(i, values[0]) for kind in ("ack", "reopen") for i, values in offered.items()
              if values[0].startswith(f"ic1:{kind}:")]
    assert {value.split(":")[1] for _, value in clicks} == {"ack", "reopen"}
    for incident, value in clicks:
        payload = SlackInteractions("secret").payload(f"ic1:menu:{incident}", value, **context)
        assert action_from_payload(payload["actions"][0]) == decode_action(value)


def test_each_line_offers_what_its_incident_allows():
    changes = [change(1, "opened"), change(2, "acknowledged", status="acknowledged"),
               change(3, "resolved", status="resolved")]
    assert menus(digest(changes)) == {
        101: ["ic1:ack:101", "ic1:resolve:101", "ic1:silence:101:1h", "ic1:silence:101:4h", "ic1:silence:101:24h"],
        102: ["ic1:resolve:102", "ic1:silence:102:1h", "ic1:silence:102:4h", "ic1:silence:102:24h"],
        103: ["ic1:reopen:103", "ic1:silence:103:1h", "ic1:silence:103:4h", "ic1:silence:103:24h"],
    }


def test_a_re_render_shows_where_each_incident_stands_now():
    changes = [change(1, "opened"), change(2, "opened"), change(3, "opened")]
    states = {101: IncidentState(101, "acknowledged", acknowledged_by="<@U0ALICE>", acknowledged_at=NOW),
              102: IncidentState(102, "resolved", resolved_by="bob & co", resolved_at=NOW, resolution="manual"),
              103: IncidentState(103, "open", silenced_until=NOW + timedelta(hours=4))}
    message = digest(changes, states)
    assert problems(message["blocks"]) == []
    lines = {int(b["accessory"]["action_id"].split(":")[2]): b["text"]["text"] for b in message["blocks"]
             if "accessory" in b}
    assert ":eyes: *Acknowledged* by <@U0ALICE> · <!date^" in lines[101]
    assert lines[102].startswith("~:red_circle:") and "~\n" in lines[102]            # struck through
    assert ":white_check_mark: *Resolved* by bob &amp; co" in lines[102]              # a name is escaped
    assert "silenced until <!date^" in lines[103] and "*Open*, not acknowledged" in lines[103]
    assert menus(message)[101][0] == "ic1:resolve:101" and menus(message)[102][0] == "ic1:reopen:102"


def test_an_auto_resolve_says_its_alerts_resolved():
    state = IncidentState(101, "resolved", resolved_at=NOW, resolution="auto")
    text = digest([change(1)], {101: state})["blocks"]
    assert any("*Resolved* (its alerts resolved)" in b.get("text", {}).get("text", "") for b in text)


def test_a_longest_line_with_its_state_still_fits():
    huge = change(1, "resolved", status="resolved", title="T" * 5000, reason="r" * 5000, cluster="c" * 5000,
                  links={k: "https://grafana.example/" + "x" * 1400 for k in ("rule", "dashboard", "panel", "silence")})
    state = IncidentState(101, "resolved", resolved_by="b" * 500, resolved_at=NOW, resolution="manual",
                          silenced_until=NOW + timedelta(days=1))
    assert problems(digest([huge], {101: state})["blocks"]) == []


@given(st.text(max_size=300))
def test_no_alert_or_person_text_becomes_a_slack_token(hostile):
    state = IncidentState(101, "acknowledged", acknowledged_by=hostile, acknowledged_at=NOW)
    message = digest([change(1, title=hostile, reason=hostile, cluster=hostile)], {101: state})
    assert problems(message["blocks"]) == []
    text = " ".join(b.get("text", {}).get("text", "") for b in message["blocks"])
    assert "<!channel" not in text.replace("<!date^", "") and "<!here" not in text
    if not hostile.startswith("<@"):  # a well-formed mention is passed on as one, on purpose
        assert "<" not in thread_reply("acknowledged", 101, hostile, by=hostile, detail=hostile)["text"]


# -- one incident's message, thread replies, refusals ---------------------------------------

@pytest.mark.parametrize("state, words, buttons", [
    (IncidentState(101, "open"), "open, not acknowledged", ["Acknowledge", "Resolve", "Silence"]),
    (IncidentState(101, "acknowledged", acknowledged_by="alice", acknowledged_at=NOW), "acknowledged by alice",
     ["Resolve", "Silence"]),
    (IncidentState(101, "resolved", resolved_by="bob", resolved_at=NOW, resolution="manual"), "resolved by bob",
     ["Reopen", "Silence"]),
])
def test_incident_message(state, words, buttons):
    message = incident_message(change(1, status=state.status), state, NOW)
    assert problems(message["blocks"]) == []
    assert message["text"].endswith(words) and "HighCPU 1 (#101)" in message["text"]
    actions = next(b for b in message["blocks"] if b["type"] == "actions")
    labels = [e["text"]["text"] if e["type"] == "button" else "Silence" for e in actions["elements"]]
    assert labels == buttons
    if state.status == "resolved":
        assert message["blocks"][0]["text"]["text"].startswith("~")


@pytest.mark.parametrize("kwargs, text", [
    (dict(kind="acknowledged", by="alice"), ":eyes: *Acknowledged* by alice · #42 HighCPU &lt;prod&gt;"),
    (dict(kind="acknowledged", by="<@U0ALICE>"), ":eyes: *Acknowledged* by <@U0ALICE> · #42"),  # a mention
    (dict(kind="resolved", by="bob", detail="lasted 1h5m",
          permalink="https://x.slack.com/archives/C0ALERTS/p1700000000000100"),
     ":white_check_mark: *Resolved* by bob · #42 HighCPU &lt;prod&gt; · lasted 1h5m · "
     "<https://x.slack.com/archives/C0ALERTS/p1700000000000100|announced here>"),
    (dict(kind="resolved", detail="auto-resolved: all 2 series resolved"), ":white_check_mark: *Resolved* · #42"),
    (dict(kind="reopened", by="carol"), ":arrows_counterclockwise: *Reopened* by carol"),
    (dict(kind="silenced", by="dan", detail="4 h", until=NOW), ":no_bell: *Silenced* by dan · #42"),
    (dict(kind="note", by="eve", detail="<!channel> restart it"), "&lt;!channel&gt; restart it"),
    (dict(kind="resolved", permalink="javascript:alert(1)"), "*Resolved* · #42 HighCPU &lt;prod&gt;"),  # no link
])
def test_thread_reply(kwargs, text):
    kind = kwargs.pop("kind")
    reply = thread_reply(kind, 42, "HighCPU <prod>", **kwargs)["text"]
    assert text in reply
    if "until" in kwargs:
        assert "until <!date^" in reply
    if "javascript" in str(kwargs.get("permalink")):
        assert "javascript" not in reply


def test_times_show_in_each_readers_zone_with_utc_as_fallback():
    moment = datetime(2026, 3, 1, 13, 5, tzinfo=timezone(timedelta(hours=1)))  # 12:05 UTC
    stamp = int(moment.timestamp())
    assert slack_time(moment) == f"<!date^{stamp}^{{date_short_pretty}} {{time}}|2026-03-01 12:05 UTC>"


def test_lasted():
    assert lasted(T0, T0 + timedelta(minutes=65)) == "lasted 1h5m" and lasted(None, T0) is None


def test_refusal_is_ephemeral_and_escaped():
    assert refusal("#42 is already resolved <by bob>") == {
        "response_type": "ephemeral", "replace_original": False,
        "text": ":warning: #42 is already resolved &lt;by bob&gt;"}
