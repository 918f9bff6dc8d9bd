"""The Slack Web API client against the local fake (tests/support/slack_web_fake.py): answers
classified where they arrive, 429s honoured, the token never shown."""

from __future__ import annotations

import logging
import socket
import threading

import pytest
import requests

from incidentctl.notify.pacing import Pacer, Rate
from incidentctl.notify.slack_api import (
    FALLBACK,
    OK,
    PERMANENT,
    RETRYABLE,
    UNKNOWN,
    MessageGone,
    OutcomeUnknown,
    Permanent,
    RateLimited,
    Retryable,
    SlackApi,
    classify,
    classify_response_url,
)
from tests.support.servers import free_port
from tests.support.slack_fake import FakeSlack
from tests.support.slack_web_fake import TOKEN, FakeSlackWeb, ManualClock


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


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


def client(fake, clock, session, token=TOKEN, **kw) -> SlackApi:
    """A client on the fake's simulated clock: its sleeps move that clock, never the test's."""
    return SlackApi(session, token, base_url=fake.api_url, clock=clock, sleep=clock.advance, timeout=5, **kw)


# -- classification (pure) -------------------------------------------------------------------

@pytest.mark.parametrize("status, body, retry_after, outcome, error, scope", [
    (200, '{"ok": true, "ts": "1.2"}', None, OK, None, None),                      # success
    (429, '{"ok": false, "error": "ratelimited"}', "7", RETRYABLE, "ratelimited", None),  # rate limit
    (429, "", None, RETRYABLE, "ratelimited", None),                                # 429 without a body
    (200, '{"ok": false, "error": "ratelimited"}', None, RETRYABLE, "ratelimited", None),  # said in the body
    (503, "<html>busy</html>", None, RETRYABLE, "HTTP 503", None),                   # a proxy's 5xx
    (500, '{"ok": false, "error": "service_unavailable"}', None, RETRYABLE, "service_unavailable", None),
    (200, '{"ok": false, "error": "service_unavailable"}', None, RETRYABLE, "service_unavailable", None),
    (200, '{"ok": false, "error": "internal_error"}', None, UNKNOWN, "internal_error", None),  # may have acted
    (200, '{"ok": false, "error": "fatal_error"}', None, UNKNOWN, "fatal_error", None),
    (200, "<html>portal</html>", None, UNKNOWN, "answer is not a Slack API response", None),  # not Slack
    (200, '{"ok": false, "error": "message_not_found"}', None, FALLBACK, "message_not_found", None),
    (200, '{"ok": false, "error": "cant_update_message"}', None, FALLBACK, "cant_update_message", None),
    (200, '{"ok": false, "error": "edit_window_closed"}', None, FALLBACK, "edit_window_closed", None),
    (200, '{"ok": false, "error": "channel_not_found"}', None, PERMANENT, "channel_not_found", "channel"),
    (200, '{"ok": false, "error": "not_in_channel"}', None, PERMANENT, "not_in_channel", "channel"),
    (200, '{"ok": false, "error": "is_archived"}', None, PERMANENT, "is_archived", "channel"),
    (200, '{"ok": false, "error": "invalid_auth"}', None, PERMANENT, "invalid_auth", "workspace"),
    (200, '{"ok": false, "error": "token_revoked"}', None, PERMANENT, "token_revoked", "workspace"),
    (200, '{"ok": false, "error": "not_authed"}', None, PERMANENT, "not_authed", "workspace"),
    (200, '{"ok": false, "error": "account_inactive"}', None, PERMANENT, "account_inactive", "workspace"),
    (200, '{"ok": false, "error": "missing_scope"}', None, PERMANENT, "missing_scope", "workspace"),
    (200, '{"ok": false, "error": "invalid_blocks"}', None, PERMANENT, "invalid_blocks", "request"),
    (200, '{"ok": false, "error": "msg_too_long"}', None, PERMANENT, "msg_too_long", "request"),
    (200, '{"ok": false, "error": "brand_new_error"}', None, PERMANENT, "brand_new_error", "request"),  # unknown
    (200, '{"ok": false}', None, PERMANENT, "unknown_error", "request"),             # no error string
    (404, "Not Found", None, PERMANENT, "HTTP 404", "request"),                      # a wrong base URL
])
def test_classify(status, body, retry_after, outcome, error, scope):
    answer = classify(status, body, retry_after)
    assert (answer.outcome, answer.error, answer.scope) == (outcome, error, scope)
    if error == "ratelimited":
        assert answer.retry_after == (float(retry_after) if retry_after else 1.0)


@pytest.mark.parametrize("status, body, outcome", [
    (200, "ok", OK),                       # Slack's plain-text success
    (404, "used_url", PERMANENT),          # the 5 uses are spent
    (404, "expired_url", PERMANENT),       # after 30 minutes
    (400, "invalid_blocks", PERMANENT),    # the message is wrong
    (500, "", RETRYABLE),                  # Slack's trouble
    (429, "", RETRYABLE),                  # too fast
])
def test_classify_response_url(status, body, outcome):
    assert classify_response_url(status, body).outcome == outcome


# -- the client against the fake -------------------------------------------------------------

def test_post_update_permalink_and_ephemeral(fake, clock, session):
    api = client(fake, clock, session)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*HighCPU* · #42"}}]
    channel, ts = api.post_message("C0ALERTS", "HighCPU", blocks)
    assert channel == "C0ALERTS" and fake.messages[(channel, ts)].blocks == blocks
    reply_channel, reply_ts = api.post_message("#alerts", "acknowledged", thread_ts=ts)
    assert reply_channel == "C0ALERTS" and [m.ts for m in fake.thread(channel, ts)] == [reply_ts]
    api.update_message(channel, ts, "HighCPU (acknowledged)", [])
    assert (fake.messages[(channel, ts)].text, fake.messages[(channel, ts)].blocks) == ("HighCPU (acknowledged)", [])
    assert api.get_permalink(channel, ts).endswith(f"/archives/C0ALERTS/p{ts.replace('.', '')}")
    assert api.post_ephemeral(channel, "U0ALICE", "not for everyone")
    assert fake.ephemeral_posts[-1]["user"] == "U0ALICE"
    assert fake.rejected == [] and fake.notes == [] and fake.throttled == []
    # JSON with a charset (no missing_charset warning), a token in the header only
    assert all("warning" not in c.answer for c in fake.calls)


@pytest.mark.parametrize("method, error, raised, scope", [
    ("chat.postMessage", "channel_not_found", Permanent, "channel"),
    ("chat.postMessage", "not_in_channel", Permanent, "channel"),
    ("chat.postMessage", "invalid_auth", Permanent, "workspace"),
    ("chat.postMessage", "token_revoked", Permanent, "workspace"),
    ("chat.postMessage", "account_inactive", Permanent, "workspace"),
    ("chat.postMessage", "invalid_blocks", Permanent, "request"),
    ("chat.postMessage", "msg_too_long", Permanent, "request"),
    ("chat.postMessage", "service_unavailable", Retryable, None),
    ("chat.postMessage", "internal_error", OutcomeUnknown, None),
    ("chat.update", "message_not_found", MessageGone, None),
    ("chat.update", "cant_update_message", MessageGone, None),
    ("chat.update", "edit_window_closed", MessageGone, None),
    ("chat.update", "not_in_channel", Permanent, "channel"),
])
def test_each_error_is_raised_as_its_class(fake, clock, session, method, error, raised, scope):
    api = client(fake, clock, session)
    _, ts = api.post_message("C0ALERTS", "digest")
    fake.fail(method, error)
    with pytest.raises(raised) as info:
        if method == "chat.update":
            api.update_message("C0ALERTS", ts, "new")
        else:
            api.post_message("C0ALERTS", "again")
    assert info.value.error == error and f"{method}: {error}" in str(info.value)
    if scope:
        assert info.value.scope == scope


@pytest.mark.parametrize("case, raised, error", [
    ("revoked", Permanent, "token_revoked"),            # the app was uninstalled
    ("wrong token", Permanent, "invalid_auth"),         # a token of another workspace
    ("outside", Permanent, "not_in_channel"),           # the bot was not invited
    ("unknown channel", Permanent, "channel_not_found"),
    ("archived", Permanent, "is_archived"),
    ("too long", Permanent, "msg_too_long"),
    ("bad blocks", Permanent, "invalid_blocks"),
    ("server error", Retryable, "internal"),            # a 5xx: Slack did not act on it
])
def test_the_fakes_real_answers_are_classified(fake, clock, session, case, raised, error):
    channel, text, blocks = "C0ALERTS", "x", None
    token = "xoxb-another-workspace" if case == "wrong token" else TOKEN
    if case == "revoked":
        fake.revoke(TOKEN)
    channel = {"outside": "C0OPS", "unknown channel": "C0NOPE"}.get(case, channel)
    if case == "archived":
        fake.archive("C0ALERTS")
    if case == "too long":
        text = "x" * 40_001
    if case == "bad blocks":
        blocks = [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]
    if case == "server error":
        fake.fail("chat.postMessage", "internal", status=500)
    with pytest.raises(raised) as info:
        client(fake, clock, session, token=token).post_message(channel, text, blocks)
    assert info.value.error == error


def test_update_of_someone_elses_or_an_old_message_falls_back(fake, clock, session):
    api = client(fake, clock, session)
    human = fake.seed_message("C0ALERTS", "a person wrote this")
    with pytest.raises(MessageGone, match="cant_update_message"):
        api.update_message("C0ALERTS", human, "x")
    _, ts = api.post_message("C0ALERTS", "digest")
    fake.edit_window = 60
    clock.advance(61)
    with pytest.raises(MessageGone, match="edit_window_closed"):
        api.update_message("C0ALERTS", ts, "x")
    with pytest.raises(MessageGone, match="message_not_found"):
        api.update_message("C0ALERTS", "1.000001", "x")


def test_a_429_is_honoured_then_the_call_goes_through(fake, clock, session):
    api = client(fake, clock, session)
    _, ts = api.post_message("C0ALERTS", "digest")
    fake.fail("chat.update", "ratelimited", retry_after=3)
    start = clock()
    api.update_message("C0ALERTS", ts, "current")
    assert fake.messages[("C0ALERTS", ts)].text == "current"
    assert len(fake.throttled) == 1 and fake.violations == [] and fake.honoured == 1
    assert clock() - start >= 3  # waited the Retry-After, on the simulated clock


def test_a_429_blocks_the_method_for_every_channel(fake, clock, session):
    # Slack does not say whether a postMessage limit was the channel's or the workspace's.
    api = client(fake, clock, session, max_wait=10)
    fake.fail("chat.postMessage", "ratelimited", channel="C0ALERTS", retry_after=30)
    with pytest.raises(RateLimited):
        api.post_message("C0ALERTS", "first")
    calls = len(fake.calls)
    with pytest.raises(RateLimited):
        api.post_message("C0OPS", "elsewhere")
    assert len(fake.calls) == calls  # not sent
    # other methods are not blocked
    with pytest.raises(MessageGone):
        api.update_message("C0ALERTS", "1.000001", "x")


def test_a_longer_retry_after_than_the_client_waits_is_raised_unsent(fake, clock, session):
    api = client(fake, clock, session, max_wait=10)
    fake.fail("chat.postMessage", "ratelimited", retry_after=60)
    with pytest.raises(RateLimited) as info:
        api.post_message("C0ALERTS", "x")
    assert info.value.retry_after == pytest.approx(60) and info.value.outcome == RETRYABLE
    calls = len(fake.calls)
    with pytest.raises(RateLimited):  # still blocked: raised at once, nothing sent
        api.post_message("C0ALERTS", "y")
    assert len(fake.calls) == calls and fake.violations == []
    clock.advance(60)
    api.post_message("C0ALERTS", "z")
    assert fake.violations == [] and fake.honoured == 1


def test_ratelimited_again_and_again_gives_up_after_max_attempts(fake, clock, session):
    api = client(fake, clock, session, max_attempts=3)
    fake.fail("chat.postMessage", "ratelimited", times=None, retry_after=1)
    with pytest.raises(RateLimited):
        api.post_message("C0ALERTS", "x")
    assert len(fake.throttled) == 3 and fake.violations == []


def test_posting_a_burst_to_one_channel_is_paced_below_slacks_limit(fake, clock, session):
    api = client(fake, clock, session)
    start = clock()
    for i in range(30):
        api.post_message("C0ALERTS", f"reply {i}")
    assert fake.throttled == [] and fake.violations == []
    assert clock() - start >= 30 - 3 - 1  # one a second after a burst of three


def test_a_stricter_slack_than_our_pacing_is_honoured(fake, clock, session):
    """Slack may limit harder than it publishes: its 429s are waited out, never run into."""
    api = client(fake, clock, session, pacer=Pacer({"chat.postMessage": (Rate(5.0, 10, per_channel=True),)},
                                                   clock=clock))
    for i in range(40):
        api.post_message("C0ALERTS", f"m{i}")
    assert fake.throttled and fake.violations == []
    assert len([m for m in fake.messages.values() if m.channel == "C0ALERTS"]) == 40


# -- answers that do not come --------------------------------------------------------------

class Hangup:
    """Reads a request, then closes the connection without a word: Slack may have acted."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/api/"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)

    def close(self):
        self.sock.close()


def test_no_answer_after_sending_is_an_unknown_outcome(session):
    hangup = Hangup()
    try:
        api = SlackApi(session, TOKEN, base_url=hangup.url, timeout=5)
        with pytest.raises(OutcomeUnknown, match="outcome unknown"):
            api.post_message("C0ALERTS", "x")
    finally:
        hangup.close()


def test_no_connection_is_retryable(session):
    api = SlackApi(session, TOKEN, base_url=f"http://127.0.0.1:{free_port()}/api/", timeout=5)
    with pytest.raises(Retryable, match="cannot connect") as info:
        api.update_message("C0ALERTS", "1.2", "x")
    assert not isinstance(info.value, RateLimited)


# -- response_url ---------------------------------------------------------------------------

def test_respond_posts_to_the_response_url_without_the_token(fake, clock, session):
    api = client(fake, clock, session)
    _, ts = api.post_message("C0ALERTS", "digest")
    url = fake.response_url("C0ALERTS", ts)
    sent_headers = []
    session.hooks["response"].append(lambda r, *a, **k: sent_headers.append(dict(r.request.headers)))
    api.respond(url, {"text": "Already resolved by bob", "response_type": "ephemeral"})
    assert fake.ephemeral[-1]["body"]["text"] == "Already resolved by bob" and fake.ephemeral[-1]["status"] == 200
    assert "Authorization" not in sent_headers[-1]


def test_a_used_up_response_url_is_permanent_and_masked(fake, clock, session):
    fake.response_url_uses = 1
    try:
        api = client(fake, clock, session)
        url = fake.response_url()
        api.respond(url, {"text": "first"})
        with pytest.raises(Permanent, match="used_url") as info:
            api.respond(url, {"text": "second"})
        assert url.rsplit("/", 1)[1] not in str(info.value)
    finally:
        fake.response_url_uses = 5


@pytest.fixture(scope="module")
def webhook_fake():
    with FakeSlack(slow_seconds=1.0) as slack:
        yield slack


@pytest.mark.parametrize("path, raised", [
    ("hangup", OutcomeUnknown),       # read, then closed: it may have been shown
    ("slow", OutcomeUnknown),         # answered after the timeout
    ("rollup_error", Retryable),      # 500
])
def test_response_url_without_an_answer(webhook_fake, session, path, raised):
    api = SlackApi(session, TOKEN, timeout=0.5)
    with pytest.raises(raised) as info:
        api.respond(webhook_fake.url(path), {"text": "x"})
    assert "/services/" not in str(info.value)  # the URL is a credential: masked


# -- the token is a secret ------------------------------------------------------------------

def test_the_token_is_in_no_repr_error_or_log_line(fake, clock, session, caplog):
    caplog.set_level(logging.DEBUG)
    api = client(fake, clock, session)
    assert TOKEN not in repr(api) and "chars" in repr(api)
    messages = []
    for setup in (lambda: fake.fail("chat.postMessage", "ratelimited", retry_after=1),
                  lambda: fake.fail("chat.postMessage", "invalid_auth"),
                  lambda: fake.fail("chat.postMessage", "internal", status=502)):
        setup()
        try:
            api.post_message("C0ALERTS", "x")
        except Exception as exc:  # noqa: BLE001 - every kind is checked for the token
            messages += [str(exc), repr(exc)]
    dead = SlackApi(session, TOKEN, base_url=f"http://127.0.0.1:{free_port()}/api/", timeout=2)
    with pytest.raises(Retryable) as info:
        dead.post_message("C0ALERTS", "x")
    messages += [str(info.value), repr(info.value)]
    assert len(messages) == 6
    for text in messages + [r.getMessage() for r in caplog.records]:
        assert TOKEN not in text and TOKEN[5:] not in text


def test_no_token_no_client(session):
    with pytest.raises(ValueError, match="no Slack bot token"):
        SlackApi(session, "")
