"""Database wiring: which URL, and an Engine tuned for it (SQLite WAL, MySQL timeouts).

The URL is INCIDENTCTL_DATABASE_URL, else one built from DB_*, else the embedded SQLite file.
`supported_url` admits SQLite and MySQL/MariaDB through PyMySQL (whose escaping
mariadb_insert.py relies on) and raises UnsupportedDatabase, a ConfigError (exit 2), for
anything else. SQLite: WAL, a busy timeout, `synchronous=FULL` (a 2xx promises the row survives
power loss), and SQLAlchemy, not the driver, emits `BEGIN IMMEDIATE`, so a writer waits for the
lock instead of failing halfway. MySQL: a connect timeout, optional socket timeouts, pre-ping,
and no TLS on a connection that never leaves the host (`tls_pointless`).
`database_errors()` turns connection failures into DatabaseUnavailable (exit 3); `reader(engine)`
is the engine for reading only (on SQLite its transactions begin DEFERRED and take no write lock).
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError

from incidentctl.config import Settings
from incidentctl.db.migrations import schema_status, upgrade
from incidentctl.db.retry import conflict_code, error_code
from incidentctl.errors import DatabaseConflict, DatabaseUnavailable, SchemaNotReady, UnsupportedDatabase

SQLITE_BUSY_TIMEOUT_MS = 10_000
SUPPORTED_URLS = "sqlite:///PATH or mysql+pymysql://USER:PASSWORD@HOST:PORT/DATABASE"
# backend → the drivers incidentctl runs on (mariadb_insert.py escapes by PyMySQL's rules); the first is
# the one a URL without a driver gets.
DRIVERS = {"sqlite": ("pysqlite",), "mysql": ("pymysql",), "mariadb": ("pymysql",)}


def default_sqlite_path() -> Path:
    """The embedded default: $XDG_DATA_HOME/incidentctl/incidentctl.db."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "incidentctl" / "incidentctl.db"


def database_url(settings: Settings) -> URL:
    """INCIDENTCTL_DATABASE_URL, else MySQL from DB_*, else the SQLite file."""
    if settings.database_url:
        return supported_url(settings.database_url, source="INCIDENTCTL_DATABASE_URL")
    if settings.db_host:
        return URL.create(
            "mysql+pymysql",
            username=settings.db_user or None,
            password=settings.db_password or None,
            host=settings.db_host,
            port=settings.db_port,
            database=settings.db_name,
            query={"charset": "utf8mb4"},
        )
    path = Path(settings.sqlite_path) if settings.sqlite_path else default_sqlite_path()
    return URL.create("sqlite+pysqlite", database=str(path))


def supported_url(url: URL | str, source: str = "database URL") -> URL:
    """`url` checked: SQLite, or MySQL/MariaDB through PyMySQL (a URL without a driver, e.g.
    `mysql://…`, gets PyMySQL, the driver installed with incidentctl). Raises
    UnsupportedDatabase naming `source`; the message never shows the password."""
    try:
        url = make_url(url)
    except ArgumentError:
        raise UnsupportedDatabase(f"{source} is not a URL: use {SUPPORTED_URLS}") from None
    backend, _, driver = url.drivername.partition("+")
    if backend not in DRIVERS:
        raise UnsupportedDatabase(f"{source} {describe_url(url)}: unsupported database {backend!r}; incidentctl "
                                  f"runs on SQLite and MySQL 8 / MariaDB 10.6+: use {SUPPORTED_URLS}")
    if not driver:
        return url.set(drivername=f"{backend}+{DRIVERS[backend][0]}")
    if driver not in DRIVERS[backend]:
        raise UnsupportedDatabase(f"{source} {describe_url(url)}: unsupported driver {driver!r}; use "
                                  f"{backend}+{DRIVERS[backend][0]}://")
    return url


def describe_url(url: URL) -> str:
    """The URL for people: password hidden."""
    return url.render_as_string(hide_password=True)


def is_sqlite(engine_or_url: Engine | URL) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else engine_or_url
    return url.get_backend_name() == "sqlite"


def make_engine(url: URL | str, *, connect_timeout: float = 3.0, io_timeout: float | None = None,
                pool_size: int = 5, **kwargs) -> Engine:
    """An Engine for `url`. SQLite: WAL, busy timeout, IMMEDIATE transactions. MySQL: connect
    timeout, optional socket read/write timeout (`io_timeout`), pre-ping. Raises
    UnsupportedDatabase."""
    url = supported_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    connect_args: dict = {"connect_timeout": max(1, int(round(connect_timeout)))}
    if io_timeout:
        connect_args.update(read_timeout=io_timeout, write_timeout=io_timeout)
    if url.get_backend_name() in ("mysql", "mariadb") and "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    if tls_pointless(url):
        connect_args["ssl_disabled"] = True
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_recycle=3600,
        pool_size=pool_size,
        connect_args=connect_args,
        **kwargs,
    )
    event.listen(engine, "handle_error", _stale_server)
    return _quiet_resets(engine)


class QuietReset(logging.Filter):
    """SQLAlchemy's pool rolls back each connection handed back to it, and when the server refuses
    that ROLLBACK it discards the connection and logs an ERROR with the whole traceback, at every
    hand-back: in `run` and `serve`, several a second for as long as the server refuses (as a
    Galera node that lost quorum did, before STALE_SERVER). One WARNING line with the driver's
    message says the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Exception during reset or similar" and record.exc_info:
            record.msg = "a connection handed back to the pool could not be rolled back and was discarded: %s"
            record.args = (short_error(record.exc_info[1] or Exception()),)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


# Errors after which a MySQL/MariaDB connection is worth no more than a lost one: the server
# behind it takes no writes — a Galera node outside the Primary component (1047), a server made
# read-only, as a primary demoted by a failover is (1290, 1836). Taken as a disconnect, they make
# SQLAlchemy drop every connection the pool holds, so the next ones are made afresh (through a
# balancer or a moved address, to a server that takes writes) instead of being used until
# pool_recycle, and no ROLLBACK is sent on a connection the server refuses it on.
GALERA_NOT_READY = 1047  # a Galera node outside the Primary component: every query but SHOW and SET
STALE_SERVER = frozenset({GALERA_NOT_READY, 1290, 1836})


def _stale_server(context: ExceptionContext) -> None:
    if error_code(context.original_exception) in STALE_SERVER:
        context.is_disconnect = True


def _quiet_resets(engine: Engine) -> Engine:
    logger = engine.pool.logger
    if isinstance(logger, logging.Logger) and not any(isinstance(f, QuietReset) for f in logger.filters):
        logger.addFilter(QuietReset())
    return engine


def tls_pointless(url: URL) -> bool:
    """Whether a MySQL/MariaDB URL reaches the server without leaving this host (a loopback
    address, `localhost` or a Unix socket) and asks nothing of TLS (no `ssl*` option). PyMySQL
    1.2 tries TLS wherever the server offers it and builds a certificate context for every
    connection (~28 ms of CPU) even where the server has none; on loopback TLS protects nothing."""
    if any(key.startswith("ssl") for key in url.query):
        return False
    if "unix_socket" in url.query:
        return True
    host = url.host or "localhost"
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _sqlite_engine(url: URL, **kwargs) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not the driver, emit BEGIN (the documented pysqlite recipe).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")  # a 2xx promises the row survives power loss
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # IMMEDIATE takes the write lock up front, so a writer waits (busy_timeout) instead of
        # failing when it upgrades a read lock. Read-only paths may ask for DEFERRED.
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return _quiet_resets(engine)


def reader(engine: Engine) -> Engine:
    """`engine` for reading only: on SQLite its transactions begin DEFERRED, taking no write lock,
    so a reader neither waits for a writer nor holds one up; elsewhere the same as `engine`."""
    return engine.execution_options(sqlite_begin="DEFERRED")


def engine_from_settings(settings: Settings, **kwargs) -> Engine:
    return make_engine(database_url(settings), connect_timeout=settings.db_connect_timeout, **kwargs)


def ensure_schema(engine: Engine) -> None:
    """Checks the schema is current. The embedded SQLite default upgrades itself; MySQL needs
    `incidentctl db upgrade` (run by whoever owns the schema). Raises SchemaNotReady or
    DatabaseUnavailable."""
    try:
        status = schema_status(engine)
        if status.current == status.latest:
            return
        if is_sqlite(engine) and status.current < status.latest:
            upgrade(engine)
            return
    except (OperationalError, DBAPIError) as exc:
        raise DatabaseUnavailable(f"database {describe_url(engine.url)} is unavailable: {short_error(exc)}") from exc
    if status.current > status.latest:
        raise SchemaNotReady(
            f"database schema is version {status.current}, newer than this incidentctl knows "
            f"({status.latest}); upgrade incidentctl"
        )
    raise SchemaNotReady(
        f"database schema is at version {status.current}, needs {status.latest}: run `incidentctl db upgrade`"
    )


# What a driver error means, where its own message does not say.
MEANINGS = {GALERA_NOT_READY: "this Galera node is not in the Primary component (it lost quorum) and refuses queries"}


def short_error(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's statement dump (and what it means, if MEANINGS knows)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        message = str(exc.orig).strip() or type(exc.orig).__name__  # PyMySQL's InterfaceError() says nothing
    else:  # the driver's own error (as the pool logs it), or any other
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    code = error_code(exc)
    meaning = MEANINGS.get(code) if code is not None else None
    return f"{message}: {meaning}" if meaning else message


@contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """Turns connection-level driver errors into DatabaseUnavailable naming the database; a
    conflict (deadlock, certification failure, lock wait timeout) that reaches here is
    DatabaseConflict, not an outage."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        if conflict_code(exc) is not None:
            raise DatabaseConflict(f"database {describe_url(engine.url)}: {short_error(exc)}") from exc
        raise DatabaseUnavailable(f"database {describe_url(engine.url)} is unavailable: {short_error(exc)}") from exc
