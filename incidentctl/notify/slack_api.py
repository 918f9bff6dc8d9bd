"""The Slack Web API client: chat.postMessage / chat.update / chat.getPermalink /
chat.postEphemeral and usergroups.users.list with a bot token, and answers to an interaction's
`response_url`.

Every answer is classified where it arrives, and a call that does not succeed raises one of:
- `Retryable` — Slack did not act on it: no connection, HTTP 5xx, `service_unavailable`,
  `ratelimited` (`RateLimited`, with `retry_after`). Send it again later.
- `OutcomeUnknown` — the request went out and no answer came back (read timeout, connection
  dropped), or Slack said `internal_error` / `fatal_error` ("it's possible some aspect of the
  operation succeeded"). An update is safe to send again (it sets the same content); a post may
  then appear twice.
- `MessageGone` — chat.update cannot edit that message any more (`message_not_found`,
  `cant_update_message`, `edit_window_closed`): post a new message instead.
- `Permanent` — sending it again changes nothing until someone fixes something; `scope` says
  what: `workspace` (the token: `invalid_auth`, `token_revoked`, `missing_scope`, …), `channel`
  (`channel_not_found`, `not_in_channel`, `is_archived`, …) or `request` (this message:
  `invalid_blocks`, `msg_too_long`, …; also any error string Slack documents nowhere we know).

A 429 is honoured: the method's bucket in the `Pacer` is blocked for `Retry-After` seconds and
the call waits and tries again, up to `max_attempts` times, as long as the wait is at most
`max_wait`; a longer wait raises `RateLimited` without sending, so a batch never sleeps for
minutes. Pacing before each call keeps to Slack's published rates (pacing.py).

The token is a secret: it travels only in the `Authorization` header of Web API calls (never
to a response_url), and no result, error, log line or repr contains it. A response_url is a
credential too (anyone holding it may post for 30 minutes): errors show it masked.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from incidentctl.config import Settings
from incidentctl.notify.pacing import Pacer
from incidentctl.notify.slack import OK, PERMANENT, RETRYABLE, UNKNOWN, classify_exception, parse_retry_after

log = logging.getLogger(__name__)

SLACK_API_URL = "https://slack.com/api/"
FALLBACK = "fallback"  # chat.update cannot edit the message: post a new one

# Slack documents these as "the operation may have partly succeeded".
UNKNOWN_ERRORS = frozenset({"internal_error", "fatal_error"})
RETRYABLE_ERRORS = frozenset({"ratelimited", "rate_limited", "service_unavailable", "request_timeout",
                              "team_added_to_org", "org_login_required"})
FALLBACK_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
# Permanent, by what must be fixed. Any other error string is permanent for this request.
WORKSPACE_ERRORS = frozenset({
    "not_authed", "invalid_auth", "token_revoked", "token_expired", "account_inactive", "missing_scope",
    "not_allowed_token_type", "no_permission", "ekm_access_denied", "access_denied", "accesslimited",
    "team_access_not_granted", "two_factor_setup_required", "enterprise_is_restricted", "method_deprecated",
    "deprecated_endpoint", "restricted_action",
})
CHANNEL_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "is_inactive", "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel", "restricted_action_non_threadable_channel",
    "restricted_action_thread_locked", "user_not_in_channel",
})
# response_url answers in plain text; these strings mean the URL is used up or expired.
DEAD_RESPONSE_URL = frozenset({"expired_url", "used_url", "invalid_url"})

DEFAULT_RETRY_AFTER = 1.0  # a 429 without Retry-After (Slack always sends one)


@dataclass(frozen=True)
class Answer:
    """How one request went, before anything is raised: `outcome` is ok | retryable | unknown |
    fallback | permanent; `scope` (permanent only) is workspace | channel | request."""

    outcome: str
    status: int | None
    error: str | None = None
    retry_after: float | None = None
    scope: str | None = None
    data: dict = field(default_factory=dict)


class SlackApiError(Exception):
    """A Web API call or response_url post that did not succeed."""

    outcome = PERMANENT

    def __init__(self, method: str, answer: Answer):
        self.method, self.answer = method, answer
        status = f" (HTTP {answer.status})" if answer.status not in (None, 200) else ""
        super().__init__(f"{method}: {answer.error}{status}")

    @property
    def error(self) -> str | None:
        return self.answer.error

    @property
    def retry_after(self) -> float | None:
        return self.answer.retry_after


class Retryable(SlackApiError):
    """Slack did not act on the request (no connection, 5xx, overloaded): send it again later."""

    outcome = RETRYABLE


class RateLimited(Retryable):
    """Slack asks to wait longer than this client waits (`retry_after` seconds); nothing was sent."""


class OutcomeUnknown(SlackApiError):
    """Sent, and Slack's answer did not say whether it acted (timeout, dropped, internal_error)."""

    outcome = UNKNOWN


class MessageGone(SlackApiError):
    """chat.update cannot edit this message (deleted, not ours, too old): post a new one."""

    outcome = FALLBACK


class Permanent(SlackApiError):
    """Sending again fails the same way until someone fixes the token, the channel or the message."""

    @property
    def scope(self) -> str:
        return self.answer.scope or "request"


_ERRORS = {RETRYABLE: Retryable, UNKNOWN: OutcomeUnknown, FALLBACK: MessageGone, PERMANENT: Permanent}


def error_for(method: str, answer: Answer) -> SlackApiError:
    """The exception for a failed answer."""
    if answer.outcome == RETRYABLE and answer.error == "ratelimited":
        return RateLimited(method, answer)
    return _ERRORS[answer.outcome](method, answer)


def classify(status: int, body: str, retry_after: str | None = None) -> Answer:
    """A Web API answer → Answer. Slack answers HTTP 200 with `{"ok": …}` and 429 for rate limits;
    anything else comes from something in between (a proxy, a load balancer) or a wrong URL."""
    if status == 429:
        return Answer(RETRYABLE, status, "ratelimited", parse_retry_after(retry_after) or DEFAULT_RETRY_AFTER)
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if status >= 500 or status == 408:
        error = doc.get("error") if isinstance(doc, dict) else None
        return Answer(RETRYABLE, status, str(error or f"HTTP {status}")[:200])
    if status != 200:
        return Answer(PERMANENT, status, f"HTTP {status}", scope="request")
    if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
        # Something answered 200 that is not Slack's API: we cannot tell whether Slack saw it.
        return Answer(UNKNOWN, status, "answer is not a Slack API response")
    if doc["ok"]:
        return Answer(OK, status, data=doc)
    return classify_error(str(doc.get("error") or "unknown_error")[:200], status)


def classify_error(error: str, status: int | None = 200) -> Answer:
    """Slack's `error` string of an `{"ok": false}` answer → Answer."""
    if error in ("ratelimited", "rate_limited"):
        return Answer(RETRYABLE, status, "ratelimited", DEFAULT_RETRY_AFTER)
    if error in RETRYABLE_ERRORS:
        return Answer(RETRYABLE, status, error)
    if error in UNKNOWN_ERRORS:
        return Answer(UNKNOWN, status, error)
    if error in FALLBACK_ERRORS:
        return Answer(FALLBACK, status, error)
    scope = "workspace" if error in WORKSPACE_ERRORS else "channel" if error in CHANNEL_ERRORS else "request"
    return Answer(PERMANENT, status, error, scope=scope)


def classify_response_url(status: int, body: str) -> Answer:
    """A response_url's plain-text answer (`ok`, or an error string) → Answer."""
    text = body.strip()[:200]
    if status == 200:
        return Answer(OK, status)
    if status == 429:
        return Answer(RETRYABLE, status, "ratelimited", DEFAULT_RETRY_AFTER)
    if status >= 500 or status == 408:
        return Answer(RETRYABLE, status, text or f"HTTP {status}")
    return Answer(PERMANENT, status, text or f"HTTP {status}", scope="request")


class SlackApi:
    """A bot's Web API calls over `session`, paced by `pacer`; `clock`/`sleep` are injectable so
    tests run on simulated time. Not thread-safe: one client per thread."""

    def __init__(self, session: requests.Session, token: str, *, base_url: str = SLACK_API_URL,
                 timeout: float = 10.0, pacer: Pacer | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, max_wait: float = 30.0, max_attempts: int = 5):
        if not token:
            raise ValueError("no Slack bot token")
        self.session = session
        self._token = token
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self.pacer = pacer if pacer is not None else Pacer(clock=clock)
        self.sleep = sleep
        self.max_wait, self.max_attempts = max_wait, max_attempts

    def __repr__(self) -> str:
        return f"SlackApi(base_url={self.base_url!r}, token=<{len(self._token)} chars>)"

    # -- chat.* ----------------------------------------------------------------------------
    def post_message(self, channel: str, text: str, blocks: list | None = None, thread_ts: str | None = None,
                     *, reply_broadcast: bool = False) -> tuple[str, str]:
        """chat.postMessage → (channel ID, ts): what chat.update and thread replies need later."""
        args: dict = {"channel": channel, "text": text, "unfurl_links": False, "unfurl_media": False}
        if blocks is not None:
            args["blocks"] = blocks
        if thread_ts:
            args["thread_ts"] = thread_ts
            if reply_broadcast:
                args["reply_broadcast"] = True
        data = self.call("chat.postMessage", args, channel=channel)
        return str(data.get("channel") or channel), str(data["ts"])

    def update_message(self, channel: str, ts: str, text: str, blocks: list | None = None) -> None:
        """chat.update: the message's text and blocks become these (blocks=None keeps the old ones)."""
        args: dict = {"channel": channel, "ts": ts, "text": text}
        if blocks is not None:
            args["blocks"] = blocks
        self.call("chat.update", args, channel=channel)

    def get_permalink(self, channel: str, ts: str) -> str:
        """chat.getPermalink → the message's https link (a thread reply's carries its thread)."""
        data = self.call("chat.getPermalink", {"channel": channel, "message_ts": ts}, channel=channel, form=True)
        return str(data["permalink"])

    def usergroup_members(self, usergroup: str) -> list[str]:
        """usergroups.users.list (scope usergroups:read) → the user ids in the group."""
        data = self.call("usergroups.users.list", {"usergroup": usergroup}, form=True)
        return [str(user) for user in data.get("users") or []]

    def post_ephemeral(self, channel: str, user: str, text: str, blocks: list | None = None,
                       thread_ts: str | None = None) -> str:
        """chat.postEphemeral: a message only `user` sees (and only now) → its message_ts."""
        args: dict = {"channel": channel, "user": user, "text": text}
        if blocks is not None:
            args["blocks"] = blocks
        if thread_ts:
            args["thread_ts"] = thread_ts
        return str(self.call("chat.postEphemeral", args, channel=channel).get("message_ts", ""))

    def respond(self, response_url: str, payload: dict) -> None:
        """POSTs `payload` to an interaction's response_url (see `respond`)."""
        respond(self.session, response_url, payload, timeout=self.timeout)

    # -- the call --------------------------------------------------------------------------
    def call(self, method: str, args: dict, *, channel: str | None = None, form: bool = False) -> dict:
        """One Web API method, paced; Slack's answer as a dict when `ok`, else raises a
        SlackApiError. A 429 blocks the method and is retried after its Retry-After."""
        for _ in range(self.max_attempts):
            self._pace(method, channel)
            answer = self._send(method, args, form)
            if answer.outcome == OK:
                return answer.data
            if answer.error != "ratelimited":
                raise error_for(method, answer)
            wait = answer.retry_after or DEFAULT_RETRY_AFTER
            self.pacer.block(method, wait)
            log.info("Slack rate-limited %s; waiting %gs as it asks", method, wait)
        raise RateLimited(method, Answer(RETRYABLE, 429, "ratelimited", self.pacer.wait_time(method, channel)))

    def _pace(self, method: str, channel: str | None) -> None:
        """Waits until `method` may be called (Retry-After blocks included); raises RateLimited,
        unsent, when that is longer than max_wait."""
        while True:
            wait = self.pacer.wait_time(method, channel)
            if wait <= 0:
                self.pacer.take(method, channel)
                return
            if wait > self.max_wait:
                raise RateLimited(method, Answer(RETRYABLE, None, "ratelimited", wait))
            self.sleep(wait)

    def _send(self, method: str, args: dict, form: bool) -> Answer:
        url = self.base_url + method
        headers = {"Authorization": f"Bearer {self._token}"}
        if form:
            body: bytes | dict = {k: v for k, v in args.items() if v is not None}
        else:
            headers["Content-Type"] = "application/json; charset=utf-8"
            body = json.dumps(args, ensure_ascii=False).encode("utf-8")
        try:
            response = self.session.post(url, data=body, headers=headers, timeout=self.timeout,
                                         allow_redirects=False)
        except requests.RequestException as exc:
            return _answer_for_exception(exc, url, self.timeout)
        try:
            return classify(response.status_code, response.text, response.headers.get("Retry-After"))
        finally:
            response.close()


def respond(session: requests.Session, response_url: str, payload: dict, *, timeout: float = 10.0) -> None:
    """POSTs `payload` to an interaction's response_url (ephemeral by default; Slack allows 5
    uses within 30 minutes). No token is needed or sent, and no pacing applies. Raises a
    SlackApiError classified like the Web API's (Retryable, OutcomeUnknown, Permanent)."""
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    try:
        response = session.post(response_url, data=data, timeout=timeout, allow_redirects=False,
                                headers={"Content-Type": "application/json; charset=utf-8"})
    except requests.RequestException as exc:
        raise error_for("response_url", _answer_for_exception(exc, response_url, timeout)) from None
    try:
        answer = classify_response_url(response.status_code, response.text)
    finally:
        response.close()
    if answer.outcome != OK:
        raise error_for("response_url", answer)


def _answer_for_exception(exc: requests.RequestException, url: str, timeout: float) -> Answer:
    """Retryable when the request cannot have left, else unknown; the text names no secret."""
    result = classify_exception(exc, url, timeout)
    return Answer(result.outcome, None, result.error)


def bot_api(settings: Settings, session: requests.Session | None) -> SlackApi | None:
    """The bot's Web API client, when a bot token is set."""
    if not settings.slack_bot_token or session is None:
        return None
    return SlackApi(session, settings.slack_bot_token, base_url=settings.slack_api_url, timeout=settings.slack_timeout)
