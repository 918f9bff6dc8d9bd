"""db.rows: insert_rows and update_rows write the same rows on every path, and MariaDB takes the
rendered (bulk) one."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from incidentctl.db import rows as rows_module
from incidentctl.db.capabilities import capabilities
from incidentctl.db.rows import insert_rows, pipelined, reserve_ids, update_rows, update_where_in
from incidentctl.db.schema import grafana_alerts, incident_alerts, incidents, series_labels
from incidentctl.ingest.archive import raw_alert
from tests.support.factories import add_incident

T = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["native", "as MySQL 8"])
def path(request, backend, monkeypatch):
    """The database's own path, and the SQLAlchemy path MySQL 8 takes: no rendered statements, no
    RETURNING (on SQLite, its fallback without RETURNING)."""
    if request.param == "as MySQL 8":
        real = capabilities
        monkeypatch.setattr(rows_module, "capabilities",
                            lambda conn: replace(real(conn), bulk_insert=False, returning=False, returning_many=False))
    return request.param


@pytest.fixture
def statements_sent(engine):
    """Factory: from the call on, the statements `engine` sends, in the list it returns; the
    listener is removed after the test (the engine may be the session's: tests/conftest.py)."""
    seen: list[str] = []

    def record(conn, cursor, statement, *rest):
        seen.append(statement)

    def start() -> list[str]:
        event.listen(engine, "before_cursor_execute", record)
        return seen

    yield start
    if event.contains(engine, "before_cursor_execute", record):
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.backends("mysql")
def test_mariadb_takes_the_rendered_path(engine, statements_sent):
    statements = statements_sent()
    rows = [raw_alert(b'{"n": %d}' % i, received_at=T + timedelta(seconds=i)).row() for i in range(50)]
    with engine.begin() as conn:
        assert capabilities(conn).bulk_insert, "the MySQL test server must be MariaDB (CI runs MariaDB)"
        ids = insert_rows(conn, grafana_alerts, rows, returning="id")
    inserts = [s for s in statements if s.startswith("INSERT INTO")]
    # one statement carries every row, as literals (no placeholders left for the driver)
    assert len(inserts) == 1 and "%s" not in inserts[0] and "X'7b226e223a2034397d'" in inserts[0]
    with engine.connect() as conn:
        assert [bytes(b) for b in conn.scalars(select(grafana_alerts.c.body).order_by(grafana_alerts.c.id))] == [
            r["body"] for r in rows]
        assert list(conn.scalars(select(grafana_alerts.c.id).order_by(grafana_alerts.c.id))) == ids


def test_insert_returns_ids_in_row_order(engine, path):
    rows = [raw_alert(b'{"n": %d}' % i, received_at=T).row() for i in range(7)]
    with engine.begin() as conn:
        assert insert_rows(conn, grafana_alerts, [], returning="id") == []
        ids = insert_rows(conn, grafana_alerts, rows, returning="id")
    with engine.connect() as conn:
        stored = dict(conn.execute(select(grafana_alerts.c.id, grafana_alerts.c.body)).all())
    assert len(set(ids)) == 7 and [bytes(stored[i]) for i in ids] == [r["body"] for r in rows]


def test_on_conflict_updates_the_named_columns_or_keeps_the_row(engine, path):
    iid = add_incident(engine)
    series = {"incident_id": iid, "alert_fingerprint": "s1", "status": "firing", "severity": "warning",
              "labels": {"a": "1"}, "annotations": {}, "generator_url": None, "dashboard_url": None,
              "panel_url": None, "silence_url": None, "image_url": None, "starts_at": T, "ends_at": None,
              "last_event_at": T, "first_seen_at": T, "last_seen_at": T, "times_seen": 1}
    later = {**series, "status": "resolved", "labels": {"a": "changed"}, "times_seen": 2}
    pair = {"incident_id": iid, "name": "team", "value": "db", "opened_at": T}
    with engine.begin() as conn:
        insert_rows(conn, incident_alerts, [series], on_conflict=("incident_id", "alert_fingerprint"),
                    update=("status", "times_seen"))
        insert_rows(conn, incident_alerts, [later], on_conflict=("incident_id", "alert_fingerprint"),
                    update=("status", "times_seen"))
        insert_rows(conn, series_labels, [pair], on_conflict=("incident_id", "name", "value"))
        insert_rows(conn, series_labels, [{**pair, "opened_at": T + timedelta(hours=1)}, {**pair, "value": "web"}],
                    on_conflict=("incident_id", "name", "value"))
    with engine.connect() as conn:
        row = conn.execute(select(incident_alerts).where(incident_alerts.c.alert_fingerprint == "s1")).one()
        labels = conn.execute(select(series_labels.c.value, series_labels.c.opened_at)
                              .where(series_labels.c.incident_id == iid).order_by(series_labels.c.value)).all()
    assert (row.status, row.times_seen, row.labels) == ("resolved", 2, {"a": "1"})  # labels not named: kept
    assert labels == [("db", T), ("web", T)]  # the pair it had stays as it was


def test_update_rows_updates_by_id_and_never_another_row(engine, path):
    add_incident(engine), add_incident(engine)
    with engine.connect() as conn:
        first, second = [dict(r._mapping) for r in conn.execute(select(incidents).order_by(incidents.c.id))]
    with engine.begin() as conn:
        update_rows(conn, incidents, [{**first, "title": "renamed", "alert_count": 5},
                                      {**second, "title": "also", "alert_count": 6}])
    with engine.connect() as conn:
        rows = conn.execute(select(incidents.c.title, incidents.c.alert_count).order_by(incidents.c.id)).all()
        assert [tuple(r) for r in rows] == [("renamed", 5), ("also", 6)]
    # the second row takes the first's active_key: the unique index refuses it, whatever the path
    with pytest.raises(IntegrityError), engine.begin() as conn:
        update_rows(conn, incidents, [{**second, "active_key": first["active_key"]}])
    with engine.connect() as conn:
        assert conn.scalar(select(incidents.c.title).where(incidents.c.id == first["id"])) == "renamed"


KEY = ("incident_id", "name", "value")


def _labels(incident_id: int, names) -> list[dict]:
    return [{"incident_id": incident_id, "name": name, "value": f"v-{name}", "opened_at": T} for name in names]


def test_a_pipelined_block_writes_every_row_by_its_end(engine, path):
    incident = add_incident(engine)
    with engine.begin() as conn:
        with pipelined(conn):
            insert_rows(conn, series_labels, _labels(incident, ["a", "b"]), on_conflict=KEY)
            insert_rows(conn, series_labels, _labels(incident, ["b", "c"]), on_conflict=KEY)
        # the block has ended: every statement ran, in order (the second met "b" and kept it)
        found = conn.execute(select(series_labels.c.name).where(series_labels.c.incident_id == incident)).scalars()
        assert sorted(found) == ["a", "b", "c"]


@pytest.mark.parametrize("in_pipeline", [False, True])
def test_update_where_in_sets_the_values_of_the_rows_named_and_no_other(engine, path, monkeypatch, in_pipeline):
    monkeypatch.setattr(rows_module.mariadb_insert, "CHUNK_KEYS", 3)  # several statements
    with engine.begin() as conn:
        ids = insert_rows(conn, grafana_alerts, [raw_alert(b'{"n": %d}' % n, received_at=T).row() for n in range(8)],
                          returning="id")
    marked = T + timedelta(microseconds=123_456)
    chosen = [ids[0], ids[2], ids[3], ids[5], ids[7]]
    with engine.begin() as conn:
        block = pipelined(conn) if in_pipeline else nullcontext()
        with block:
            update_where_in(conn, grafana_alerts, {"processed_at": marked, "process_error": "it's 50% done"}, "id",
                            chosen)
        found = dict(conn.execute(select(grafana_alerts.c.id, grafana_alerts.c.processed_at)).all())
        errors = dict(conn.execute(select(grafana_alerts.c.id, grafana_alerts.c.process_error)).all())
    assert found == {i: marked if i in chosen else None for i in ids}
    assert errors == {i: "it's 50% done" if i in chosen else None for i in ids}


@pytest.mark.backends("mysql")
def test_a_pipelined_statement_that_fails_fails_the_block_and_the_ones_behind_it_do_not_run(engine, statements_sent):
    incident = add_incident(engine)
    statements = statements_sent()
    with pytest.raises(IntegrityError), engine.begin() as conn, pipelined(conn):
        insert_rows(conn, series_labels, _labels(incident, ["a"]))
        insert_rows(conn, series_labels, _labels(incident, ["a"]))  # the same key again, no on_conflict
        insert_rows(conn, series_labels, _labels(incident, ["z"]))
    assert not any("'z'" in s for s in statements)
    with engine.connect() as conn:
        assert conn.execute(select(series_labels)).all() == []  # rolled back


@pytest.mark.backends("mysql")
def test_a_failure_inside_a_pipelined_block_stops_what_is_queued(engine):
    incident = add_incident(engine)
    with pytest.raises(ZeroDivisionError), engine.begin() as conn, pipelined(conn):
        insert_rows(conn, series_labels, _labels(incident, ["a"]))
        1 / 0  # noqa: B018  (the caller's own failure while rows are still on their way)
    with engine.connect() as conn:
        assert conn.execute(select(series_labels)).all() == []


def test_reserved_ids_come_after_every_id_the_table_ever_gave(engine):
    """Where the database tells its AUTO_INCREMENT counter as it is, the ids reserved follow it:
    never the id of a deleted incident (a Slack message's buttons may still name it) nor one a
    rolled-back batch took. Elsewhere none are reserved: the INSERT returns the ids."""
    ids = [add_incident(engine) for _ in range(3)]
    with engine.begin() as conn:
        conn.execute(incidents.delete().where(incidents.c.id == ids[-1]))
    with engine.connect() as conn:
        reserved = reserve_ids(conn, incidents, 2)
        if not capabilities(conn).live_auto_increment:
            assert reserved is None
            return
        assert reserved == [ids[-1] + 1, ids[-1] + 2]
        conn.rollback()
        with conn.begin() as rolled_back:
            insert_rows(conn, incidents, [{"id": reserved[0], **_incident_row(engine, ids[0])}])
            rolled_back.rollback()
        assert reserve_ids(conn, incidents, 1) == [reserved[0] + 1]


def _incident_row(engine, incident_id: int) -> dict:
    """An incident's columns but its id and a fingerprint of its own (one unresolved incident per
    fingerprint)."""
    with engine.connect() as conn:
        row = dict(conn.execute(select(incidents).where(incidents.c.id == incident_id)).one()._mapping)
    del row["id"]
    return {**row, "fingerprint": "reserved", "active_key": "reserved"}
