"""The sender against a local fake of Slack's incoming webhook: answers classified, URL never shown."""

from __future__ import annotations

import pytest
import requests

from incidentctl.slack import OK, PERMANENT, RETRYABLE, classify, mask_url, send
from tests.slack_fake import FakeSlack


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


def test_slow_slack_times_out_and_is_retryable(slack):
    with requests.Session() as session:
        result = send(session, slack.url("slow"), {"text": "x"}, timeout=0.2)
    assert result.outcome == RETRYABLE and result.status is None and "timeout" in result.error


def test_connection_error_is_retryable_and_hides_the_url():
    url = "http://127.0.0.1:1/services/T0/B0/SECRETSECRET"
    with requests.Session() as session:
        result = send(session, url, {"text": "x"}, timeout=2)
    assert result.outcome == RETRYABLE and "SECRETSECRET" not in result.error
