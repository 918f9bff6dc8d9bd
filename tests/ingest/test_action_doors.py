"""The action inbox's two doors on the receiver, in-process, on SQLite and MariaDB: Slack's
signed clicks (401 and nothing stored unless the v0 signature holds; stored byte for byte and
answered 200 when it does; a replay stored once) and the REST door (tokens, 4xx, 202, status)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from incidentctl.db.engine import make_engine
from incidentctl.db.schema import action_inbox
from incidentctl.ingest.receiver.app import Receiver
from incidentctl.ingest.receiver.auth import AuthFailed, check_slack_signature
from incidentctl.ingest.tokens import add_token, revoke_token
from tests.support import T0
from tests.support.asgi import call
from tests.support.factories import add_incident, count_rows
from tests.support.inbox import clicking_receiver, inbox
from tests.support.slack_interactions import TAMPERS, SlackInteractions, sign

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def receiver(engine):
    with clicking_receiver(engine, SECRET) as r:
        yield r


@pytest.fixture
def slack():
    return SlackInteractions(SECRET, clock=lambda: T0.timestamp())


def post(receiver, request):
    return call(receiver, "POST", "/slack/actions", request.body, request.headers)


# Slack's own example (docs, and slack_sdk's test): the pure check reproduces its signature.
def test_slack_signature_matches_slacks_documented_example():
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
            b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
            b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
            b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    headers = {"x-slack-request-timestamp": "1531420618",
               "x-slack-signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"}
    assert check_slack_signature(SECRET, headers, body, 1531420618 + 299).key
    with pytest.raises(AuthFailed, match="five minutes"):
        check_slack_signature(SECRET, headers, body, 1531420618 + 301)


def test_a_signed_click_is_stored_byte_for_byte_and_answered_200_empty(receiver, engine, slack):
    request = slack.raw("ic1:ack:42", "ic1:ack:42")
    r = post(receiver, request)
    assert (r.status, r.body) == (200, b"")
    (row,) = inbox(engine)
    assert row["body"] == request.body
    assert row["door"] == "slack" and row["state"] == "pending" and row["received_at"] == T0
    assert row["headers"]["x-slack-signature"] == request.headers["X-Slack-Signature"]
    assert row["headers"]["x-slack-request-timestamp"] == request.headers["X-Slack-Request-Timestamp"]
    assert SECRET not in json.dumps(row["headers"])
    # The stored row verifies again, as an auditor would check it.
    assert check_slack_signature(SECRET, row["headers"], row["body"], T0.timestamp())


@pytest.mark.parametrize("tamper", TAMPERS)
def test_a_request_whose_signature_does_not_hold_is_401_and_nothing_is_stored(receiver, engine, slack, tamper):
    r = post(receiver, slack.raw("ic1:ack:42", "ic1:ack:42", tamper=tamper))
    assert r.status == 401, r.body
    assert "unauthorized" in r.json()["error"]
    assert SECRET not in r.body.decode()
    assert count_rows(engine, action_inbox) == 0


def test_a_replayed_request_is_answered_200_and_stored_once(receiver, engine, slack):
    request = slack.raw("ic1:resolve:7", "ic1:resolve:7")
    assert [post(receiver, request).status for _ in range(3)] == [200, 200, 200]
    assert count_rows(engine, action_inbox) == 1


def test_no_signing_secret_no_slack_door(engine, slack):
    r = Receiver(engine, max_body_bytes=1024, write_timeout=5.0, clock=lambda: T0)
    r.start()
    try:
        answer = post(r, slack.raw("ic1:ack:42", "ic1:ack:42"))
    finally:
        r.stop()
    assert answer.status == 404 and "SLACK_SIGNING_SECRET" in answer.json()["error"]
    assert count_rows(engine, action_inbox) == 0


def test_slack_door_takes_post_only(receiver):
    assert call(receiver, "GET", "/slack/actions").status == 405


# The REST door

@pytest.fixture
def token(engine):
    _, token = add_token(engine, "bob", created_by="admin", now=T0)
    return token


@pytest.fixture
def incident(engine):
    return add_incident(engine)


def api(receiver, path, body: bytes | dict | None = None, token: str | None = None, method: str = "POST"):
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    raw = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    return call(receiver, method, path, raw, headers)


def test_rest_action_is_stored_and_answered_202_with_its_id(receiver, engine, token, incident):
    r = api(receiver, f"/api/v1/incidents/{incident}/actions", {"action": "ack", "text": "on it"}, token)
    assert r.status == 202, r.body
    action_id = r.json()["action_id"]
    (row,) = inbox(engine)
    assert row["id"] == action_id and row["door"] == "api" and row["incident_id"] == incident
    assert json.loads(row["body"]) == {"action": "ack", "text": "on it"}
    assert "authorization" not in row["headers"]
    status = api(receiver, f"/api/v1/actions/{action_id}", token=token, method="GET")
    assert status.status == 200
    assert status.json()["state"] == "pending" and status.json()["incident_id"] == incident


# (case, body, status, words in the error)
REST_REFUSALS = [
    ("not json", b"{ack", 400, "not JSON"),
    ("not an object", b"[]", 400, "JSON object"),
    ("no action", {"by": "bob"}, 400, 'missing "action"'),
    ("unknown action", {"action": "escalate"}, 400, "unknown action 'escalate'"),
    ("unknown field", {"action": "ack", "who": "x"}, 400, "unknown field(s): who"),
    ("note without text", {"action": "note"}, 400, 'a note needs "text"'),
    ("silence without duration", {"action": "silence"}, 400, 'needs "duration"'),
    ("silence too long", {"action": "silence", "duration": "31d"}, 400, "at most 30d"),
    ("bad duration", {"action": "silence", "duration": "soon"}, 400, '"duration"'),
    ("duration on an ack", {"action": "ack", "duration": "1h"}, 400, "is for a silence"),
    ("text not a string", {"action": "note", "text": 5}, 400, "must be a string"),
]


@pytest.mark.parametrize("case, body, status, words", REST_REFUSALS, ids=[c[0] for c in REST_REFUSALS])
def test_rest_door_refuses_bad_bodies_with_a_clear_400(receiver, engine, token, incident, case, body, status,
                                                      words):
    r = api(receiver, f"/api/v1/incidents/{incident}/actions", body, token)
    assert r.status == status
    assert words in r.json()["error"]
    assert count_rows(engine, action_inbox) == 0


def test_rest_door_401_without_a_live_token_404_for_an_unknown_incident(receiver, engine, token, incident):
    path = f"/api/v1/incidents/{incident}/actions"
    assert api(receiver, path, {"action": "ack"}).status == 401
    assert api(receiver, path, {"action": "ack"}, "ict_not-a-token").status == 401
    unknown = api(receiver, f"/api/v1/incidents/{incident + 1000}/actions", {"action": "ack"}, token)
    assert unknown.status == 404 and "not found" in unknown.json()["error"]
    revoke_token(engine, "bob", now=T0)
    assert api(receiver, path, {"action": "ack"}, token).status == 401
    assert api(receiver, "/api/v1/actions/1", token=token, method="GET").status == 401
    assert count_rows(engine, action_inbox) == 0


def test_rest_status_of_a_refused_action_says_why(receiver, engine, token, incident):
    action_id = api(receiver, f"/api/v1/incidents/{incident}/actions", {"action": "reopen"}, token).json()["action_id"]
    with engine.begin() as conn:
        conn.execute(update(action_inbox).where(action_inbox.c.id == action_id)
                     .values(state="refused", reason="incident 1 is open, not resolved", applied_at=T0))
    answer = api(receiver, f"/api/v1/actions/{action_id}", token=token, method="GET").json()
    assert (answer["state"], answer["reason"]) == ("refused", "incident 1 is open, not resolved")
    assert api(receiver, f"/api/v1/actions/{action_id + 1}", token=token, method="GET").status == 404


def test_rest_paths_and_methods(receiver, token):
    assert api(receiver, "/api/v1/incidents/1/actions", token=token, method="GET").status == 405
    assert api(receiver, "/api/v1/nothing", token=token, method="GET").status == 404
    assert api(receiver, "/api/v1/incidents/x/actions", {"action": "ack"}, token).status == 404


def test_signature_helper_agrees_with_the_test_client():
    # The fake's `sign` and the receiver's check are written apart; they agree on a body.
    headers = {"x-slack-request-timestamp": "1700000000", "x-slack-signature": sign("s", 1700000000, b"payload=1")}
    assert check_slack_signature("s", headers, b"payload=1", 1700000000)


def test_rest_door_is_503_when_the_database_is_unreachable():
    # The token cannot be checked: a 503 that says so (and, for an action, that it was not stored).
    down = make_engine("mysql+pymysql://root@127.0.0.1:1/nothing", connect_timeout=1)
    with clicking_receiver(down, SECRET) as receiver:
        action = api(receiver, "/api/v1/incidents/1/actions", {"action": "ack"}, "ict_anything")
        status = api(receiver, "/api/v1/actions/1", token="ict_anything", method="GET")
    assert action.status == status.status == 503
    assert action.json()["error"].startswith("database unavailable: ")
    assert action.json()["error"].endswith("; not stored, retry")
    assert status.json()["error"].startswith("database unavailable: ")
    assert "not stored" not in status.json()["error"]


@pytest.mark.backends("mysql")
def test_a_rest_action_whose_commit_answer_was_lost_is_answered_by_what_the_server_did(
        receiver, engine, token, incident):
    from tests.support.lost_answers import lose_the_answer

    with lose_the_answer(engine, "COMMIT") as lost:
        stored = api(receiver, f"/api/v1/incidents/{incident}/actions", {"action": "ack"}, token)
    with lose_the_answer(engine, "ROLLBACK") as rolled_back:
        refused = api(receiver, f"/api/v1/incidents/{incident}/actions", {"action": "resolve"}, token)
    assert len(lost) == len(rolled_back) == 1
    assert (stored.status, refused.status) == (202, 503)
    assert [row["id"] for row in inbox(engine)] == [stored.json()["action_id"]]  # read back from action_inbox
