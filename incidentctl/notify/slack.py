"""The Slack sender: POST a message to an incoming webhook and classify the answer.

Slack answers 200 `ok` on success and an HTTP status plus a short plain-text error string
otherwise; its docs give statuses for only some strings, so the body string decides when it is
known, and the status otherwise. The webhook URL is a secret: it never appears in a result,
an error message or a log line (see `mask_url`).

A request that got no answer is one of two things. When no connection was made (refused, DNS,
connect timeout, TLS handshake) Slack never saw it: retryable. When the request went out and the
answer did not come back (read timeout, connection dropped) Slack may have posted the message:
`unknown`. Both are retried, so an unknown outcome that was in fact a success becomes a
duplicate message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

OK = "ok"
RETRYABLE = "retryable"
PERMANENT = "permanent"
UNKNOWN = "unknown"  # sent, no answer: Slack may have posted it; retried like RETRYABLE

# Raised before a byte of the request left: it cannot have reached Slack.
_NOT_SENT = (requests.ConnectTimeout, requests.exceptions.SSLError, requests.exceptions.ProxyError,
             requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
             requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader)

# Strings Slack documents for incoming webhooks that will not change by retrying.
PERMANENT_ERRORS = frozenset({
    "invalid_payload", "user_not_found", "action_prohibited", "channel_not_found", "channel_is_archived",
    "invalid_token", "no_active_hooks", "no_service", "no_service_id", "no_team", "team_disabled", "no_text",
    "posting_to_general_channel_denied", "too_many_attachments",
})
# Slack's own "not your fault" string.
RETRYABLE_ERRORS = frozenset({"rollup_error"})


@dataclass(frozen=True)
class SendResult:
    """How one POST went: `outcome` is ok | retryable | permanent | unknown."""

    outcome: str
    status: int | None  # HTTP status; None when no answer arrived
    error: str | None = None  # Slack's error string, or what went wrong on the way
    retry_after: float | None = None  # seconds, from a 429's Retry-After

    def as_dict(self) -> dict:
        return {"outcome": self.outcome, "status": self.status, "error": self.error, "retry_after": self.retry_after}


def mask_url(url: str) -> str:
    """`https://hooks.slack.com/…(77 chars)`: shows where, never the secret path."""
    if not url:
        return ""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return f"…({len(url)} chars)"
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}/…({len(url)} chars)"


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (Slack sends seconds); None when absent or not a number."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def classify(status: int, body: str, retry_after: str | None = None) -> SendResult:
    """Slack's answer → ok | retryable | permanent, keyed on the body string when Slack knows it."""
    error = body.strip()[:200] or None
    if status == 200:
        return SendResult(OK, status)
    if status == 429:
        return SendResult(RETRYABLE, status, error or "rate_limited", parse_retry_after(retry_after))
    if error in PERMANENT_ERRORS:
        return SendResult(PERMANENT, status, error)
    if error in RETRYABLE_ERRORS or status >= 500 or status == 408:
        return SendResult(RETRYABLE, status, error or f"HTTP {status}")
    if 400 <= status < 500:
        return SendResult(PERMANENT, status, error or f"HTTP {status}")
    # 1xx/3xx: a proxy or a wrong URL; nothing says it will change, but nothing says it won't.
    return SendResult(RETRYABLE, status, error or f"HTTP {status}")


def classify_exception(exc: requests.RequestException, url: str, timeout: float) -> SendResult:
    """A POST that raised → retryable when it cannot have reached Slack, else unknown.

    The exception's text names the URL; the error reports only its kind and the masked host.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return SendResult(RETRYABLE, None, f"connect timeout after {timeout:g}s to {mask_url(url)}")
    if isinstance(exc, _NOT_SENT) or _not_connected(exc):
        return SendResult(RETRYABLE, None, f"{type(exc).__name__}: cannot connect to {mask_url(url)}")
    if isinstance(exc, requests.Timeout):
        return SendResult(UNKNOWN, None, f"timeout after {timeout:g}s waiting for Slack's answer (outcome unknown)")
    return SendResult(UNKNOWN, None, f"{type(exc).__name__} talking to {mask_url(url)} after sending (outcome unknown)")


def _not_connected(exc: requests.RequestException) -> bool:
    """Connection refused or the name did not resolve (requests wraps urllib3's error)."""
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, MaxRetryError) and isinstance(cause.reason, NewConnectionError)


def send(session: requests.Session, url: str, message: dict, timeout: float) -> SendResult:
    """POSTs `message` as JSON to the webhook; never raises for HTTP or network trouble.

    `post` reads the whole answer, so a connection dropped halfway through it is an unknown
    outcome too."""
    data = json.dumps(message, ensure_ascii=False).encode("utf-8")
    try:
        response = session.post(url, data=data, headers={"Content-Type": "application/json; charset=utf-8"},
                                timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return classify_exception(exc, url, timeout)
    try:
        body = response.text
    finally:
        response.close()
    return classify(response.status_code, body, response.headers.get("Retry-After"))


def make_session() -> requests.Session:
    """The HTTP session notify sends with (one per run; connections reused across routes)."""
    from incidentctl import __version__

    session = requests.Session()
    session.headers["User-Agent"] = f"incidentctl/{__version__}"
    return session
