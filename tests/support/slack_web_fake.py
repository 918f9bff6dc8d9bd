"""A local server that answers like Slack's Web API (chat.*) and like a response_url, for tests.
No patching: point the code at `fake.api_url`.

Behaviour follows Slack's documentation (/work/shared/SLACK.md; api.slack.com/methods/chat.*):
- POST (or GET) /api/<method>, JSON (`Authorization: Bearer …` only) or form-encoded (header or
  `token` field; `blocks` as a JSON string). Answers HTTP 200 `{"ok": true|false, …}` except
  rate limits: HTTP 429, `Retry-After: <whole seconds>`, `{"ok": false, "error": "ratelimited"}`.
  JSON without a charset gets Slack's `missing_charset` warning.
- chat.postMessage, chat.update, chat.getPermalink, chat.postEphemeral, and
  usergroups.users.list (scope usergroups:read; `usergroups` holds each group's members; an
  unknown group answers `no_such_subteam`, as Slack documents); anything else: `unknown_method`.
  A method whose scope is not in `scopes` answers Slack's
  `{"ok": false, "error": "missing_scope", "needed": …, "provided": …}`. Errors: not_authed,
  invalid_auth, token_revoked, channel_not_found, not_in_channel, is_archived, is_inactive,
  message_not_found, cant_update_message, edit_window_closed, msg_too_long (text > 40,000),
  no_text, invalid_blocks (tests/support/slack_blockkit.py), invalid_blocks_format; any error
  (or a 5xx) can be injected with `fail()`.
- Rate limits are token buckets in simulated seconds: chat.postMessage per channel (Slack: about
  one a second, short bursts allowed), chat.update per workspace (Tier 3, 50+/min),
  chat.postEphemeral per workspace (Tier 4, 100+/min), usergroups.users.list per workspace
  (Tier 2, 20+/min). Slack publishes no burst sizes; the defaults in LIMITS are this fake's. A
  request to a bucket before its Retry-After has passed is a violation (`violations`); the first
  one after it counts in `honoured`.
- /respond/<id> is a response_url: records the JSON posted (`ephemeral`), applies
  replace_original / delete_original / in_channel to the bound message, answers 200 `ok`
  (plain text, as Slack does). Slack allows 5 uses within 30 minutes; past that this fake
  answers 404 `used_url` / `expired_url` (Slack documents no answer for it).

The click client and `sign` live in tests/support/slack_interactions.py and are importable from here.

Time: `clock` (simulated seconds) defaults to the monotonic clock divided by `time_scale`, so
time_scale=0.02 makes a Slack second last 20 ms (keep a simulated second well above an HTTP round
trip, or buckets refill mid-test). Pass a ManualClock to never sleep at all.
"""

from __future__ import annotations

import itertools
import json
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.support.slack_blockkit import MAX_TEXT, RECOMMENDED_TEXT, BlocksFormatError, problems
from tests.support.slack_interactions import APP_ID, TAMPERS, TEAM, SignedRequest, SlackInteractions, sign

__all__ = ["FakeSlackWeb", "Limit", "LIMITS", "ManualClock", "Message", "Call", "TOKEN", "TEAM",
           "SlackInteractions", "SignedRequest", "TAMPERS", "sign"]

TOKEN = "xoxb-0000000000-fake-bot-token"
BOT = {"user": "U0FAKEBOT", "bot_id": "B0FAKEBOT", "app_id": APP_ID}
CHANNELS = {"C0ALERTS": "alerts", "C0OPS": "ops"}
TS_BASE = 1700000000


@dataclass(frozen=True)
class Limit:
    """`rate` requests per simulated second, up to `burst` at once, per channel or per workspace."""
    rate: float
    burst: int
    per_channel: bool = False


LIMITS = {
    "chat.postMessage": Limit(1.0, 4, per_channel=True),
    "chat.update": Limit(50 / 60, 10),
    "chat.postEphemeral": Limit(100 / 60, 20),
    "usergroups.users.list": Limit(20 / 60, 5),  # Tier 2
}
# The bot scope each method needs (api.slack.com/methods/…); the fake grants `scopes`.
SCOPES = {"chat.postMessage": "chat:write", "chat.update": "chat:write", "chat.postEphemeral": "chat:write",
          "usergroups.users.list": "usergroups:read"}


class ManualClock:
    """Simulated seconds that move only when a test (or the client's injected sleep) says so."""

    def __init__(self, start: float = 0.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list
    thread_ts: str | None
    posted_at: float
    user: str = BOT["user"]
    reply_broadcast: bool = False
    deleted: bool = False
    versions: list[dict] = field(default_factory=list)   # every state, the first as posted

    @property
    def update_count(self) -> int:
        return len(self.versions) - 1

    def as_slack(self) -> dict:
        """The message object Slack returns, and puts in a block_actions payload."""
        out = {"type": "message", "text": self.text, "user": self.user, "ts": self.ts, "team": TEAM["id"]}
        if self.user == BOT["user"]:
            out.update(bot_id=BOT["bot_id"], app_id=BOT["app_id"])
        if self.blocks:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        return out


@dataclass
class Call:
    method: str
    args: dict
    at: float
    status: int
    answer: dict


class FakeSlackWeb:
    def __init__(self, tokens=(TOKEN,), channels=None, outside=(), limits=None, time_scale: float = 1.0,
                 clock=None, edit_window: float | None = None, response_url_uses: int = 5,
                 response_url_ttl: float = 1800.0):
        self.tokens = set(tokens)
        self.channels = dict(CHANNELS if channels is None else channels)
        self.outside = set(outside)                             # channels the bot is not in
        self.limits = {**LIMITS, **(limits or {})}
        self.clock = clock or (lambda: time.monotonic() / time_scale)
        self.edit_window = edit_window
        self.response_url_uses, self.response_url_ttl = response_url_uses, response_url_ttl
        self.lock = threading.Lock()
        self.reset()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._serving = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def reset(self) -> None:
        """Forgets every message, call, failure, revocation, archive, user group, scope taken away
        and rate-limit state."""
        self.revoked, self.archived = set(), set()
        self.messages: dict[tuple[str, str], Message] = {}
        self.calls: list[Call] = []
        self.rejected: list[dict] = []         # {"method", "error", "reasons", "args"}
        self.notes: list[tuple[str, str]] = []  # (method, note): accepted, but worth a look
        self.ephemeral: list[dict] = []        # response_url posts: {"id", "body", "at", "status"}
        self.ephemeral_posts: list[dict] = []  # chat.postEphemeral args + message_ts
        self.usergroups: dict[str, list[str]] = {}  # user-group id (S…) -> its members' user ids
        self.scopes = {"chat:write", "usergroups:read"}  # what the bot token was granted
        self.throttled: list[dict] = []        # every 429: {"method", "bucket", "at", "retry_after"}
        self.violations: list[dict] = []       # requests to a bucket before Retry-After passed
        self.honoured = 0
        self._failures: list[dict] = []
        self._buckets: dict[tuple, list[float]] = {}   # key -> [tokens, last refill]
        self._blocked: dict[tuple, float] = {}         # key -> retry allowed at
        self._responses: dict[str, dict] = {}
        self._seq = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/api/"

    def __enter__(self) -> FakeSlackWeb:
        self._serving.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self._serving.is_alive():
            self.server.shutdown()
        self.server.server_close()

    # -- test controls -----------------------------------------------------------------------
    def fail(self, method: str, error: str, channel: str | None = None, times: int | None = 1,
             status: int | None = None, retry_after: int = 1) -> None:
        """The next `times` calls of `method` ("*" = any) for `channel` (None = any) answer `error`
        (times=None: until reset). "ratelimited" answers 429 and blocks the bucket like a real limit."""
        default = 429 if error == "ratelimited" else 200
        with self.lock:
            self._failures.append({"method": method, "error": error, "channel": channel, "times": times,
                                   "status": status or default, "retry_after": retry_after})

    def revoke(self, token: str) -> None:
        self.revoked.add(token)

    def archive(self, channel: str) -> None:
        self.archived.add(channel)

    def seed_message(self, channel: str, text: str, user: str = "U0SOMEONE") -> str:
        """A message somebody else posted (the bot cannot update it); returns its ts."""
        with self.lock:
            return self._store(channel, text, [], None, False, user).ts

    def thread(self, channel: str, ts: str) -> list[Message]:
        with self.lock:
            return sorted((m for m in self.messages.values() if m.channel == channel and m.thread_ts == ts),
                          key=lambda m: m.ts)

    def calls_to(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    def response_url(self, channel: str | None = None, ts: str | None = None) -> str:
        """A fresh response_url, bound to the message a click came from (for replace/delete)."""
        rid = secrets.token_hex(8)
        with self.lock:
            self._responses[rid] = {"channel": channel, "ts": ts, "uses": 0, "issued": self.clock()}
        return f"http://127.0.0.1:{self.server.server_port}/respond/{rid}"

    def click_context(self, channel: str, ts: str) -> dict:
        """Keyword arguments for SlackInteractions.click on a stored message, as Slack fills them."""
        with self.lock:
            message = self.messages[(channel, ts)].as_slack()
        return {"channel": {"id": channel, "name": self.channels.get(channel, channel)}, "message_ts": ts,
                "message": message, "response_url": self.response_url(channel, ts)}

    # -- the Web API -------------------------------------------------------------------------
    def _answer(self, method: str, args: dict, token: str | None, charset: bool) -> tuple[int, dict, dict]:
        """Answers one Web API call and records it: (status, body, headers). Runs under the lock."""
        status, answer, headers = self._call(method, args, token)
        if status == 200 and not charset:
            answer.update(warning="missing_charset", response_metadata={"warnings": ["missing_charset"]})
        self.calls.append(Call(method, args, self.clock(), status, answer))
        return status, answer, headers

    def _call(self, method: str, args: dict, token: str | None) -> tuple[int, dict, dict]:
        known = method.startswith(("chat.", "usergroups."))
        handler = getattr(self, "_" + method.replace(".", "_"), None) if known else None
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if token in self.revoked:
            return 200, {"ok": False, "error": "token_revoked"}, {}
        if token not in self.tokens:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        needed = SCOPES.get(method)
        if needed is not None and needed not in self.scopes:
            return 200, {"ok": False, "error": "missing_scope", "needed": needed,
                         "provided": ",".join(sorted(self.scopes))}, {}
        channel = self._resolve(args.get("channel"))
        injected = self._injected(method, channel)
        if injected:
            if injected["status"] == 429:
                return self._throttle(method, self._key(method, channel), injected["retry_after"])
            return injected["status"], {"ok": False, "error": injected["error"]}, {}
        return self._rate_limit(method, channel) or (200, handler(args, channel), {})

    def _chat_postMessage(self, args: dict, channel: str | None) -> dict:
        error = self._channel_error(channel, "is_archived") or self._content_error("chat.postMessage", args)
        if error:
            return {"ok": False, "error": error}
        thread_ts = args.get("thread_ts") or None
        if thread_ts:
            parent = self.messages.get((channel, thread_ts))
            if parent is None:
                self.notes.append(("chat.postMessage", f"thread_ts {thread_ts} is no message in {channel}"))
            elif parent.thread_ts and parent.thread_ts != parent.ts:
                self.notes.append(("chat.postMessage", f"thread_ts {thread_ts} is a reply; use its parent"))
                thread_ts = parent.thread_ts
        message = self._store(channel, args.get("text") or "", args.get("blocks") or [], thread_ts,
                               _true(args.get("reply_broadcast")) and bool(thread_ts))
        return {"ok": True, "channel": channel, "ts": message.ts, "message": message.as_slack()}

    def _chat_update(self, args: dict, channel: str | None) -> dict:
        error = self._channel_error(channel, "is_inactive")
        message = self.messages.get((channel, args.get("ts")))
        if not error and (message is None or message.deleted):
            error = "message_not_found"
        elif not error and message.user != BOT["user"]:
            error = "cant_update_message"
        elif not error and self.edit_window is not None and self.clock() - message.posted_at > self.edit_window:
            error = "edit_window_closed"
        error = error or self._content_error("chat.update", args)
        if error:
            return {"ok": False, "error": error}
        if "text" in args:
            message.text = args["text"] or ""
        if "blocks" in args:
            message.blocks = args["blocks"] or []
        message.versions.append({"text": message.text, "blocks": message.blocks, "at": self.clock(),
                                 "via": "chat.update"})
        return {"ok": True, "channel": channel, "ts": message.ts, "text": message.text, "message": message.as_slack()}

    def _chat_getPermalink(self, args: dict, channel: str | None) -> dict:
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        message = self.messages.get((channel, args.get("message_ts")))
        if message is None or message.deleted:
            return {"ok": False, "error": "message_not_found"}
        link = f"https://{TEAM['domain']}.slack.com/archives/{channel}/p{message.ts.replace('.', '')}"
        if message.thread_ts and message.thread_ts != message.ts:
            link += f"?thread_ts={message.thread_ts}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _chat_postEphemeral(self, args: dict, channel: str | None) -> dict:
        error = self._channel_error(channel, "is_archived") or self._content_error("chat.postEphemeral", args)
        if not error and not args.get("user"):
            error = "user_not_in_channel"
        if error:
            return {"ok": False, "error": error}
        ts = self._next_ts()
        self.ephemeral_posts.append({**args, "channel": channel, "message_ts": ts})
        return {"ok": True, "message_ts": ts}

    def _usergroups_users_list(self, args: dict, channel: str | None) -> dict:
        group = args.get("usergroup")
        if not group:
            return {"ok": False, "error": "invalid_arguments"}
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _channel_error(self, channel: str | None, archived_error: str) -> str | None:
        if channel not in self.channels:
            return "channel_not_found"
        if channel in self.archived:
            return archived_error
        return "not_in_channel" if channel in self.outside else None

    def _content_error(self, method: str, args: dict) -> str | None:
        """no_text / msg_too_long / invalid_blocks[_format], with the reasons kept in `rejected`."""
        text, blocks = args.get("text"), args.get("blocks")
        if method == "chat.update" and "text" not in args and "blocks" not in args and "attachments" not in args:
            return self._reject(method, "no_text", ["neither text, blocks nor attachments"], args)
        if method != "chat.update" and not text and not blocks and not args.get("attachments"):
            return self._reject(method, "no_text", ["no text, blocks or attachments"], args)
        if isinstance(text, str) and len(text) > MAX_TEXT:
            return self._reject(method, "msg_too_long", [f"text: {len(text)} chars > {MAX_TEXT}"], args)
        if blocks is not None:
            try:
                reasons = problems(blocks)
            except BlocksFormatError as exc:
                return self._reject(method, "invalid_blocks_format", [str(exc)], args)
            if reasons:
                return self._reject(method, "invalid_blocks", reasons, args)
        if isinstance(text, str) and len(text) > RECOMMENDED_TEXT:
            self.notes.append((method, f"text is {len(text)} chars; Slack advises at most {RECOMMENDED_TEXT}"))
        if blocks and not text and method == "chat.postMessage":
            self.notes.append((method, "blocks without a top-level text fallback for notifications"))
        return None

    def _reject(self, method: str, error: str, reasons: list[str], args: dict) -> str:
        self.rejected.append({"method": method, "error": error, "reasons": reasons, "args": args})
        return error

    def _store(self, channel, text, blocks, thread_ts, broadcast, user=BOT["user"]) -> Message:
        now = self.clock()
        message = Message(channel, self._next_ts(), text, blocks, thread_ts, now, user, broadcast)
        message.versions.append({"text": text, "blocks": blocks, "at": now, "via": "post"})
        self.messages[(channel, message.ts)] = message
        return message

    def _next_ts(self) -> str:
        n = next(self._seq)
        return f"{TS_BASE + n // 10000}.{(n % 10000) * 100:06d}"

    def _resolve(self, channel) -> str | None:
        """Channel IDs pass through; "#name" or "name" become the ID, as Slack allows."""
        if not isinstance(channel, str) or channel in self.channels:
            return channel
        name = channel.lstrip("#")
        return next((cid for cid, cname in self.channels.items() if cname == name), channel)

    def _injected(self, method: str, channel: str | None) -> dict | None:
        for failure in self._failures:
            if failure["method"] in (method, "*") and failure["channel"] in (None, channel):
                if failure["times"] is not None:
                    failure["times"] -= 1
                    if failure["times"] <= 0:
                        self._failures.remove(failure)
                return failure
        return None

    # -- rate limits -------------------------------------------------------------------------
    def _key(self, method: str, channel: str | None) -> tuple:
        limit = self.limits.get(method)
        return (method, channel) if limit is not None and limit.per_channel else (method,)

    def _rate_limit(self, method: str, channel: str | None):
        key, now = self._key(method, channel), self.clock()
        blocked = self._blocked.get(key)
        if blocked is not None:
            if now < blocked:
                self.violations.append({"method": method, "bucket": key, "at": now, "retry_at": blocked})
                return self._throttle(method, key, math.ceil(blocked - now), extend=False)
            del self._blocked[key]
            self.honoured += 1
        limit = self.limits.get(method)
        if limit is None:
            return None
        tokens, last = self._buckets.get(key, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - last) * limit.rate)
        if tokens < 1.0:
            self._buckets[key] = [tokens, now]
            return self._throttle(method, key, max(1, math.ceil((1.0 - tokens) / limit.rate)))
        self._buckets[key] = [tokens - 1.0, now]
        return None

    def _throttle(self, method: str, key: tuple, retry_after: int, extend: bool = True):
        now = self.clock()
        if extend:
            self._blocked[key] = now + retry_after
        self.throttled.append({"method": method, "bucket": key, "at": now, "retry_after": retry_after})
        return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}

    # -- response_url ------------------------------------------------------------------------
    def _respond(self, rid: str, body) -> tuple[int, str]:
        entry = self._responses.get(rid)
        now = self.clock()
        if entry is None or now - entry["issued"] > self.response_url_ttl:
            status, answer = 404, "expired_url"
        elif entry["uses"] >= self.response_url_uses:
            status, answer = 404, "used_url"
        elif not isinstance(body, dict):
            status, answer = 400, "invalid_payload"
        elif body.get("blocks") is not None and self._blocks_error("response_url", body):
            status, answer = 400, "invalid_blocks"
        else:
            entry["uses"] += 1
            status, answer = 200, "ok"
            self._apply_response(entry, body, now)
        self.ephemeral.append({"id": rid, "body": body, "at": now, "status": status})
        return status, answer

    def _blocks_error(self, method: str, body: dict) -> bool:
        try:
            reasons = problems(body["blocks"])
        except BlocksFormatError as exc:
            reasons = [str(exc)]
        if reasons:
            self._reject(method, "invalid_blocks", reasons, body)
        return bool(reasons)

    def _apply_response(self, entry: dict, body: dict, now: float) -> None:
        """replace_original / delete_original change the clicked message; in_channel posts."""
        message = self.messages.get((entry["channel"], entry["ts"]))
        if _true(body.get("delete_original")) and message:
            message.deleted = True
        elif _true(body.get("replace_original")) and message:
            message.text = body.get("text", message.text)
            message.blocks = body.get("blocks", message.blocks)
            message.versions.append({"text": message.text, "blocks": message.blocks, "at": now, "via": "response_url"})
        elif body.get("response_type") == "in_channel" and entry["channel"]:
            self._store(entry["channel"], body.get("text", ""), body.get("blocks") or [], body.get("thread_ts"), False)

    # -- HTTP --------------------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._serve(b"")

            def do_POST(self):
                self._serve(self.rfile.read(int(self.headers.get("Content-Length", 0))))

            def _serve(self, raw: bytes):
                url = urlsplit(self.path)
                if url.path.startswith("/respond/"):
                    with fake.lock:
                        status, text = fake._respond(url.path.rsplit("/", 1)[1], _json_or_none(raw))
                    return self._send(status, text.encode(), "text/plain", {})
                args, token, charset = _parse(raw, url.query, self.headers)
                with fake.lock:
                    status, answer, headers = fake._answer(url.path.removeprefix("/api/"), args, token, charset)
                self._send(status, json.dumps(answer).encode(), "application/json; charset=utf-8", headers)

            def _send(self, status, data, content_type, headers):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        return Handler


def _parse(raw: bytes, query: str, headers) -> tuple[dict, str | None, bool]:
    """(args, token, charset given). JSON bodies take the token from the header only, as Slack does."""
    content_type = headers.get("Content-Type", "")
    auth = headers.get("Authorization", "")
    token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
    if content_type.startswith("application/json"):
        args = _json_or_none(raw)
        return (args if isinstance(args, dict) else {}), token, "charset" in content_type
    args = {k: v[-1] for k, v in parse_qs(query + "&" + raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
    for name in ("blocks", "attachments", "metadata"):
        if name in args:
            args[name] = _json_or_none(args[name].encode()) if args[name] else []
            if args[name] is None:
                args[name] = "(not JSON)"
    form_token = args.pop("token", None)
    return args, token or form_token, True


def _json_or_none(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _true(value) -> bool:
    return value is True or value == "true"
