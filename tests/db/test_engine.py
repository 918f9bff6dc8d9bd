"""Which database URLs incidentctl runs on, and a one-line exit 2 for the others; readers."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from incidentctl.db.engine import reader, supported_url
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
