"""Which database URLs incidentctl runs on, and a one-line exit 2 for the others; readers."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import pymysql
import pytest
from sqlalchemy import event, func, make_url, select
from sqlalchemy.exc import OperationalError

from incidentctl.db.engine import make_engine, reader, short_error, supported_url, tls_pointless
from incidentctl.db.schema import deliveries
from incidentctl.errors import UnsupportedDatabase
from tests.support.cli import invoke, run_cli

SUPPORTED = [
    ("sqlite:////var/lib/incidentctl.db", "sqlite+pysqlite:////var/lib/incidentctl.db"),  # sqlite's default driver
    ("sqlite+pysqlite:///rel.db", "sqlite+pysqlite:///rel.db"),
    ("mysql+pymysql://u:p@db:3306/ict", "mysql+pymysql://u:p@db:3306/ict"),
    ("mysql://u:p@db/ict", "mysql+pymysql://u:p@db/ict"),  # no driver: PyMySQL, the one installed
    ("mariadb://u@db/ict?charset=utf8mb4", "mariadb+pymysql://u@db/ict?charset=utf8mb4"),
]

UNSUPPORTED = [
    ("postgres://u:s3cret@db/ict", "unsupported database 'postgres'"),
    ("postgresql+psycopg2://u:s3cret@db/ict", "unsupported database 'postgresql'"),
    ("oracle://u:s3cret@db", "unsupported database 'oracle'"),
    ("mysql+mysqldb://u:s3cret@db/ict", "unsupported driver 'mysqldb'; use mysql+pymysql://"),  # bulk.py speaks PyMySQL
    ("sqlite+aiosqlite:///x.db", "unsupported driver 'aiosqlite'"),
    ("just words", "is not a URL"),
]


@pytest.mark.parametrize("text,expected", SUPPORTED)
def test_supported_urls(text, expected):
    assert supported_url(text).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("text,message", UNSUPPORTED)
def test_unsupported_urls_name_the_problem_and_hide_the_password(text, message):
    with pytest.raises(UnsupportedDatabase) as raised:
        supported_url(text, source="INCIDENTCTL_DATABASE_URL")
    text_ = str(raised.value)
    assert text_.startswith("INCIDENTCTL_DATABASE_URL ") and message in text_ and "s3cret" not in text_
    assert "\n" not in text_ and raised.value.exit_code == 2


def test_a_url_without_driver_works_on_the_backend(db_url):
    # mysql+pymysql://… → mysql://…, sqlite+pysqlite:///… → sqlite:///…
    bare = db_url.replace("+pymysql", "").replace("+pysqlite", "")
    result = invoke("db", "status", env={"INCIDENTCTL_DATABASE_URL": bare})
    assert result.exit_code == 0 and "schema version" in result.output, result.output


@pytest.mark.slow
@pytest.mark.parametrize("command", [["list"], ["serve"], ["db", "upgrade"], ["doctor"]])
def test_unsupported_url_through_the_console_script_is_one_line_exit_2(cli_env, command):
    env = {**cli_env, "INCIDENTCTL_DATABASE_URL": "postgres://ict:s3cret@db.example:5432/ict"}
    run = run_cli(*command, env=env)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr and "s3cret" not in run.stderr
    assert run.stderr.startswith("error: INCIDENTCTL_DATABASE_URL postgres://ict:***@db.example:5432/ict: "
                                 "unsupported database 'postgres'")


def test_a_reader_reads_while_a_writer_holds_its_transaction(engine):
    # SQLite: a plain connection begins IMMEDIATE and would wait for the writer's lock (the busy
    # timeout, 10 s); a reader begins DEFERRED and reads the last committed state at once.
    with engine.begin() as conn:
        conn.execute(deliveries.insert().values(attempted_at=datetime.now(timezone.utc), route="r", changes=1,
                                                outcome="ok"))
    with engine.connect() as writer, writer.begin():
        writer.execute(deliveries.delete())
        started = time.monotonic()
        with reader(engine).connect() as conn, conn.begin():
            assert conn.scalar(select(func.count()).select_from(deliveries)) == 1
        assert time.monotonic() - started < 2


TLS_POINTLESS = [
    ("mysql+pymysql://u@127.0.0.1:3306/ict", True),
    ("mysql+pymysql://u@127.0.0.2/ict", True),  # all of 127.0.0.0/8 is loopback
    ("mysql+pymysql://u@[::1]:3306/ict", True),
    ("mysql+pymysql://u@localhost/ict", True),
    ("mysql+pymysql://u@LocalHost/ict", True),
    ("mysql+pymysql://u@/ict?unix_socket=/run/mysqld/mysqld.sock", True),
    ("mysql+pymysql://u@db.internal:3306/ict", False),  # leaves the host: PyMySQL's TLS as it decides
    ("mysql+pymysql://u@10.0.0.7/ict", False),
    ("mysql+pymysql://u@[2001:db8::1]/ict", False),
    ("mysql+pymysql://u@127.0.0.1/ict?ssl_ca=/etc/ca.pem", False),  # TLS asked for: given
    ("mysql+pymysql://u@localhost/ict?ssl_verify_cert=true", False),
]


@pytest.mark.parametrize("url,expected", TLS_POINTLESS)
def test_tls_is_left_off_only_where_the_connection_never_leaves_the_host(url, expected):
    assert tls_pointless(make_url(url)) is expected


@pytest.mark.backends("mysql")
def test_a_loopback_connection_runs_without_tls(db_url):
    url = make_url(db_url).difference_update_query(["ssl_disabled"])  # as a user writes it (the suite adds it)
    engine = make_engine(url)
    if not tls_pointless(engine.url):
        pytest.fail(f"the test server is expected on this host: {engine.url.host}")
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection.ssl is False
        assert conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Ssl_cipher'").one()[1] == ""
    engine.dispose()


# (error, what short_error says): the driver's message without SQLAlchemy's statement dump, and
# what a code means where the message does not say.
SHORT_ERRORS = [
    (OperationalError("SELECT 1", {}, pymysql.err.OperationalError(1047, "WSREP has not yet prepared node for "
                                                                          "application use")),
     "(1047, 'WSREP has not yet prepared node for application use'): this Galera node is not in the Primary "
     "component (it lost quorum) and refuses queries"),
    (pymysql.err.OperationalError(1047, "WSREP has not yet prepared node for application use"),
     "(1047, 'WSREP has not yet prepared node for application use'): this Galera node is not in the Primary "
     "component (it lost quorum) and refuses queries"),
    (OperationalError("SELECT 1", {}, pymysql.err.OperationalError(2003, "Can't connect to MySQL server")),
     "(2003, \"Can't connect to MySQL server\")"),
    (OperationalError("SELECT 1", {}, pymysql.err.InterfaceError()), "InterfaceError"),
    (ValueError("first line\nsecond"), "first line"),
    (TimeoutError(), "TimeoutError"),
]


@pytest.mark.parametrize(("error", "said"), SHORT_ERRORS)
def test_short_error(error, said):
    assert short_error(error) == said


def test_a_connection_that_cannot_be_rolled_back_on_return_is_one_warning_line(engine, caplog):
    # A server that refuses the pool's ROLLBACK: SQLAlchemy logs an ERROR with the whole
    # traceback at every hand-back, several a second in `run`.
    refused = OperationalError("ROLLBACK", {}, pymysql.err.OperationalError(1047, "WSREP has not yet prepared "
                                                                                 "node for application use"))

    def refuse(dbapi_connection, record, state):
        raise refused

    event.listen(engine.pool, "reset", refuse)
    try:
        with caplog.at_level(logging.WARNING, logger="sqlalchemy.pool"), engine.connect() as conn:
            conn.execute(select(func.count()).select_from(deliveries))
    finally:
        event.remove(engine.pool, "reset", refuse)
    (record,) = [r for r in caplog.records if r.name.startswith("sqlalchemy.pool")]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == ("a connection handed back to the pool could not be rolled back and was "
                                   f"discarded: {short_error(refused)}")
    with engine.connect() as fresh:  # the pool goes on with a new connection
        assert fresh.execute(select(func.count()).select_from(deliveries)).scalar() == 0


@pytest.mark.backends("mysql")
@pytest.mark.parametrize(("code", "dropped"), [(1047, True), (1290, True), (1836, True), (1062, False), (1213, False)])
def test_a_server_that_takes_no_writes_has_the_pools_connections_made_afresh(engine, code, dropped):
    # After a failover the demoted primary stays up read-only (1290): a pooled connection to it
    # would be used until pool_recycle. Taken as a disconnect, the pool's connections are made
    # again, through the balancer or the moved address, to the server that takes writes.
    refusal = pymysql.err.OperationalError(code, "refused")

    def refuse(conn, cursor, statement, *args):
        if statement.startswith("INSERT"):
            raise refusal

    with engine.connect() as conn:
        before = conn.connection.dbapi_connection.thread_id()
    event.listen(engine, "before_cursor_execute", refuse)
    try:
        with pytest.raises(OperationalError) as failed, engine.begin() as conn:
            conn.execute(deliveries.insert().values(route="default"))
    finally:
        event.remove(engine, "before_cursor_execute", refuse)
    assert failed.value.connection_invalidated is dropped
    with engine.connect() as conn:
        after = conn.connection.dbapi_connection.thread_id()
    assert (after != before) is dropped
