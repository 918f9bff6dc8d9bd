"""The Slack Web API fake and the signed-click client behave as Slack documents."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from tests.support.slack_web_fake import TAMPERS, TOKEN, FakeSlackWeb, Limit, ManualClock, SlackInteractions, sign

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def text(n: int, kind: str = "mrkdwn") -> dict:
    return {"type": kind, "text": "x" * n}


def button(action_id: str = "ack", label: str = "Ack", value: str = "1", **extra) -> dict:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": label}, "value": value,
            **extra}


def option(value: str, label: str = "opt") -> dict:
    return {"text": {"type": "plain_text", "text": label}, "value": value}


# -- the Web API fake ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server():
    clock = ManualClock(1000.0)
    with FakeSlackWeb(clock=clock, outside={"C0OPS"}) as fake:
        yield fake, clock


@pytest.fixture
def fake(server):
    fake, _ = server
    fake.reset()
    fake.edit_window = None
    return fake


@pytest.fixture
def clock(server):
    return server[1]


def call(fake, method, headers=AUTH, **args):
    response = requests.post(fake.api_url + method, json=args, headers=headers, timeout=5)
    return response.status_code, response.json(), response.headers


def post(fake, channel="C0ALERTS", **args):
    status, body, _ = call(fake, "chat.postMessage", channel=channel, **args)
    assert (status, body["ok"]) == (200, True), body
    return body["ts"]


def test_post_message_answers_like_slack_and_keeps_the_message(fake):
    blocks = [{"type": "section", "block_id": "s1", "text": text(5)}]
    status, body, _ = call(fake, "chat.postMessage", channel="C0ALERTS", text="fallback", blocks=blocks)
    assert status == 200
    assert (body["ok"], body["channel"], body["ts"]) == (True, "C0ALERTS", "1700000000.000100")
    assert body["message"]["text"] == "fallback" and body["message"]["blocks"] == blocks
    assert body["message"]["bot_id"] and body["message"]["ts"] == body["ts"]
    stored = fake.messages[("C0ALERTS", body["ts"])]
    assert (stored.text, stored.blocks, stored.thread_ts, stored.update_count) == ("fallback", blocks, None, 0)
    assert [c.method for c in fake.calls] == ["chat.postMessage"] and fake.calls[0].status == 200


def test_ts_increase_strictly_across_channels(fake):
    stamps = [post(fake, channel, text=str(i)) for i, channel in enumerate(["C0ALERTS", "C0ALERTS", "#alerts"])]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    assert [float(s) for s in stamps] == sorted(float(s) for s in stamps)


def test_thread_replies_and_broadcast(fake):
    parent = post(fake, text="digest")
    first = post(fake, text="update 1", thread_ts=parent)
    second = post(fake, text="update 2", thread_ts=parent, reply_broadcast=True)
    replies = fake.thread("C0ALERTS", parent)
    assert [(m.ts, m.text, m.reply_broadcast) for m in replies] == [(first, "update 1", False),
                                                                     (second, "update 2", True)]
    assert fake.notes == []


def test_reply_to_a_reply_lands_on_the_parent_and_is_noted(fake):
    parent = post(fake, text="digest")
    reply = post(fake, text="r1", thread_ts=parent)
    post(fake, text="r2", thread_ts=reply)
    assert [m.text for m in fake.thread("C0ALERTS", parent)] == ["r1", "r2"]
    assert fake.notes == [("chat.postMessage", f"thread_ts {reply} is a reply; use its parent")]


def test_update_replaces_text_and_blocks_and_keeps_history(fake):
    ts = post(fake, text="firing", blocks=[{"type": "section", "block_id": "v1", "text": text(3)}])
    new_blocks = [{"type": "section", "block_id": "v2", "text": text(4)}]
    status, body, _ = call(fake, "chat.update", channel="C0ALERTS", ts=ts, text="acked", blocks=new_blocks)
    assert (status, body["ok"], body["ts"], body["text"]) == (200, True, ts, "acked")
    call(fake, "chat.update", channel="C0ALERTS", ts=ts, text="resolved")          # blocks omitted: kept
    message = fake.messages[("C0ALERTS", ts)]
    assert (message.text, message.blocks, message.update_count) == ("resolved", new_blocks, 2)
    assert [v["text"] for v in message.versions] == ["firing", "acked", "resolved"]
    call(fake, "chat.update", channel="C0ALERTS", ts=ts, blocks=[])                  # [] removes them
    assert fake.messages[("C0ALERTS", ts)].blocks == []


def test_permalinks_for_a_message_and_a_reply(fake):
    parent = post(fake, text="digest")
    reply = post(fake, text="r", thread_ts=parent)
    _, body, _ = call(fake, "chat.getPermalink", channel="C0ALERTS", message_ts=parent)
    assert body == {"ok": True, "channel": "C0ALERTS",
                    "permalink": f"https://incidentctl-test.slack.com/archives/C0ALERTS/p{parent.replace('.', '')}",
                    "warning": "missing_charset", "response_metadata": {"warnings": ["missing_charset"]}}
    _, body, _ = call(fake, "chat.getPermalink", channel="C0ALERTS", message_ts=reply)
    assert body["permalink"].endswith(f"/p{reply.replace('.', '')}?thread_ts={parent}&cid=C0ALERTS")


def test_get_with_query_arguments(fake):
    ts = post(fake, text="digest")
    response = requests.get(fake.api_url + "chat.getPermalink", params={"channel": "C0ALERTS", "message_ts": ts},
                            headers=AUTH, timeout=5)
    assert response.json()["permalink"].endswith(ts.replace(".", ""))


def test_form_encoded_call_with_token_field_and_json_blocks(fake):
    blocks = [{"type": "actions", "elements": [button()]}]
    response = requests.post(fake.api_url + "chat.postMessage", timeout=5, data={
        "token": TOKEN, "channel": "C0ALERTS", "text": "hi", "blocks": json.dumps(blocks)})
    body = response.json()
    assert body["ok"] and "warning" not in body           # form bodies need no charset
    assert fake.messages[("C0ALERTS", body["ts"])].blocks == blocks


def test_json_with_charset_has_no_warning(fake):
    response = requests.post(fake.api_url + "chat.postMessage", timeout=5,
                             data=json.dumps({"channel": "C0ALERTS", "text": "hi"}),
                             headers={**AUTH, "Content-Type": "application/json; charset=utf-8"})
    assert response.json()["ok"] and "warning" not in response.json()


def test_usergroup_members_as_slack_answers_them(fake):
    fake.usergroups["S0ONCALL"] = ["U060R4BJ4", "W123A4BC5"]

    def members(group):  # a form-encoded method: Slack takes no JSON body for it
        return requests.post(fake.api_url + "usergroups.users.list", data={"usergroup": group}, headers=AUTH,
                             timeout=5).json()

    assert members("S0ONCALL") == {"ok": True, "users": ["U060R4BJ4", "W123A4BC5"]}
    assert members("S0NOPE") == {"ok": False, "error": "no_such_subteam"}
    fake.scopes.discard("usergroups:read")  # installed from an older manifest
    assert members("S0ONCALL") == {"ok": False, "error": "missing_scope", "needed": "usergroups:read",
                                   "provided": "chat:write"}


@pytest.mark.parametrize("method, args, headers, error", [
    ("chat.postMessage", {"channel": "C0ALERTS", "text": "x"}, {}, "not_authed"),
    ("chat.postMessage", {"channel": "C0ALERTS", "text": "x", "token": TOKEN}, {}, "not_authed"),  # JSON: header only
    ("chat.postMessage", {"channel": "C0ALERTS", "text": "x"}, {"Authorization": "Bearer xoxb-wrong"}, "invalid_auth"),
    ("chat.postMessage", {"channel": "C0NOPE", "text": "x"}, AUTH, "channel_not_found"),
    ("chat.postMessage", {"text": "x"}, AUTH, "channel_not_found"),
    ("chat.postMessage", {"channel": "C0OPS", "text": "x"}, AUTH, "not_in_channel"),
    ("chat.postMessage", {"channel": "C0ALERTS"}, AUTH, "no_text"),
    ("chat.postMessage", {"channel": "C0ALERTS", "text": "", "blocks": []}, AUTH, "no_text"),
    ("chat.postMessage", {"channel": "C0ALERTS", "text": "x" * 40001}, AUTH, "msg_too_long"),
    ("chat.postMessage", {"channel": "C0ALERTS", "text": "x",
                          "blocks": [{"type": "header", "text": text(151, "plain_text")}]}, AUTH, "invalid_blocks"),
    ("chat.postMessage", {"channel": "C0ALERTS", "text": "x", "blocks": {"type": "divider"}}, AUTH,
     "invalid_blocks_format"),
    ("chat.update", {"channel": "C0ALERTS", "ts": "1.000001", "text": "x"}, AUTH, "message_not_found"),
    ("chat.update", {"channel": "C0NOPE", "ts": "1.000001", "text": "x"}, AUTH, "channel_not_found"),
    ("chat.getPermalink", {"channel": "C0ALERTS", "message_ts": "1.000001"}, AUTH, "message_not_found"),
    ("chat.delete", {"channel": "C0ALERTS", "ts": "1.000001"}, AUTH, "unknown_method"),
])
def test_error_shapes(fake, method, args, headers, error):
    status, body, _ = call(fake, method, headers=headers, **args)
    assert status == 200 and body["ok"] is False and body["error"] == error


def test_token_revoked(fake):
    fake.revoke(TOKEN)
    assert call(fake, "chat.postMessage", channel="C0ALERTS", text="x")[1]["error"] == "token_revoked"


@pytest.mark.parametrize("case, error", [
    ("someone else's message", "cant_update_message"),
    ("edit window passed", "edit_window_closed"),
    ("no content", "no_text"),
    ("too long", "msg_too_long"),
    ("archived channel", "is_inactive"),
])
def test_update_errors(fake, clock, case, error):
    someone_elses = case == "someone else's message"
    ts = fake.seed_message("C0ALERTS", "hello from a human") if someone_elses else post(fake, text="x")
    args = {"channel": "C0ALERTS", "ts": ts, "text": "y"}
    if case == "edit window passed":
        fake.edit_window = 60
        clock.advance(61)
    if case == "no content":
        del args["text"]
    if case == "too long":
        args["text"] = "y" * 40001
    if case == "archived channel":
        fake.archive("C0ALERTS")
    assert call(fake, "chat.update", **args)[1]["error"] == error
    assert fake.messages[("C0ALERTS", ts)].update_count == 0


def test_rejections_keep_the_reasons(fake):
    blocks = [{"type": "header", "text": text(151, "plain_text")}, {"type": "divider"}] + [{"type": "divider"}] * 49
    call(fake, "chat.postMessage", channel="C0ALERTS", text="x", blocks=blocks)
    [rejection] = fake.rejected
    assert (rejection["method"], rejection["error"]) == ("chat.postMessage", "invalid_blocks")
    assert rejection["reasons"] == ["blocks: 51 blocks > 50", "blocks[0].text.text: length 151 not in 1..150"]
    assert fake.messages == {}


def test_notes_for_long_text_and_missing_fallback(fake):
    post(fake, text="x" * 4001)
    post(fake, blocks=[{"type": "divider"}])
    assert [note for _, note in fake.notes] == [
        "text is 4001 chars; Slack advises at most 4000",
        "blocks without a top-level text fallback for notifications",
    ]


def test_injected_failures_count_down_and_match_channel(fake):
    fake.fail("chat.update", "message_not_found", channel="C0ALERTS", times=1)
    fake.fail("chat.postMessage", "internal_error", channel="C0OTHER", times=None)
    ts = post(fake, text="x")
    assert call(fake, "chat.update", channel="C0ALERTS", ts=ts, text="y")[1]["error"] == "message_not_found"
    assert call(fake, "chat.update", channel="C0ALERTS", ts=ts, text="y")[1]["ok"] is True


def test_injected_5xx_and_any_method(fake):
    fake.fail("*", "service_unavailable", status=503, times=2)
    unavailable = (503, {"ok": False, "error": "service_unavailable"})
    assert call(fake, "chat.postMessage", channel="C0ALERTS", text="x")[:2] == unavailable
    assert call(fake, "chat.getPermalink", channel="C0ALERTS", message_ts="1")[0] == 503
    assert call(fake, "chat.postMessage", channel="C0ALERTS", text="x")[0] == 200


# -- rate limits -----------------------------------------------------------------------------

def test_post_rate_per_channel_with_retry_after(fake, clock):
    for i in range(4):                      # the default burst
        post(fake, text=str(i))
    status, body, headers = call(fake, "chat.postMessage", channel="C0ALERTS", text="too many")
    assert (status, body) == (429, {"ok": False, "error": "ratelimited"})
    assert headers["Retry-After"] == "1"
    assert len(fake.throttled) == 1 and fake.violations == []
    clock.advance(1.0)                      # honour Retry-After
    post(fake, text="after waiting")
    assert fake.honoured == 1 and fake.violations == []


def test_retrying_before_retry_after_is_a_violation():
    clock = ManualClock()
    with FakeSlackWeb(clock=clock, limits={"chat.postMessage": Limit(rate=0.5, burst=1, per_channel=True)}) as fake:
        post(fake, text="one")
        status, _, headers = call(fake, "chat.postMessage", channel="C0ALERTS", text="two")
        assert (status, headers["Retry-After"]) == (429, "2")
        clock.advance(1.0)
        status, _, headers = call(fake, "chat.postMessage", channel="C0ALERTS", text="too soon")
        assert (status, headers["Retry-After"]) == (429, "1")
        assert len(fake.violations) == 1 and fake.violations[0]["bucket"] == ("chat.postMessage", "C0ALERTS")
        clock.advance(1.0)
        post(fake, text="now")
        assert (len(fake.throttled), len(fake.violations), fake.honoured) == (2, 1, 1)


def test_post_limit_is_per_channel():
    with FakeSlackWeb(clock=ManualClock(), channels={"C1": "one", "C2": "two"}) as fake:
        for _ in range(4):
            post(fake, "C1", text="x")
        assert call(fake, "chat.postMessage", channel="C1", text="x")[0] == 429
        post(fake, "C2", text="another channel has its own bucket")


def test_update_limit_is_workspace_wide_tier_3(fake, clock):
    ts = post(fake, text="x")
    for i in range(10):                     # default burst
        assert call(fake, "chat.update", channel="C0ALERTS", ts=ts, text=str(i))[0] == 200
    status, _, headers = call(fake, "chat.update", channel="C0ALERTS", ts=ts, text="eleventh")
    assert (status, headers["Retry-After"]) == (429, "2")     # 50/min: a token every 1.2 s
    clock.advance(2)
    assert call(fake, "chat.update", channel="C0ALERTS", ts=ts, text="later")[0] == 200


def test_injected_ratelimit_blocks_the_bucket(fake, clock):
    fake.fail("chat.update", "ratelimited", retry_after=30)
    ts = post(fake, text="x")
    status, body, headers = call(fake, "chat.update", channel="C0ALERTS", ts=ts, text="y")
    assert (status, body["error"], headers["Retry-After"]) == (429, "ratelimited", "30")
    assert call(fake, "chat.update", channel="C0ALERTS", ts=ts, text="y")[0] == 429
    clock.advance(30)
    assert call(fake, "chat.update", channel="C0ALERTS", ts=ts, text="y")[0] == 200
    assert (len(fake.violations), fake.honoured) == (1, 1)


def test_time_scale_makes_real_waits_short():
    # A simulated second lasts 20 ms; one post per 10 simulated seconds leaves room for HTTP latency.
    with FakeSlackWeb(time_scale=0.02, limits={"chat.postMessage": Limit(0.1, 1, per_channel=True)}) as fake:
        post(fake, text="one")
        status, _, headers = call(fake, "chat.postMessage", channel="C0ALERTS", text="two")
        assert status == 429 and 1 <= int(headers["Retry-After"]) <= 10
        time.sleep(int(headers["Retry-After"]) * 0.02 + 0.02)     # a client sleeping scaled seconds
        post(fake, text="three")
        assert (fake.honoured, fake.violations) == (1, [])


# -- chat.postEphemeral and response_url -----------------------------------------------------

def test_post_ephemeral_is_not_a_channel_message(fake):
    status, body, _ = call(fake, "chat.postEphemeral", channel="C0ALERTS", user="U0ALICE", text="only you")
    assert status == 200 and body["ok"] and body["message_ts"]
    assert fake.ephemeral_posts[0]["text"] == "only you" and fake.messages == {}
    updated = call(fake, "chat.update", channel="C0ALERTS", ts=body["message_ts"], text="x")
    assert updated[1]["error"] == "message_not_found"


def respond(url, body):
    response = requests.post(url, json=body, timeout=5)
    return response.status_code, response.text


def test_response_url_records_ephemeral_replies(fake):
    url = fake.response_url()
    assert respond(url, {"response_type": "ephemeral", "text": "Acked by you"}) == (200, "ok")
    assert fake.ephemeral[0]["body"] == {"response_type": "ephemeral", "text": "Acked by you"}
    assert fake.messages == {}


def test_response_url_replace_delete_and_in_channel(fake):
    ts = post(fake, text="firing")
    url = fake.response_url("C0ALERTS", ts)
    respond(url, {"replace_original": "true", "text": "acked by alice"})
    message = fake.messages[("C0ALERTS", ts)]
    assert (message.text, message.update_count, message.versions[-1]["via"]) == ("acked by alice", 1, "response_url")
    respond(url, {"response_type": "in_channel", "replace_original": "false", "thread_ts": ts, "text": "alice acked"})
    assert [m.text for m in fake.thread("C0ALERTS", ts)] == ["alice acked"]
    respond(url, {"delete_original": "true"})
    assert fake.messages[("C0ALERTS", ts)].deleted


def test_response_url_allows_five_uses_in_thirty_minutes(fake, clock):
    url = fake.response_url()
    assert [respond(url, {"text": str(i)})[0] for i in range(6)] == [200] * 5 + [404]
    assert respond(url, {"text": "x"}) == (404, "used_url")
    late = fake.response_url()
    clock.advance(1801)
    assert respond(late, {"text": "x"}) == (404, "expired_url")
    assert respond(url.rsplit("/", 1)[0] + "/unknown", {"text": "x"})[0] == 404


def test_response_url_checks_blocks(fake):
    url = fake.response_url()
    assert respond(url, {"text": "x", "blocks": [{"type": "header", "text": text(1)}]}) == (400, "invalid_blocks")
    assert fake.rejected[0]["method"] == "response_url"


# -- signing and the interaction client ------------------------------------------------------

def test_sign_matches_slacks_documented_example():
    # docs.slack.dev/authentication/verifying-requests-from-slack (quoted in slack_sdk's test)
    body = ("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert sign("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body) == expected
    assert sign("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, body.encode()) == expected


@given(st.text(min_size=1), st.integers(0, 2**40), st.binary())
def test_sign_is_hmac_sha256_of_the_basestring(secret, timestamp, body):
    mac = hmac.new(secret.encode(), digestmod="sha256")
    for part in (b"v0", b":", str(timestamp).encode(), b":", body):
        mac.update(part)
    assert sign(secret, timestamp, body) == "v0=" + mac.hexdigest()


def slack_verifies(secret: str, headers: dict, body: bytes, now: float) -> bool:
    """Slack's documented check, written apart from the module under test."""
    ts, signature = headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
    if ts is None or signature is None or not ts.isdigit() or abs(now - int(ts)) > 300:
        return False
    expected = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


@pytest.fixture(scope="module")
def app_url():
    """A stand-in for the app's interactivity endpoint: records each request as it arrived."""
    received: list[tuple[str, dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/slack/interactions", received
    server.shutdown()
    server.server_close()


NOW = 1_760_000_000
ACTIONS = [{"type": "section", "block_id": "incident-7", "text": text(10), "accessory":
            {"type": "overflow", "action_id": "silence", "options": [option("1h", "1 hour"), option("1d", "1 day")]}},
           {"type": "actions", "block_id": "buttons-7",
            "elements": [button("ack", "Ack", "7"), button("resolve", "Resolve", "7")]}]


def test_click_posts_a_signed_block_actions_form(fake, app_url):
    url, received = app_url
    received.clear()
    ts = post(fake, text="incident 7", blocks=ACTIONS)
    clicks = SlackInteractions("s3cret", url, clock=lambda: NOW)
    assert clicks.click("ack", **fake.click_context("C0ALERTS", ts)).status_code == 200
    [(path, headers, body)] = received
    assert path == "/slack/interactions" and headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["X-Slack-Request-Timestamp"] == str(NOW)
    assert slack_verifies("s3cret", headers, body, NOW)
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["type"] == "block_actions" and payload["api_app_id"] and payload["token"] and payload["trigger_id"]
    assert payload["container"] == {"type": "message", "message_ts": ts, "channel_id": "C0ALERTS",
                                    "is_ephemeral": False}
    assert payload["channel"] == {"id": "C0ALERTS", "name": "alerts"}
    assert payload["user"]["id"] and payload["team"]["id"]
    assert payload["message"]["ts"] == ts and payload["message"]["blocks"] == ACTIONS
    [action] = payload["actions"]
    assert action == {"action_id": "ack", "block_id": "buttons-7", "type": "button", "action_ts": f"{NOW:.6f}",
                      "text": {"type": "plain_text", "text": "Ack"}, "value": "7"}
    assert respond(payload["response_url"], {"replace_original": "true", "text": "acked"}) == (200, "ok")
    assert fake.messages[("C0ALERTS", ts)].text == "acked"


def test_overflow_click_carries_the_selected_option(fake):
    ts = post(fake, text="incident 7", blocks=ACTIONS)
    clicks = SlackInteractions("s3cret", clock=lambda: NOW)
    action = clicks.payload("silence", "1d", **fake.click_context("C0ALERTS", ts))["actions"][0]
    assert (action["type"], action["block_id"], action["selected_option"]) == (
        "overflow", "incident-7", option("1d", "1 day"))
    with pytest.raises(ValueError):
        clicks.payload("silence", "1y", **fake.click_context("C0ALERTS", ts))
    with pytest.raises(ValueError):
        clicks.payload("escalate", "7", **fake.click_context("C0ALERTS", ts))


@pytest.mark.parametrize("tamper", TAMPERS)
def test_every_tampered_request_fails_slacks_check(tamper):
    clicks = SlackInteractions("s3cret", clock=lambda: NOW)
    honest = clicks.raw("ack", "7")
    assert slack_verifies("s3cret", honest.headers, honest.body, NOW)
    request = clicks.raw("ack", "7", tamper=tamper)
    assert not slack_verifies("s3cret", request.headers, request.body, NOW)


def test_altered_body_changes_the_user_after_signing():
    request = SlackInteractions("s3cret", clock=lambda: NOW).raw("ack", "7", tamper="altered_body")
    assert json.loads(parse_qs(request.body.decode())["payload"][0])["user"]["id"] == "U0MALLORY"


def test_raw_replays_the_same_bytes(app_url):
    url, received = app_url
    received.clear()
    clicks = SlackInteractions("s3cret", url, clock=lambda: NOW)
    request = clicks.raw("ack", "7", timestamp=NOW - 10)
    clicks.send(request)
    clicks.send(request)
    assert received[0][2] == received[1][2] == request.body
    assert received[0][1]["X-Slack-Signature"] == received[1][1]["X-Slack-Signature"]


@given(st.text(), st.text(min_size=1))
def test_payload_survives_form_encoding(value, name):
    clicks = SlackInteractions("s3cret", clock=lambda: NOW, user={"id": "U1", "username": name, "name": name})
    request = clicks.raw("ack", value)
    assert json.loads(parse_qs(request.body.decode())["payload"][0]) == request.payload
