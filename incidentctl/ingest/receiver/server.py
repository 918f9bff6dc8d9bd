"""Runs the receiver on uvicorn: C HTTP parser (httptools), uvloop, graceful SIGTERM.

SIGTERM stops accepting, lets in-flight requests finish (up to `--graceful-timeout`), then the
lifespan shutdown drains the writer; the process exits 0. At start, when the database cannot
hold a body as large as `max_body_bytes` (`archive.body_room`), it warns and lowers the limit
(`storable_body_limit`): such a body would get a 503 at every retry, while above the lowered
limit it gets a final 413 at once. uvicorn's access log (`--access-log`) passes through a filter
that masks every query-string value and any configured secret in the path.
"""

from __future__ import annotations

import gc
import logging
import signal

import uvicorn
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from incidentctl.config import Settings
from incidentctl.db.engine import database_url, describe_url, ensure_schema, make_engine, short_error
from incidentctl.durations import utc_now
from incidentctl.errors import DatabaseUnavailable
from incidentctl.ingest.archive import body_room
from incidentctl.ingest.receiver.app import Receiver
from incidentctl.ingest.receiver.auth import AuthPolicy

log = logging.getLogger("incidentctl.ingest.receiver")

# A stuck query must not hold the writer forever: the socket gives up after this long.
DB_IO_TIMEOUT = 10.0


def build_receiver(settings: Settings) -> Receiver:
    """The receiver for these settings. A database that is down now is not fatal: the receiver
    answers 503 until it returns. A schema that is missing or old is (run `db upgrade`)."""
    engine = make_engine(database_url(settings), connect_timeout=settings.db_connect_timeout,
                         io_timeout=DB_IO_TIMEOUT, pool_size=4)
    max_body_bytes = settings.max_body_bytes
    try:
        ensure_schema(engine)
        max_body_bytes = storable_body_limit(engine, max_body_bytes)
    except DatabaseUnavailable as exc:
        log.warning("%s; answering 503 until it is back", exc)
    return Receiver(engine, max_body_bytes=max_body_bytes, write_timeout=settings.write_timeout,
                    auth=AuthPolicy.from_settings(settings), clock=utc_now,
                    slack_signing_secret=settings.slack_signing_secret)


def storable_body_limit(engine: Engine, max_body_bytes: int) -> int:
    """The body limit the receiver applies: max_body_bytes, or less with a WARNING when the
    database cannot store bodies that large (max_allowed_packet). A body it could not store would
    be answered 503 at every retry; above the lowered limit it gets a 413 at once, and the
    refusal is logged. Not fatal: every smaller body is still received."""
    try:
        with engine.connect() as conn:
            room = body_room(conn)
    except SQLAlchemyError as exc:
        log.warning("could not read max_allowed_packet (%s); body limit stays %d bytes", short_error(exc),
                    max_body_bytes)
        return max_body_bytes
    problem = room.problem(max_body_bytes)
    if problem is None or room.largest is None:  # a problem always has a largest
        return max_body_bytes
    log.warning("%s. Until then bodies over %d bytes are refused with 413.", problem, room.largest)
    return room.largest


def serve(settings: Settings, *, host: str, port: int, access_log: bool = False,
          graceful_timeout: float = 30.0) -> None:
    """Serves until SIGTERM/SIGINT; in-flight requests finish (up to graceful_timeout) first."""
    receiver = build_receiver(settings)
    auth = receiver.auth
    log.info("incidentctl receiver on http://%s:%d, database %s, auth: %s", host, port,
             describe_url(receiver.engine.url), _auth_summary(auth))
    config = uvicorn.Config(
        receiver, host=host, port=port, http="httptools", loop="auto", lifespan="on",
        access_log=access_log, log_level=settings.log_level.lower(), server_header=False,
        # annotated int, but uvicorn waits with asyncio.timeout, which takes seconds as a float
        timeout_graceful_shutdown=graceful_timeout,  # type: ignore[arg-type]
    )
    logging.getLogger("uvicorn.access").addFilter(AccessLogMasked(auth.secrets))  # Config set up logging
    # uvicorn re-raises the signal that stopped it once it has shut down; a no-op handler in its
    # place makes a clean SIGTERM/SIGINT shutdown exit 0 rather than "killed by signal".
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    # Objects made at start-up live for the whole run: keep them out of the collector's sweeps,
    # whose full passes otherwise show up as 40 ms stalls in the p99 under load.
    gc.collect()
    gc.freeze()
    uvicorn.Server(config).run()
    receiver.engine.dispose()
    log.info("receiver stopped")


class AccessLogMasked(logging.Filter):
    """Masks the values of the query string in uvicorn's access log lines, and any configured
    secret in the path: a sender may put a token in the URL (`?token=…`), and the access log would
    keep it. The receiver itself never reads the query string."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn's access record: (client, method, path with query, HTTP version, status)
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            target = mask_query(args[2])
            for secret in self.secrets:
                target = target.replace(secret, "***")
            record.args = (*args[:2], target, *args[3:])
        return True


def mask_query(target: str) -> str:
    """`/path?a=1&token=s&bare` → `/path?a=***&token=***&***`: names stay, no value is shown."""
    path, _, query = target.partition("?")
    if not query:
        return path
    masked = []
    for item in query.split("&"):
        name, equals, _ = item.partition("=")
        masked.append(f"{name}=***" if equals else "***")
    return f"{path}?" + "&".join(masked)


def _auth_summary(auth: AuthPolicy) -> str:
    parts = [name for name, on in (("bearer", auth.bearer_token), ("basic", auth.basic_user),
                                   ("hmac", auth.hmac_secret)) if on]
    return "+".join(parts) or "off"
