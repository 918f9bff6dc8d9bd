"""The action inbox's two doors on the receiver: Slack's interactivity URL and the REST API.

Both only append (ingest/inbox.py); the batch applies what they stored (notify/applier.py).
- `POST /slack/actions`: Slack's v0 signature is checked before anything else (401, nothing
  stored); the request is stored byte for byte with the headers that let it be verified again,
  and answered 200 with an empty body once committed (Slack wants an answer within 3 s; the
  person hears back in Slack from the applier). A replay of a request already stored, while
  its signature is valid, is answered 200 and not stored again (signatures.py). 404 when no
  signing secret is configured.
- `POST /api/v1/incidents/{id}/actions`: `Authorization: Bearer <token>` of a live API token
  (401 otherwise), a JSON body checked by `check_api_body` (400 with the reason), an incident
  that exists (404: the one read the door does to decide anything) → 202 `{"action_id": N}`.
- `GET /api/v1/actions/{id}` (any live token): pending, applied or refused, and why.
A database that does not answer gives 503 (nothing stored; Retry-After).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from incidentctl.db.engine import short_error
from incidentctl.ingest.inbox import (
    BadRequest,
    Door,
    InboxRequest,
    action_status,
    check_api_body,
    incident_exists,
    kept_headers,
)
from incidentctl.ingest.receiver import http
from incidentctl.ingest.receiver.auth import AuthFailed, check_slack_signature
from incidentctl.ingest.tokens import TokenOwner, owner_of

if TYPE_CHECKING:
    from incidentctl.ingest.receiver.app import Receiver

T = TypeVar("T")

SLACK_PATH = "/slack/actions"
_INCIDENT_ACTIONS = re.compile(r"/api/v1/incidents/([1-9][0-9]{0,18})/actions")
_ACTION = re.compile(r"/api/v1/actions/([1-9][0-9]{0,18})")
API_MAX_BODY = 64 * 1024  # a REST action is a few fields; a note at most 4,000 characters
CHALLENGE = [(b"www-authenticate", b'Bearer realm="incidentctl-api"')]


class Doors:
    """Routes and answers the doors' requests for `receiver` (its writer, clock and refusals)."""

    ENDPOINTS = {"POST /slack/actions": "Slack interactivity (signed block_actions), stored for the batch",
                 "POST /api/v1/incidents/{id}/actions": "an action by an API token's owner, stored for the batch",
                 "GET /api/v1/actions/{id}": "whether a stored action was applied or refused"}

    def __init__(self, receiver: Receiver, slack_signing_secret: str = "") -> None:
        self.receiver = receiver
        self.slack_signing_secret = slack_signing_secret

    @staticmethod
    def serves(path: str) -> bool:
        return path == SLACK_PATH or path.startswith("/api/")

    @staticmethod
    def endpoint_name(path: str) -> str:
        return "slack_actions" if path == SLACK_PATH else "api"

    async def route(self, path: str, scope: dict, receive: http.Receive, send: http.Send) -> int:
        r, method = self.receiver, scope["method"]
        if path == SLACK_PATH:
            if method != "POST":
                return await r.refuse(send, scope, 405, f"{path} takes POST, not {method}", [(b"allow", b"POST")])
            return await self._slack(scope, receive, send)
        if m := _INCIDENT_ACTIONS.fullmatch(path):
            if method != "POST":
                return await r.refuse(send, scope, 405, f"{path} takes POST, not {method}", [(b"allow", b"POST")])
            return await self._api_action(int(m.group(1)), scope, receive, send)
        if m := _ACTION.fullmatch(path):
            if method not in ("GET", "HEAD"):
                return await r.refuse(send, scope, 405, f"{path} takes GET, not {method}", [(b"allow", b"GET, HEAD")])
            return await self._api_status(int(m.group(1)), scope, send)
        return await r.refuse(send, scope, 404, f"no such endpoint: {path}; the API has POST "
                                                "/api/v1/incidents/{id}/actions and GET /api/v1/actions/{id}")

    # Slack

    async def _slack(self, scope: dict, receive: http.Receive, send: http.Send) -> int:
        r = self.receiver
        received_at = r.clock()
        if not self.slack_signing_secret:
            return await r.refuse(send, scope, 404, "Slack interactivity is not configured here "
                                                    "(set SLACK_SIGNING_SECRET)")
        headers = _headers(scope)
        body = await self._body(scope, receive, send, headers, r.max_body_bytes)
        if isinstance(body, int):
            return body
        try:
            signature = check_slack_signature(self.slack_signing_secret, headers, body, received_at.timestamp())
        except AuthFailed as exc:
            return await r.unauthorized(send, scope, exc)
        request = InboxRequest(received_at, Door.SLACK, body, kept_headers(Door.SLACK, headers), _client(scope),
                               headers.get("content-type"))
        try:
            await r.write(request, signature)
        except http.NotStored as exc:  # a 503, which Slack shows the person as an error
            return await r.unavailable(send, scope, str(exc))
        return await http.respond(send, 200, b"", b"text/plain; charset=utf-8")

    # REST

    async def _api_action(self, incident_id: int, scope: dict, receive: http.Receive, send: http.Send) -> int:
        r = self.receiver
        received_at = r.clock()
        headers = _headers(scope)
        found = await self._authenticated(scope, send, headers, incident_exists, incident_id, "; not stored, retry")
        if isinstance(found, int):
            return found
        owner, exists = found
        body = await self._body(scope, receive, send, headers, API_MAX_BODY)
        if isinstance(body, int):
            return body
        try:
            check_api_body(body)
        except BadRequest as exc:
            return await r.refuse(send, scope, 400, str(exc))
        if not exists:
            return await r.refuse(send, scope, 404, f"incident {incident_id} not found")
        request = InboxRequest(received_at, Door.API, body, kept_headers(Door.API, headers), _client(scope),
                               headers.get("content-type"), incident_id=incident_id, token_id=owner.id,
                               token_name=owner.name)
        try:
            action_id = await r.write(request, None)
        except http.NotStored as exc:
            return await r.unavailable(send, scope, str(exc))
        return await http.json_answer(send, 202, {"action_id": action_id, "state": "pending",
                                                  "status": f"/api/v1/actions/{action_id}"})

    async def _api_status(self, action_id: int, scope: dict, send: http.Send) -> int:
        r = self.receiver
        found = await self._authenticated(scope, send, _headers(scope), action_status, action_id)
        if isinstance(found, int):
            return found
        _, status = found
        if status is None:
            return await r.refuse(send, scope, 404, f"action {action_id} not found")
        return await http.json_answer(send, 200, {
            "action_id": status["id"], "door": status["door"], "incident_id": status["incident_id"],
            "state": status["state"], "reason": status["reason"],
            "received_at": status["received_at"].isoformat(),
            "applied_at": status["applied_at"].isoformat() if status["applied_at"] else None})

    # Helpers

    async def _authenticated(self, scope: dict, send: http.Send, headers: dict[str, str],
                             lookup: Callable[[Connection, int], T], key: int,
                             not_stored: str = "") -> tuple[TokenOwner, T] | int:
        """The bearer token's owner and what `lookup(conn, key)` finds for them (one connection),
        or the status answered instead: 401 without a live token, 503 without the database."""
        token = _bearer(headers)
        if token is None:
            return await self._no_token(send, scope, "missing Authorization: Bearer <token> header")
        try:
            owner, found = await self._in_thread(self._owner_and, token, lookup, key)
        except SQLAlchemyError as exc:
            why = f"database unavailable: {short_error(exc)}{not_stored}"
            return await self.receiver.unavailable(send, scope, why)
        if owner is None:
            return await self._no_token(send, scope, "unknown or revoked API token")
        return owner, found

    def _owner_and(self, token: str, lookup: Callable[[Connection, int], T],
                   key: int) -> tuple[TokenOwner | None, T | None]:
        with self.receiver.engine.connect() as conn:
            owner = owner_of(conn, token)
            return owner, lookup(conn, key) if owner is not None else None

    async def _in_thread(self, func, *args):
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    async def _body(self, scope: dict, receive: http.Receive, send: http.Send, headers: dict,
                    limit: int) -> bytes | int:
        """The body, or the status answered instead (413, or 499 when the client left)."""
        r = self.receiver
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return await r.too_large(send, scope, limit)
        try:
            return await http.read_body(receive, limit)
        except http.BodyTooLarge:
            return await r.too_large(send, scope, limit)
        except http.ClientGone:
            return 499

    async def _no_token(self, send: http.Send, scope: dict, why: str) -> int:
        self.receiver.metrics.rejected.labels("unauthorized").inc()
        return await self.receiver.refuse(send, scope, 401, f"unauthorized: {why}", CHALLENGE)


def _headers(scope: dict) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _client(scope: dict) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()
