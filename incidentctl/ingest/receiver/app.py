"""The receiver's ASGI app: route, authenticate, bound the body, hand it to the writer, answer.

Status rules (docs/SEMANTICS.md, "The receiver's answers"):
- 200: stored, a known payload (Grafana, Grafana legacy, Alertmanager).
- 202: stored, a JSON object that is not a known payload (e.g. a Grafana 12 custom template);
  kept for inspection and replay, `process` marks it with its error.
- 400: stored, not a JSON object at all (empty, invalid JSON, not UTF-8, an array or scalar):
  the sender is misconfigured. The answer still names the stored id.
- 200 with `duplicate`: a signed request replayed while its signature is valid; stored once before.
- 401: credentials missing or wrong — not stored. 413: body above the limit — not stored.
- 404: no such path (whatever the method); 405: a known path, the wrong method.
- 503: the row was not committed (database down, or busy past write_timeout): not stored, retry.
Every 4xx/5xx answered is logged, one rate-limited WARNING line each (refusals.py).
The action inbox's doors (`/slack/actions`, `/api/…`) answer as doors.py says.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine, text

from incidentctl import __version__
from incidentctl.db.engine import short_error
from incidentctl.errors import DatabaseUnavailable
from incidentctl.ingest.archive import RawAlert, raw_alert
from incidentctl.ingest.inbox import InboxRequest
from incidentctl.ingest.receiver.auth import AuthFailed, AuthPolicy, check_authorization, check_signature
from incidentctl.ingest.receiver.doors import Doors
from incidentctl.ingest.receiver.http import (
    BodyTooLarge,
    ClientGone,
    NotStored,
    Receive,
    Send,
    json_answer,
    read_body,
    respond,
)
from incidentctl.ingest.receiver.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from incidentctl.ingest.receiver.metrics import ReceiverMetrics
from incidentctl.ingest.receiver.refusals import RefusalLog
from incidentctl.ingest.receiver.writer import GroupCommitWriter
from incidentctl.ingest.signatures import Signature
from incidentctl.ingest.sniff import Verdict

log = logging.getLogger(__name__)

WEBHOOK_PATHS = ("/webhook/grafana", "/webhook/alertmanager")
GET_PATHS = ("/health", "/metrics", "/")
LABEL_IN_THREAD_ABOVE = 256 * 1024  # parsing a big body off the event loop keeps others moving
STATUS_BY_VERDICT = {Verdict.KNOWN: 200, Verdict.UNKNOWN_SHAPE: 202, Verdict.NOT_JSON: 400}
# Per-request notes kept in the ASGI scope (its extension keys), for the refusal line.
REASON = "incidentctl.reason"
SIZE = "incidentctl.size"

class Receiver:
    """The ASGI application. `start()`/`stop()` run the writer (the ASGI lifespan calls them)."""

    def __init__(self, engine: Engine, *, max_body_bytes: int, write_timeout: float,
                 auth: AuthPolicy | None = None, clock: Callable[[], datetime],
                 metrics: ReceiverMetrics | None = None, health_timeout: float = 3.0,
                 refusals: RefusalLog | None = None, slack_signing_secret: str = "") -> None:
        self.engine = engine
        self.max_body_bytes = max_body_bytes
        self.write_timeout = write_timeout
        self.health_timeout = health_timeout
        self.auth = auth or AuthPolicy()
        self.clock = clock
        self.metrics = metrics or ReceiverMetrics()
        self.refusals = refusals or RefusalLog(log, secrets=(*self.auth.secrets, slack_signing_secret))
        self.doors = Doors(self, slack_signing_secret)
        m = self.metrics
        self.writer = GroupCommitWriter(
            engine,
            retry_within=write_timeout,
            on_commit=self._count_commit,
            on_error=lambda exc: m.database_errors.inc(),
            on_queue=m.queue_depth.set,
            on_conflict=lambda code: m.conflicts_retried.labels(str(code)).inc(),
            on_lost_answer=lambda outcome: m.commit_answers_lost.labels(outcome).inc(),
        )

    def start(self) -> None:
        self.writer.start()

    def stop(self) -> None:
        self.writer.stop()
        self.refusals.flush()

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        path = scope["path"].rstrip("/") or "/"
        endpoint = _endpoint_name(path)
        try:
            status = await self._route(path, scope, receive, send)
        except Exception:
            log.exception("unexpected error answering %s %s", scope["method"], path)
            status = await self.refuse(send, scope, 500, "internal error")
        if status >= 400 and status != 499:  # 499: the client left, nothing was answered
            self._log_refusal(scope, path, status)
        self.metrics.requests.labels(endpoint, str(status)).inc()
        self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, path: str, scope: dict, receive: Receive, send: Send) -> int:
        method = scope["method"]
        if path in WEBHOOK_PATHS:
            if method not in ("POST", "PUT"):
                return await self.refuse(send, scope, 405, f"{path} takes POST or PUT, not {method}",
                                          [(b"allow", b"POST, PUT")])
            return await self._webhook(scope, receive, send)
        if self.doors.serves(path):
            return await self.doors.route(path, scope, receive, send)
        if path not in GET_PATHS:
            # Whatever the method: a sender treats a 4xx as final, so it must say the path is wrong.
            return await self.refuse(send, scope, 404, f"no such endpoint: {path}; webhooks go to "
                                                        "POST /webhook/grafana (or /webhook/alertmanager)")
        if method not in ("GET", "HEAD"):
            return await self.refuse(send, scope, 405, f"{path} takes GET, not {method}",
                                      [(b"allow", b"GET, HEAD")])
        if path == "/health":
            return await self._health(send, scope)
        if path == "/metrics":
            return await respond(send, 200, self.metrics.render(), METRICS_CONTENT_TYPE.encode())
        return await json_answer(send, 200, {
            "name": "incidentctl", "version": __version__,
            "endpoints": {"POST /webhook/grafana": "store a Grafana or Alertmanager webhook",
                          "POST /webhook/alertmanager": "alias of /webhook/grafana",
                          "GET /health": "200 when the database answers, 503 when not",
                          "GET /metrics": "Prometheus metrics",
                          **Doors.ENDPOINTS}})

    async def _webhook(self, scope: dict, receive: Receive, send: Send) -> int:
        received_at = self.clock()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return await self.too_large(send, scope)
        try:  # before reading the body: no reason to read what we will refuse
            check_authorization(self.auth, headers)
        except AuthFailed as exc:
            return await self.unauthorized(send, scope, exc)
        try:
            body = await read_body(receive, self.max_body_bytes)
        except BodyTooLarge:
            scope[SIZE] = f"over {self.max_body_bytes} bytes"
            return await self.too_large(send, scope)
        except ClientGone:
            self.metrics.rejected.labels("client_gone").inc()
            return 499  # nginx's name for it; nothing is sent back
        scope[SIZE] = len(body)
        try:
            signature = check_signature(self.auth, headers, body, received_at.timestamp())
        except AuthFailed as exc:
            return await self.unauthorized(send, scope, exc)
        client = scope.get("client")
        make = lambda: raw_alert(  # noqa: E731
            body, received_at=received_at, remote_addr=client[0] if client else None,
            user_agent=headers.get("user-agent"), content_type=headers.get("content-type"))
        if len(body) > LABEL_IN_THREAD_ABOVE:
            raw = await asyncio.get_running_loop().run_in_executor(None, make)
        else:
            raw = make()
        return await self._store(send, scope, raw, signature)

    async def _store(self, send: Send, scope: dict, raw: RawAlert, signature: Signature | None) -> int:
        try:
            row_id = await self.write(raw, signature)
        except NotStored as exc:
            return await self.unavailable(send, scope, str(exc))
        label = raw.label
        answer = {"stored": True, "id": row_id, "source": raw.source or label.source,
                  "alerts": label.alert_count, "status": label.status}
        if row_id is None:  # a replay of a signed request already stored: 200, nothing written
            self.metrics.replays.inc()
            del answer["id"]
            return await json_answer(send, 200, {**answer, "duplicate": True})
        status = STATUS_BY_VERDICT[label.verdict]
        if label.parse_error:
            answer["parse_error"] = label.parse_error
            scope[REASON] = f"stored as #{row_id}, but {label.parse_error}"
        return await json_answer(send, status, answer)

    async def write(self, row: RawAlert | InboxRequest, signature: Signature | None) -> int | None:
        """Commits `row` through the group-commit writer: its id, or None for a replay of a signed
        request already stored. Raises NotStored when it was not written (answer 503)."""
        # Answer 2xx only for a committed row, and 503 only for a row that was never written:
        # a row still queued after write_timeout is withdrawn (503); a row the writer has already
        # started on is waited for, its commit deciding the answer (bounded by the database's
        # own timeouts).
        future = self.writer.submit(row, signature)
        waiting = asyncio.wrap_future(future)
        done, _ = await asyncio.wait({waiting}, timeout=self.write_timeout)
        if not done and future.cancel():
            self.metrics.rejected.labels("database_timeout").inc()
            raise NotStored(f"database did not take the row within {self.write_timeout:g}s; not stored, retry")
        try:
            return await waiting
        except DatabaseUnavailable as exc:
            self.metrics.rejected.labels("database_unavailable").inc()
            raise NotStored(f"{exc}; not stored, retry") from None

    async def unavailable(self, send: Send, scope: dict, reason: str) -> int:
        """503 with Retry-After: nothing was stored."""
        return await self.refuse(send, scope, 503, reason, [(b"retry-after", b"5")])

    async def _health(self, send: Send, scope: dict) -> int:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, self._ping), self.health_timeout)
        except Exception as exc:  # any failure of the probe means "not healthy"; the reason is shown
            self.metrics.database_errors.inc()
            reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else short_error(exc)
            scope[REASON] = f"unhealthy: database {reason}"
            return await json_answer(send, 503, {"status": "unavailable", "database": reason})
        return await json_answer(send, 200, {"status": "ok", "database": "ok"})

    def _ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def too_large(self, send: Send, scope: dict, limit: int | None = None) -> int:
        self.metrics.rejected.labels("too_large").inc()
        return await self.refuse(send, scope, 413, f"body larger than {limit or self.max_body_bytes} bytes; "
                                 "not stored", close=True)

    async def unauthorized(self, send: Send, scope: dict, exc: AuthFailed) -> int:
        self.metrics.rejected.labels("unauthorized").inc()
        return await self.refuse(send, scope, 401, f"unauthorized: {exc}",
                                  [(b"www-authenticate", self.auth.challenge.encode())])

    async def refuse(self, send: Send, scope: dict, status: int, error: str,
                      headers: list[tuple[bytes, bytes]] | None = None, close: bool = False) -> int:
        """Answers `{"error": error}`; the same words go to the refusal log."""
        scope[REASON] = error
        return await json_answer(send, status, {"error": error}, headers, close)

    def _log_refusal(self, scope: dict, path: str, status: int) -> None:
        size = scope.get(SIZE)  # bytes read, or why not
        if isinstance(size, int):
            size = f"{size} bytes"
        elif size is None:
            declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
            size = f"{int(declared)} bytes declared" if declared.isdigit() else "unread"
        client = scope.get("client")
        self.refusals.refused(status, scope.get(REASON, ""), method=scope["method"], path=path,
                              client=client[0] if client else None, size=size)

    def _count_commit(self, rows: list[RawAlert | InboxRequest]) -> None:
        m = self.metrics
        m.commit_batch.observe(len(rows))
        for raw in rows:
            if isinstance(raw, InboxRequest):
                m.actions_stored.labels(raw.door).inc()
                continue
            m.bodies_stored.labels(raw.source or raw.label.source).inc()
            m.bytes_stored.inc(len(raw.body))


def _endpoint_name(path: str) -> str:
    if path in WEBHOOK_PATHS:
        return "webhook"
    if Doors.serves(path):
        return Doors.endpoint_name(path)
    return {"/health": "health", "/metrics": "metrics", "/": "root"}.get(path, "other")
