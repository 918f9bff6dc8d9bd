"""bulk: multi-row INSERTs rendered by incidentctl on MariaDB store exactly what SQLAlchemy would."""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymysql.converters import escape_string
from sqlalchemy import event, select

from incidentctl.db import mariadb_insert as bulk
from incidentctl.db.capabilities import capabilities
from incidentctl.db.schema import UtcDateTime, grafana_alerts, incident_events, incidents

ODD_TEXT = ["plain", "it's", 'say "hi"', "back\\slash", "nul\x00byte", "new\nline\r\n", "ctrl-z \x1a", "50% %s %(x)s",
            "ünïcødé ✓ 🚨", "", "?"]


def _mariadb_only(engine) -> None:
    # Against MySQL 8 there is nothing to test (bulk is MariaDB's path); CI's server is MariaDB
    # and says so (INCIDENTCTL_TEST_REQUIRE_MARIADB=1), so there these tests cannot skip.
    with engine.connect() as conn:
        if not capabilities(conn).bulk_insert:
            if os.environ.get("INCIDENTCTL_TEST_REQUIRE_MARIADB") == "1":
                pytest.fail("INCIDENTCTL_TEST_REQUIRE_MARIADB=1 but the MySQL test server is not MariaDB")
            pytest.skip("bulk statements are for MariaDB (this server is MySQL)")


@pytest.mark.backends("mysql")
def test_literals_match_pymysql(engine):
    # The renderer writes what PyMySQL's own escaping writes, for every kind of value we store.
    _mariadb_only(engine)
    with engine.connect() as conn:
        literal = bulk._literal(conn)
        dbapi = conn.connection.dbapi_connection
        values = [*ODD_TEXT, None, 0, -5, 2**62, True, b"\x00\xff'\\", b"",
                  datetime(2026, 1, 2, 3, 4, 5), datetime(2026, 1, 2, 3, 4, 5, 7), datetime(1, 1, 1)]
        for value in values:
            assert literal(value) == dbapi.escape(value), value


@given(st.text() | st.text(alphabet="\\'\"\n\r\x00\x1a{}:,ab ✓"))
def test_escape_is_pymysqls_escape_string(text):
    assert bulk._escape(text) == escape_string(text)


@pytest.mark.backends("mysql")
def test_utc_datetime_literals_match_the_type_then_pymysql(engine):
    # The UtcDateTime renderer's fast path writes what the type's bind processor and PyMySQL write.
    _mariadb_only(engine)
    column_type = grafana_alerts.c.received_at.type
    assert isinstance(column_type, UtcDateTime)
    with engine.connect() as conn:
        render = bulk._converter(conn, column_type)
        dbapi = conn.connection.dbapi_connection
        values = [datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                  datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=timezone.utc),
                  datetime(1, 1, 1, tzinfo=timezone.utc),
                  datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
                  datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=timezone(timedelta(hours=-7))), None]
        for value in values:
            expected = dbapi.escape(UtcDateTime().process_bind_param(value, conn.dialect))
            assert render(value) == expected, value
        with pytest.raises(ValueError):
            render(datetime(2026, 1, 2))  # naive: refused by the type, as before


@pytest.mark.backends("mysql")
def test_insert_returning_and_upsert_store_every_value(engine):
    _mariadb_only(engine)
    at = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=timezone.utc)
    rows = [{"received_at": at, "source": "grafana", "remote_addr": None, "user_agent": text, "content_type": None,
             "body": text.encode() + bytes(range(256)), "body_sha256": "0" * 64, "body_size": n, "alert_count": None,
             "status": None, "parse_error": text} for n, text in enumerate(ODD_TEXT)]
    with engine.begin() as conn:
        ids = bulk.insert(conn, grafana_alerts, rows, returning="id")
        stored = {r.id: r for r in conn.execute(select(grafana_alerts))}
        assert ids == sorted(ids) and len(ids) == len(rows)
        for raw_id, row in zip(ids, rows, strict=True):
            assert {k: getattr(stored[raw_id], k) for k in row} == row
        base = {"fingerprint": "f", "active_key": None, "status": "resolved", "title": "t", "severity": "info",
                "opened_at": at, "last_alert_at": at, "group_labels": {"a": "it's ✓"}, "common_labels": {},
                "alert_count": 1, "series_count": 0, "series_firing": 0, "reopen_count": 0}
        (incident_id,) = bulk.insert(conn, incidents, [base], returning="id")
        bulk.insert(conn, incidents, [{**base, "id": incident_id, "title": "50% it's"}], update=["title"])
        bulk.insert(conn, incident_events, [{"incident_id": incident_id, "kind": "opened", "at": at, "actor": "x",
                                             "detail": {"reason": 'a "b" \\ c'}}])
        incident = conn.execute(select(incidents)).one()
        assert (incident.title, incident.group_labels) == ("50% it's", {"a": "it's ✓"})
        assert conn.execute(select(incident_events.c.detail)).scalar_one() == {"reason": 'a "b" \\ c'}


@pytest.mark.backends("mysql")
def test_values_repeated_across_rows_are_stored_row_by_row(engine):
    # A column's literals are reused within a statement (most columns repeat a few values); every
    # row must still get its own value, whatever mix of repeats, NULLs and documents it holds.
    _mariadb_only(engine)
    times = [datetime(2026, 3, 4, 5, 6, 7, n, tzinfo=timezone.utc) for n in range(3)]
    rows = [{"received_at": times[n % 3], "source": "grafana" if n % 2 else "replay", "remote_addr": None,
             "user_agent": ODD_TEXT[n % 4], "content_type": None if n % 3 else "application/json",
             "body": ODD_TEXT[n % 5].encode(), "body_sha256": f"{n % 2:064d}", "body_size": n % 4,
             "alert_count": None if n % 4 == 0 else n % 2, "status": None, "parse_error": ODD_TEXT[n % len(ODD_TEXT)]}
            for n in range(40)]
    with engine.begin() as conn:
        ids = bulk.insert(conn, grafana_alerts, rows, returning="id")
        stored = {r.id: r for r in conn.execute(select(grafana_alerts))}
        assert [{k: getattr(stored[i], k) for k in rows[0]} for i in ids] == rows
        at = times[0]
        base = {"fingerprint": "f", "status": "resolved", "title": "t", "severity": "info", "opened_at": at,
                "last_alert_at": at, "common_labels": {}, "alert_count": 1, "series_count": 0, "series_firing": 0,
                "reopen_count": 0}
        labels = [{"a": "it's ✓"}, {"a": "it's ✓"}, {}, {"b": "1"}]
        new = [{**base, "fingerprint": f"f{n}", "active_key": None, "group_labels": labels[n]} for n in range(4)]
        incident_ids = bulk.insert(conn, incidents, new, returning="id")
        kept = dict(conn.execute(select(incidents.c.id, incidents.c.group_labels)).all())
        assert [kept[i] for i in incident_ids] == labels


@pytest.mark.backends("mysql")
def test_times_rendered_once_per_run_are_stored_right_in_every_column_and_statement(engine, monkeypatch):
    # UTC times' literals are kept across columns and statements (and emptied past a bound): the
    # same instant, written as another offset, is the same literal; each row keeps its own time.
    _mariadb_only(engine)
    monkeypatch.setattr(bulk, "TIME_LITERALS_MAX", 5)
    bulk._TIME_LITERALS.clear()
    times = [datetime(2026, 3, 4, 5, 6, n, 70 * n, tzinfo=timezone.utc) for n in range(9)]
    plus_two = timezone(timedelta(hours=2))
    with engine.begin() as conn:
        for _ in range(3):  # the first fills the memo past its bound; the next ones read from it
            base = {"fingerprint": "f", "active_key": None, "status": "resolved", "title": "t", "severity": "info",
                    "group_labels": {}, "common_labels": {}, "alert_count": 1, "series_count": 0,
                    "series_firing": 0, "reopen_count": 0}
            rows = [{**base, "opened_at": at if n % 2 else at.astimezone(plus_two),
                     "last_alert_at": times[(n + 1) % len(times)]} for n, at in enumerate(times)]
            ids = bulk.insert(conn, incidents, rows, returning="id")
            stored = {r.id: (r.opened_at, r.last_alert_at)
                      for r in conn.execute(select(incidents.c.id, incidents.c.opened_at, incidents.c.last_alert_at))}
            assert [stored[i] for i in ids] == [(at, times[(n + 1) % len(times)]) for n, at in enumerate(times)]
            assert len(bulk._TIME_LITERALS) <= len(times) + 5


def _archive_rows(tag: str, count: int) -> list[dict]:
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    return [{"received_at": at, "source": "grafana", "remote_addr": None, "user_agent": None, "content_type": None,
             "body": f"{tag}-{n}".encode(), "body_sha256": hashlib.sha256(f"{tag}-{n}".encode()).hexdigest(),
             "body_size": n,
             "alert_count": None, "status": None, "parse_error": None} for n in range(count)]


def _stored_ids(conn, rows: list[dict]) -> list[int]:
    by_sha = dict(conn.execute(select(grafana_alerts.c.body_sha256, grafana_alerts.c.id)).all())
    return [by_sha[row["body_sha256"]] for row in rows]


@pytest.mark.backends("mysql")
@pytest.mark.parametrize("consecutive", [True, False], ids=["last-insert-id", "returning"])
def test_insert_returns_each_rows_id_either_way(engine, monkeypatch, consecutive):
    # Ids come from LAST_INSERT_ID() where the server gives a statement consecutive ids, else
    # from RETURNING; both must name the row each id belongs to, over several statements.
    _mariadb_only(engine)
    monkeypatch.setattr(bulk, "STATEMENT_CHARS", 2000)  # many statements
    monkeypatch.setattr(bulk, "CONSECUTIVE_MIN_ROWS", 1)
    if not consecutive:
        monkeypatch.setattr(bulk, "consecutive_ids", lambda conn: False)
    rows = _archive_rows("x", 300)
    with engine.begin() as conn:
        assert consecutive is False or bulk.consecutive_ids(conn)  # MariaDB's default lock mode 1
        ids = bulk.insert(conn, grafana_alerts, rows, returning="id")
        assert ids == _stored_ids(conn, rows)


@pytest.mark.backends("mysql")
def test_an_increment_other_than_one_falls_back_to_returning(engine, monkeypatch):
    # Galera sets auto_increment_increment to the cluster size: ids step by it, not by one.
    _mariadb_only(engine)
    monkeypatch.setattr(bulk, "CONSECUTIVE_MIN_ROWS", 1)
    rows = _archive_rows("g", 50)
    with engine.begin() as conn:
        conn.exec_driver_sql("SET SESSION auto_increment_increment = 3")
        assert not bulk.consecutive_ids(conn)
        ids = bulk.insert(conn, grafana_alerts, rows, returning="id")
        assert ids == _stored_ids(conn, rows)
        assert ids[1] - ids[0] == 3
        conn.exec_driver_sql("SET SESSION auto_increment_increment = 1")


@pytest.mark.backends("mysql")
def test_concurrent_inserts_each_get_their_own_ids(engine, monkeypatch):
    # Two writers inserting at once (the receiver beside a replay): each statement's ids are
    # its own consecutive block, whatever the other writer does.
    _mariadb_only(engine)
    monkeypatch.setattr(bulk, "STATEMENT_CHARS", 3000)
    monkeypatch.setattr(bulk, "CONSECUTIVE_MIN_ROWS", 1)
    batches = {tag: _archive_rows(tag, 400) for tag in ("a", "b")}
    returned: dict[str, list[int]] = {}
    turns = threading.Barrier(2, timeout=30)
    statements = bulk._statements

    def in_turns(*args):  # the writers' statements alternate: a1, b1, a2, b2, …
        for statement in statements(*args):
            turns.wait()
            yield statement

    monkeypatch.setattr(bulk, "_statements", in_turns)

    def write(tag: str) -> None:
        with engine.begin() as conn:
            returned[tag] = bulk.insert(conn, grafana_alerts, batches[tag], returning="id")

    threads = [threading.Thread(target=write, args=(tag,)) for tag in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(returned) == {"a", "b"}
    with engine.connect() as conn:
        ids = {tag: _stored_ids(conn, rows) for tag, rows in batches.items()}
        assert max(ids["a"]) > min(ids["b"]) and max(ids["b"]) > min(ids["a"])  # they did interleave
        for tag, rows in batches.items():
            assert returned[tag] == _stored_ids(conn, rows)


@pytest.mark.backends("mysql")
def test_long_values_are_sent_ahead_and_no_statement_outgrows_its_size(engine, monkeypatch):
    # Values whose literal could pass half a statement (here 500 bytes or characters) travel in
    # pieces into session variables; every value still reads back exactly, in its row.
    _mariadb_only(engine)
    monkeypatch.setattr(bulk, "STATEMENT_CHARS", 2000)
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    odd = "".join(ODD_TEXT)
    rows = [{"received_at": at, "source": "grafana", "remote_addr": None, "user_agent": None, "content_type": None,
             "body": bytes(range(256)) * n + b"'\\", "body_sha256": f"{n:064d}", "body_size": n, "alert_count": None,
             "status": None, "parse_error": (odd * n)[:1024]} for n in (0, 1, 2, 3, 9, 1, 40)]
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    try:
        with engine.begin() as conn:
            ids = bulk.insert(conn, grafana_alerts, rows, returning="id")
            assert conn.exec_driver_sql("SELECT @incidentctl_long_0 IS NULL").scalar() == 1  # released
    finally:
        event.remove(engine, "before_cursor_execute", record)
    with engine.connect() as conn:
        stored = {r.id: r for r in conn.execute(select(grafana_alerts))}
    assert [(stored[i].body, stored[i].parse_error) for i in ids] == [(r["body"], r["parse_error"]) for r in rows]
    assert any("@incidentctl_long_" in s for s in sent) and max(len(s) for s in sent) <= 2000 + 100


@pytest.mark.backends("mysql")
def test_a_value_longer_than_the_server_holds_is_refused_not_cut(engine):
    _mariadb_only(engine)
    with engine.connect() as conn:
        packet = conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar()
    row = _archive_rows("t", 1)[0]
    row["body"] = b"\x00" * (packet + 1)
    too_long = f"a value of {packet + 1} bytes is longer than the database accepts"
    with pytest.raises(bulk.ValueTooLong, match=too_long), engine.begin() as conn:
        bulk.insert(conn, grafana_alerts, [row], returning="id")
    with engine.connect() as conn:
        assert conn.execute(select(grafana_alerts.c.id)).all() == []
