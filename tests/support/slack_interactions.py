"""Slack's side of interactivity, for tests: `sign` (v0 request signing) and SlackInteractions,
which sends `block_actions` clicks to the app's Request URL as Slack does.

Slack POSTs `application/x-www-form-urlencoded` with one field, `payload`, holding the JSON
(docs.slack.dev/interactivity/handling-user-interaction), with `X-Slack-Request-Timestamp` and
`X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{timestamp}:{raw body}">` keyed by the app's
signing secret; apps refuse a timestamp more than 5 minutes away (replay). The payload's shape
follows docs.slack.dev/reference/interaction-payloads/block_actions-payload and real payloads.
`raw()` returns the exact bytes and headers, so a test can send them in-process
(`tests/asgi.call(app, "POST", path, r.body, r.headers)`) or replay them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import requests

TEAM = {"id": "T0FAKETEAM", "domain": "incidentctl-test"}
APP_ID = "A0FAKEAPP"


def sign(secret: str, timestamp, body: bytes | str) -> str:
    """Slack's v0 signature: "v0=" + hex HMAC-SHA256 of "v0:{timestamp}:{raw body}" keyed by the secret."""
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(secret.encode(), b"v0:" + str(timestamp).encode() + b":" + raw, hashlib.sha256)
    return "v0=" + digest.hexdigest()


TAMPERS = ("wrong_secret", "stale", "future", "altered_body", "no_signature", "no_timestamp",
           "malformed_signature", "malformed_timestamp")
SKEW = 6 * 60   # past Slack's 5-minute replay window


@dataclass(frozen=True)
class SignedRequest:
    body: bytes
    headers: dict
    payload: dict


class SlackInteractions:
    """Sends `block_actions` payloads to the app's interactivity URL the way Slack does:
    form-encoded `payload=<json>`, signed with the app's signing secret."""

    def __init__(self, signing_secret: str, url: str | None = None, clock=time.time,
                 user: dict | None = None, verification_token: str = "fakeVerificationToken"):
        self.secret, self.url, self.clock = signing_secret, url, clock
        self.user = user or {"id": "U0ALICE", "username": "alice", "name": "alice", "team_id": TEAM["id"]}
        self.verification_token = verification_token

    def payload(self, action_id: str, value: str | None = None, *, user: dict | None = None,
                channel: dict | None = None, message_ts: str | None = None, message: dict | None = None,
                response_url: str | None = None, block_id: str | None = None, is_ephemeral: bool = False) -> dict:
        """A block_actions payload for a click on `action_id`. With `message`, the element is
        looked up in its blocks (block_id, type, text, overflow option) as Slack would send it."""
        channel = channel or {"id": "C0ALERTS", "name": "alerts"}
        message = message or {"type": "message", "ts": message_ts, "text": ""}
        message_ts = message_ts or message.get("ts")
        found_block, element = _find_element(message.get("blocks") or [], action_id)
        if message.get("blocks") and element is None:
            raise ValueError(f"the message has no element with action_id {action_id!r}")
        now = self.clock()
        action = {"action_id": action_id, "block_id": block_id or found_block or "actions",
                  "type": (element or {}).get("type", "button"), "action_ts": f"{now:.6f}"}
        if action["type"] == "overflow":
            options = element.get("options", [])
            option = next((o for o in options if o.get("value") == value), None)
            if option is None:
                raise ValueError(f"overflow {action_id!r} has no option with value {value!r}")
            action["selected_option"] = option
        else:
            action["text"] = (element or {}).get("text", {"type": "plain_text", "text": action_id, "emoji": True})
            action["value"] = value if value is not None else (element or {}).get("value")
        return {
            "type": "block_actions",
            "user": user or self.user,
            "api_app_id": APP_ID,
            "token": self.verification_token,
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel["id"],
                          "is_ephemeral": is_ephemeral},
            "trigger_id": f"{int(now)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}",
            "team": dict(TEAM),
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": channel,
            "message": message,
            "state": {"values": {}},
            "response_url": response_url or f"https://hooks.slack.com/actions/{TEAM['id']}/1/unused",
            "actions": [action],
        }

    def raw(self, action_id: str, value: str | None = None, *, timestamp=None, tamper: str | None = None,
            **fields) -> SignedRequest:
        """The exact bytes and headers of one click (send it with `send`, as often as you like);
        `payload` is what the body holds. `tamper` is one of TAMPERS: a request the app must
        refuse with 401 (altered_body: the user id changed after signing)."""
        if tamper is not None and tamper not in TAMPERS:
            raise ValueError(f"tamper must be one of {TAMPERS}")
        payload = self.payload(action_id, value, **fields)
        ts = str(int(self.clock()) if timestamp is None else timestamp)
        tampered = {"stale": str(int(ts) - SKEW), "future": str(int(ts) + SKEW), "malformed_timestamp": "soon"}
        ts = tampered.get(tamper, ts)
        body = _form(payload)
        signature = sign("not-the-" + self.secret if tamper == "wrong_secret" else self.secret, ts, body)
        if tamper == "altered_body":
            payload = {**payload, "user": {**payload["user"], "id": "U0MALLORY"}}
            body = _form(payload)
        if tamper == "malformed_signature":
            signature = signature.removeprefix("v0=")
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}
        if tamper == "no_signature":
            del headers["X-Slack-Signature"]
        if tamper == "no_timestamp":
            del headers["X-Slack-Request-Timestamp"]
        return SignedRequest(body, headers, payload)

    def send(self, request: SignedRequest, timeout: float = 5) -> requests.Response:
        """POSTs the request to `url` unchanged."""
        if self.url is None:
            raise ValueError("no url: pass one, or send raw() through tests/asgi.call")
        return requests.post(self.url, data=request.body, headers=request.headers, timeout=timeout)

    def click(self, action_id: str, value: str | None = None, *, timeout: float = 5, **fields) -> requests.Response:
        return self.send(self.raw(action_id, value, **fields), timeout)


def _form(payload: dict) -> bytes:
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"), ensure_ascii=False)}).encode()


def _find_element(blocks: list, action_id: str) -> tuple[str | None, dict | None]:
    """(block_id, element) holding `action_id`, in actions blocks or as a section accessory."""
    for block in blocks:
        candidates = list(block.get("elements") or []) + ([block["accessory"]] if block.get("accessory") else [])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block.get("block_id"), element
    return None, None
