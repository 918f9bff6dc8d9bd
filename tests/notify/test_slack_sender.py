"""The sender against a local fake of Slack's incoming webhook: answers classified, URL never shown."""

from __future__ import annotations

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError, ProtocolError

from incidentctl.notify.slack import OK, PERMANENT, RETRYABLE, UNKNOWN, classify, classify_exception, mask_url, send
from tests.support.servers import free_port
from tests.support.slack_fake import FakeSlack

SECRET_URL = "https://hooks.slack.com/services/T0/B0/SECRETSECRET"


@pytest.mark.parametrize("status, body, retry_after, outcome, error, wait", [
    (200, "ok", None, OK, None, None),                                   # success
    (400, "invalid_payload", None, PERMANENT, "invalid_payload", None),  # our bug: do not retry uncorrected
    (403, "action_prohibited", None, PERMANENT, "action_prohibited", None),  # admin restriction
    (404, "no_service", None, PERMANENT, "no_service", None),            # webhook removed
    (404, "channel_not_found", None, PERMANENT, "channel_not_found", None),
    (410, "channel_is_archived", None, PERMANENT, "channel_is_archived", None),
    (400, "no_service", None, PERMANENT, "no_service", None),            # body string decides, not status
    (500, "rollup_error", None, RETRYABLE, "rollup_error", None),        # "not your fault"
    (503, "", None, RETRYABLE, "HTTP 503", None),                         # any 5xx retries
    (429, "", "30", RETRYABLE, "rate_limited", 30.0),                     # Retry-After honoured
    (429, "", "soon", RETRYABLE, "rate_limited", None),                   # unreadable Retry-After ignored
    (418, "teapot", None, PERMANENT, "teapot", None),                     # other 4xx: permanent
    (302, "", None, RETRYABLE, "HTTP 302", None),                         # a redirect: not success
])
def test_classify(status, body, retry_after, outcome, error, wait):
    result = classify(status, body, retry_after)
    assert (result.outcome, result.error, result.retry_after) == (outcome, error, wait)


@pytest.mark.parametrize("url, masked", [
    ("https://hooks.slack.com/services/T000/B000/XXXXSECRET", "https://hooks.slack.com/…(53 chars)"),
    ("http://127.0.0.1:9/services/x", "http://127.0.0.1:9/…(29 chars)"),
    ("not a url", "…(9 chars)"),
    ("", ""),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


@pytest.fixture(scope="module")
def slack():
    with FakeSlack(slow_seconds=1.0) as fake:
        yield fake


@pytest.mark.parametrize("path, outcome, status, error", [
    ("ok", OK, 200, None),
    ("invalid_payload", PERMANENT, 400, "invalid_payload"),
    ("no_service", PERMANENT, 404, "no_service"),
    ("channel_is_archived", PERMANENT, 410, "channel_is_archived"),
    ("rate_limited", RETRYABLE, 429, "rate_limited"),
    ("rollup_error", RETRYABLE, 500, "rollup_error"),
])
def test_send_against_fake_slack(slack, path, outcome, status, error):
    with requests.Session() as session:
        result = send(session, slack.url(path), {"text": "hello"}, timeout=5)
    assert (result.outcome, result.status, result.error) == (outcome, status, error)
    assert slack.bodies(path)[-1] == {"text": "hello"}


def _refused() -> requests.ConnectionError:
    return requests.ConnectionError(MaxRetryError(None, SECRET_URL, NewConnectionError(None, f"refused {SECRET_URL}")))


@pytest.mark.parametrize("exc, outcome, error", [
    (requests.ConnectTimeout(SECRET_URL), RETRYABLE, "connect timeout after 10s"),  # no connection: never sent
    (_refused(), RETRYABLE, "cannot connect to https://hooks.slack.com/"),  # connection refused
    (requests.ConnectionError(MaxRetryError(None, SECRET_URL, NameResolutionError("x", None, OSError()))),
     RETRYABLE, "cannot connect"),  # the name did not resolve
    (requests.exceptions.SSLError(SECRET_URL), RETRYABLE, "SSLError: cannot connect"),  # TLS handshake failed
    (requests.ReadTimeout(SECRET_URL), UNKNOWN, "timeout after 10s waiting for Slack's answer"),  # sent, no answer
    (requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError())),
     UNKNOWN, "ConnectionError talking to https://hooks.slack.com/"),  # reset after sending
    (requests.exceptions.ChunkedEncodingError(SECRET_URL), UNKNOWN, "after sending"),  # answer cut off
    (requests.ConnectionError(SECRET_URL), UNKNOWN, "outcome unknown"),  # no cause known: assume it left
])
def test_classify_exception(exc, outcome, error):
    result = classify_exception(exc, SECRET_URL, 10)
    assert (result.outcome, result.status) == (outcome, None)
    assert error in result.error and "SECRET" not in result.error


def test_answer_after_the_timeout_is_an_unknown_outcome(slack):
    """Slack got the message and answers ok, but later than the client waits."""
    with requests.Session() as session:
        result = send(session, slack.url("slow"), {"text": "late"}, timeout=0.2)
    assert result.outcome == UNKNOWN and result.status is None and "timeout" in result.error
    assert slack.bodies("slow")[-1] == {"text": "late"}  # it did arrive


def test_connection_dropped_after_sending_is_an_unknown_outcome(slack):
    with requests.Session() as session:
        result = send(session, slack.url("hangup"), {"text": "cut"}, timeout=5)
    assert result.outcome == UNKNOWN and "after sending" in result.error
    assert slack.bodies("hangup")[-1] == {"text": "cut"}


def test_connection_refused_is_retryable_and_hides_the_url():
    url = f"http://127.0.0.1:{free_port()}/services/T0/B0/SECRETSECRET"  # nothing listens there
    with requests.Session() as session:
        result = send(session, url, {"text": "x"}, timeout=2)
    assert result.outcome == RETRYABLE and "cannot connect" in result.error and "SECRETSECRET" not in result.error
