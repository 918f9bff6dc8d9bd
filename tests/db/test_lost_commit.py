"""lost_commit: after a COMMIT whose answer was lost, reading whether it committed, on MariaDB
(the server decides while the reader waits) and SQLite (never lost, never read)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pymysql
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from incidentctl.db.engine import make_engine
from incidentctl.db.lost_commit import answer_lost, landed
from incidentctl.db.schema import grafana_alerts
from incidentctl.ingest.archive import insert_raw_alerts, raw_alert
from tests.support.lost_answers import lose_the_answer

FIXED = datetime(2026, 5, 4, 3, 2, 1, tzinfo=timezone.utc)


def _visible(engine, row_id: int) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(grafana_alerts.c.id).where(grafana_alerts.c.id == row_id)).first() is not None


@pytest.mark.backends("mysql")
@pytest.mark.parametrize(("ending", "after", "outcome"), [
    ("COMMIT", 0.5, True),  # decided while the reader waits
    ("ROLLBACK", 0.5, False),
    ("COMMIT", 0.0, True),  # decided before the reader came
    ("ROLLBACK", 0.0, False),
    (None, 0.0, None),  # still open past the wait: not known
])
def test_landed_waits_for_the_inserting_transaction_to_end(engine, ending, after, outcome):
    writer = engine.connect()
    writer.begin()
    (row_id,) = insert_raw_alerts(writer, [raw_alert(b'{"a": 1}', received_at=FIXED)])
    assert not _visible(engine, row_id)  # a plain read would say "not there" now

    def end() -> None:
        time.sleep(after)
        if ending:
            writer.execute(text(ending))

    ender = threading.Thread(target=end)
    ender.start()
    if not after:
        ender.join()
    started = time.monotonic()
    try:
        assert landed(engine, grafana_alerts, row_id, wait=1.5) is outcome
        waited = time.monotonic() - started
    finally:
        ender.join()
        writer.close()
    assert waited >= (after * 0.8 if ending else 1.5)
    assert _visible(engine, row_id) is bool(outcome)


@pytest.mark.backends("mysql")
def test_landed_outwaits_the_engines_read_timeout_a_second_at_a_time(engine, db_url):
    writer = engine.connect()
    writer.begin()
    (row_id,) = insert_raw_alerts(writer, [raw_alert(b"{}", received_at=FIXED)])
    ender = threading.Timer(3.0, writer.commit)
    ender.start()
    short = make_engine(db_url, io_timeout=2)  # as the receiver's engine, with a shorter timeout
    try:
        assert landed(short, grafana_alerts, row_id, wait=6) is True
    finally:
        ender.join()
        writer.close()
        short.dispose()


@pytest.mark.backends("mysql")
def test_landed_leaves_the_pooled_connection_as_it_found_it(engine):
    with engine.connect() as conn:
        before = conn.execute(text("SELECT @@SESSION.innodb_lock_wait_timeout")).scalar()
        conn.connection.info["marked"] = True
    landed(engine, grafana_alerts, 1, wait=3)
    with engine.connect() as conn:
        assert conn.connection.info.get("marked")  # the same pooled connection
        assert conn.execute(text("SELECT @@SESSION.innodb_lock_wait_timeout")).scalar() == before


@pytest.mark.backends("mysql")
def test_a_dropped_connection_is_a_lost_answer_and_a_refusal_is_not(engine):
    with engine.connect() as conn, lose_the_answer(engine, server_does="COMMIT"):
        conn.begin()
        (row_id,) = insert_raw_alerts(conn, [raw_alert(b"{}", received_at=FIXED)])
        with pytest.raises(DBAPIError) as lost:
            conn.commit()
    assert answer_lost(lost.value) and _visible(engine, row_id)
    with engine.connect() as conn, pytest.raises(IntegrityError) as refused:
        conn.execute(grafana_alerts.insert().values(id=row_id, **raw_alert(b"{}", received_at=FIXED).row()))
    assert not answer_lost(refused.value)



# (the driver's error at COMMIT, whether SQLAlchemy dropped the connection, whether the answer was lost)
COMMIT_FAILURES = [
    (2013, True, True),  # the connection lost, or its read timed out, during the COMMIT
    (2006, True, True),  # the server gone
    (1047, True, False),  # a Galera node outside the Primary component: dropped, but it answered
    (1290, True, False),  # a read-only server: dropped, but it answered
    (1180, False, False),  # the server failed the COMMIT and rolled back
    (1213, False, False),  # certification lost: rolled back
]


@pytest.mark.parametrize(("code", "dropped", "lost"), COMMIT_FAILURES)
def test_which_commit_failures_lost_their_answer(code, dropped, lost):
    error = OperationalError("COMMIT", {}, pymysql.err.OperationalError(code, "x"), connection_invalidated=dropped)
    assert answer_lost(error) is lost


@pytest.mark.backends("sqlite")
def test_on_sqlite_nothing_is_read(engine):
    with engine.begin() as conn:
        (row_id,) = insert_raw_alerts(conn, [raw_alert(b"{}", received_at=FIXED)])
    assert landed(engine, grafana_alerts, row_id, wait=1) is None
