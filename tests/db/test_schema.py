"""The schema: migrations are idempotent, and sql/schema.sql describes what the code creates."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, inspect, make_url, select, text

from incidentctl.db.engine import make_engine
from incidentctl.db.migrations import LATEST_VERSION, MIGRATIONS, mysql_ddl, schema_status, upgrade
from incidentctl.db.schema import schema_migrations
from incidentctl.incidents.listing import IncidentFilter, list_incidents
from tests.support import ROOT, T0

SQL_SCHEMA = ROOT / "sql" / "schema.sql"


def _shape(engine) -> dict:
    """Tables, columns, indexes and foreign keys as the database reports them."""
    insp = inspect(engine)
    shape = {}
    for table in sorted(insp.get_table_names()):
        shape[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)],
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in insp.get_indexes(table)),
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)),
            "pk": tuple(insp.get_pk_constraint(table)["constrained_columns"]),
            "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"]) for f in insp.get_foreign_keys(table)),
            "row_format": _row_format(engine, table),
            "autoincrement": _sqlite_autoincrement(engine, table),
        }
    return shape


def _sqlite_autoincrement(engine, table: str) -> bool | None:
    """Whether SQLite's table is AUTOINCREMENT (None on MySQL, whose counter always is)."""
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
                           {"t": table}).scalar()
    return "AUTOINCREMENT" in sql.upper()


def _row_format(engine, table: str) -> str | None:
    """InnoDB's row format of `table` (None on SQLite)."""
    if engine.dialect.name not in ("mysql", "mariadb"):
        return None
    with engine.connect() as conn:
        return conn.execute(text("SELECT row_format FROM information_schema.tables WHERE table_schema = DATABASE() "
                                 "AND table_name = :t"), {"t": table}).scalar_one()


def test_upgrade_creates_schema_and_is_idempotent(empty_database_url):
    engine = make_engine(empty_database_url())
    assert schema_status(engine).current == 0
    first = upgrade(engine)
    assert [m.version for m in first] == [m.version for m in MIGRATIONS]
    assert [m.version for m in MIGRATIONS] == sorted({m.version for m in MIGRATIONS})  # in order, each once
    assert upgrade(engine) == []  # second run applies nothing
    status = schema_status(engine)
    assert (status.current, status.pending) == (LATEST_VERSION, ())
    assert "grafana_alerts" in inspect(engine).get_table_names()
    engine.dispose()


def test_sql_schema_file_is_the_generated_ddl():
    # sql/schema.sql must be regenerated (`incidentctl db ddl > sql/schema.sql`) when schema.py changes.
    assert SQL_SCHEMA.read_text() == mysql_ddl()


@pytest.mark.backends("mysql")
def test_sql_schema_applied_by_a_dba_equals_db_upgrade(empty_database_url):
    from_code = make_engine(empty_database_url("code"))
    upgrade(from_code)
    from_sql = make_engine(empty_database_url("sql"))
    with from_sql.begin() as conn:
        for statement in SQL_SCHEMA.read_text().split(";\n"):
            lines = [line for line in statement.splitlines() if not line.startswith("--")]
            if "".join(lines).strip():
                conn.execute(text("\n".join(lines)))
    assert _shape(from_sql) == _shape(from_code)
    assert schema_status(from_sql).current == LATEST_VERSION
    from_code.dispose()
    from_sql.dispose()


def test_upgrade_from_version_1_indexes_the_labels_of_existing_incidents(empty_database_url):
    # A version-1 database (no label index) with incidents and their series, as a deployment of
    # that version has: `list --label` finds them through the series index the upgrade fills.
    from datetime import datetime, timezone

    from incidentctl.db.schema import incident_alerts, incidents, metadata, seen_signatures, series_labels

    engine = make_engine(empty_database_url())
    t0 = datetime(2026, 1, 5, tzinfo=timezone.utc)
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[t for t in metadata.sorted_tables
                                          if t.name not in (series_labels.name, seen_signatures.name)])
        conn.execute(schema_migrations.insert().values(version=1, description="initial", applied_at=t0))
        labels = [{"alertname": f"A{i}", "team": "db" if i == 3 else "web"} for i in range(2500)]
        conn.execute(incidents.insert(), [
            {"id": i + 1, "fingerprint": f"fp{i}", "status": "resolved", "title": f"T{i}", "severity": "info",
             "opened_at": t0, "last_alert_at": t0, "common_labels": labels[i], "alert_count": 1,
             "series_count": 1, "series_firing": 0, "reopen_count": 0}
            for i in range(2500)])  # more than one backfill page
        conn.execute(incident_alerts.insert(), [
            {"incident_id": i + 1, "alert_fingerprint": f"s{i}", "status": "resolved", "severity": "info",
             "labels": labels[i], "annotations": {}, "last_event_at": t0, "first_seen_at": t0, "last_seen_at": t0,
             "times_seen": 1} for i in range(2500)])
    assert [m.version for m in upgrade(engine)] == [m.version for m in MIGRATIONS if m.version >= 2]
    with engine.connect() as conn:
        assert conn.scalar(select(seen_signatures.c.signature_hash).limit(1)) is None  # created, empty
        assert conn.scalar(select(func.count()).select_from(series_labels)) == 5000
        assert not inspect(conn).has_table("incident_labels")
    found = list_incidents(engine, IncidentFilter(status="all", labels=(("team", "db"),)))
    assert [r["title"] for r in found] == ["T3"]
    engine.dispose()


def test_upgrade_drops_the_indexes_no_query_reads_and_lists_by_label_as_before(empty_database_url):
    # A version-9 database keeps incident_labels beside series_labels and indexes series by
    # fingerprint alone; version 10 drops both.
    from tests.support.processing import process_all, store_spaced

    engine = make_engine(empty_database_url())
    upgrade(engine)
    store_spaced(engine, [_body({"alertname": "Disk", "team": "db"}), _body({"alertname": "Cpu", "team": "web"})])
    process_all(engine)
    with engine.begin() as conn:
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 10))
        conn.exec_driver_sql("CREATE TABLE incident_labels (id INTEGER PRIMARY KEY, incident_id BIGINT NOT NULL, "
                             "name VARCHAR(191) NOT NULL, value VARCHAR(191) NOT NULL)")
        conn.exec_driver_sql("INSERT INTO incident_labels (id, incident_id, name, value) VALUES (1, 1, 'team', 'db')")
        conn.exec_driver_sql("CREATE INDEX ix_incident_alerts_fingerprint ON incident_alerts (alert_fingerprint)")
    assert [m.version for m in upgrade(engine)] == [10]
    with engine.connect() as conn:
        assert not inspect(conn).has_table("incident_labels")
        assert [i["name"] for i in inspect(conn).get_indexes("incident_alerts")] == ["ux_incident_alerts_series"]
    assert schema_status(engine).current == LATEST_VERSION
    found = list_incidents(engine, IncidentFilter(status="all", labels=(("team", "db"),)))
    assert [r["alertname"] for r in found] == ["Disk"]
    engine.dispose()


def test_upgrade_to_version_11_marks_the_queue_in_place_and_keeps_every_body(empty_database_url):
    # A version-10 database on MariaDB keeps grafana_alerts in the server's default row format
    # (DYNAMIC); version 11 rebuilds it REDUNDANT, bodies and queue as they were.
    from tests.support.processing import process_all, store_spaced

    engine = make_engine(empty_database_url())
    upgrade(engine)
    bodies = [_body({"alertname": "Disk", "team": "db"}), _body({"alertname": "Cpu", "team": "web"})]
    store_spaced(engine, bodies[:1])
    process_all(engine)
    store_spaced(engine, bodies[1:])  # still queued when the upgrade runs
    mysql = engine.dialect.name in ("mysql", "mariadb")
    with engine.begin() as conn:
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 11))
        if mysql:
            conn.exec_driver_sql("ALTER TABLE grafana_alerts ROW_FORMAT=DYNAMIC")
    assert _row_format(engine, "grafana_alerts") == ("Dynamic" if mysql else None)

    assert [m.version for m in upgrade(engine)] == [11]

    assert _row_format(engine, "grafana_alerts") == ("Redundant" if mysql else None)
    assert schema_status(engine).current == LATEST_VERSION
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT body, processed_at IS NULL FROM grafana_alerts ORDER BY id")).all()
    assert [(bytes(body), queued) for body, queued in stored] == [(bodies[0], 0), (bodies[1], 1)]
    process_all(engine)
    found = list_incidents(engine, IncidentFilter(status="all"))
    assert sorted(r["alertname"] for r in found) == ["Cpu", "Disk"]
    engine.dispose()


def _table_options(engine) -> dict[str, tuple[str, str]]:
    """Each table's (character set, row format) as MariaDB reports them."""
    with engine.connect() as conn:
        return {name: (collation.split("_")[0], row_format) for name, collation, row_format in conn.execute(text(
            "SELECT table_name, table_collation, row_format FROM information_schema.tables "
            "WHERE table_schema = DATABASE()"))}


def _latin1_database(mysql_server, label: str, dialect: str = "mysql") -> str:
    """A database made by a bare CREATE DATABASE on a server whose default character set is latin1."""
    url = make_url(mysql_server.create_database(label, charset="latin1"))
    return url.set(drivername=f"{dialect}+pymysql").render_as_string(hide_password=False)


NOT_LATIN1 = {"alertname": "Диск→полон", "team": "データベース"}


@pytest.mark.backends("mysql")
@pytest.mark.parametrize("dialect", ["mysql", "mariadb"])
def test_a_database_with_latin1_defaults_gets_utf8mb4_tables_and_the_queue_row_format(mysql_server, dialect):
    # Before version 13 such a database got latin1 tables, and the first batch holding a label
    # outside Latin-1 (or any reason with "→") failed at every run; through mariadb:// the queue
    # also missed its row format.
    from tests.support.processing import process_all, store_spaced

    engine = make_engine(_latin1_database(mysql_server, f"latin1_{dialect}", dialect))
    assert engine.dialect.name == dialect
    upgrade(engine)
    options = _table_options(engine)
    assert set(options) == {t for t in inspect(engine).get_table_names()}
    assert {charset for charset, _ in options.values()} == {"utf8mb4"}
    assert options["grafana_alerts"][1] == "Redundant"
    store_spaced(engine, [_body(NOT_LATIN1), _body({**NOT_LATIN1, "severity": "critical"})])
    summary = process_all(engine)
    assert (summary.rows, summary.errors) == (2, 0)
    [found] = list_incidents(engine, IncidentFilter(status="all"))
    assert found["alertname"] == NOT_LATIN1["alertname"]
    with engine.connect() as conn:
        reasons = conn.execute(text("SELECT reason FROM notifications ORDER BY id")).scalars().all()
    assert any("→" in reason for reason in reasons), reasons  # the escalation's "warning → critical"
    engine.dispose()


@pytest.mark.backends("mysql")
def test_upgrade_to_version_13_converts_latin1_tables_and_keeps_every_row(mysql_server):
    # A version-12 database whose tables took latin1 from the database: version 13 converts them,
    # rows as they were, and the batches that failed on "→" then pass.
    from tests.support.processing import process_all, store_spaced

    engine = make_engine(_latin1_database(mysql_server, "latin1_v12"))
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 13))
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
        for table in inspect(conn).get_table_names():
            conn.exec_driver_sql(f"ALTER TABLE `{table}` CONVERT TO CHARACTER SET latin1")
        conn.exec_driver_sql("ALTER TABLE grafana_alerts ROW_FORMAT=DYNAMIC")
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
    assert {charset for charset, _ in _table_options(engine).values()} == {"latin1"}
    store_spaced(engine, [_body({"alertname": "Café", "team": "db"})])
    process_all(engine)
    store_spaced(engine, [_body(NOT_LATIN1)])  # queued when the upgrade runs

    assert [m.version for m in upgrade(engine)] == [13]

    options = _table_options(engine)
    assert {charset for charset, _ in options.values()} == {"utf8mb4"}
    assert options["grafana_alerts"][1] == "Redundant"
    assert process_all(engine).errors == 0
    found = list_incidents(engine, IncidentFilter(status="all"))
    assert sorted(r["alertname"] for r in found) == sorted(["Café", NOT_LATIN1["alertname"]])
    engine.dispose()


def test_an_id_whose_row_was_deleted_is_never_given_again(empty_database_url):
    # rebuild deletes the newest incidents it does not continue, and purge may delete every raw
    # row: their ids stay in Slack buttons and timelines, so new rows must get other ids.
    from incidentctl.db.schema import grafana_alerts, incidents
    from tests.support.processing import process_all, store_spaced

    engine = make_engine(empty_database_url())
    upgrade(engine)
    raw_ids = store_spaced(engine, [_body({"alertname": name}) for name in ("Disk", "Cpu", "Net")])
    process_all(engine)
    with engine.begin() as conn:
        incident_ids = list(conn.execute(select(incidents.c.id).order_by(incidents.c.id)).scalars())
        conn.execute(incidents.delete().where(incidents.c.id == incident_ids[-1]))
        conn.execute(grafana_alerts.delete())
    assert len(incident_ids) == 3

    new_raw = store_spaced(engine, [_body({"alertname": "Mem"})])
    process_all(engine)

    assert new_raw[0] > max(raw_ids)
    with engine.connect() as conn:
        new_incident = conn.execute(select(incidents.c.id).where(incidents.c.alertname == "Mem")).scalar_one()
    assert new_incident > incident_ids[-1]
    engine.dispose()


@pytest.mark.backends("sqlite")
def test_upgrade_to_version_12_keeps_every_row_and_id_and_gives_no_id_twice(empty_database_url):
    # A version-11 SQLite database: incidents and grafana_alerts without AUTOINCREMENT (SQLite
    # gave max(id) + 1). Version 12 copies both into AUTOINCREMENT tables; the other tables'
    # rows, which hang off incidents by foreign keys, stay attached (and still cascade).
    from sqlalchemy import MetaData

    from incidentctl.db.schema import NEVER_REUSED_IDS, grafana_alerts, incident_events, incidents, metadata
    from tests.support.processing import process_all, snapshot, store_spaced

    engine = make_engine(empty_database_url())
    old = MetaData()
    v11 = [metadata.tables[name].to_metadata(old) for name in NEVER_REUSED_IDS]
    for table in v11:
        table.dialect_options["sqlite"]["autoincrement"] = False
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name not in NEVER_REUSED_IDS])
        old.create_all(conn)
        conn.execute(schema_migrations.insert(), [{"version": m.version, "description": m.description,
                                                   "applied_at": T0} for m in MIGRATIONS if m.version < 12])
    assert [_sqlite_autoincrement(engine, name) for name in NEVER_REUSED_IDS] == [False, False]
    raw_ids = store_spaced(engine, [_body({"alertname": name}) for name in ("Disk", "Cpu", "Net")])
    process_all(engine)
    before = snapshot(engine)
    with engine.connect() as conn:
        ids_before = list(conn.execute(select(incidents.c.id).order_by(incidents.c.id)).scalars())
        bodies_before = conn.execute(select(grafana_alerts.c.id, grafana_alerts.c.body)).all()

    assert [m.version for m in upgrade(engine)] == [m.version for m in MIGRATIONS if m.version >= 12]

    assert [_sqlite_autoincrement(engine, name) for name in NEVER_REUSED_IDS] == [True, True]
    fresh = make_engine(empty_database_url("fresh"))
    upgrade(fresh)
    assert _shape(engine) == _shape(fresh)
    assert snapshot(engine) == before
    with engine.connect() as conn:
        assert list(conn.execute(select(incidents.c.id).order_by(incidents.c.id)).scalars()) == ids_before
        assert conn.execute(select(grafana_alerts.c.id, grafana_alerts.c.body)).all() == bodies_before
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on for the pool's next user
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    newest = ids_before[-1]
    with engine.begin() as conn:
        conn.execute(incidents.delete().where(incidents.c.id == newest))
        assert conn.execute(select(func.count()).where(incident_events.c.incident_id == newest)).scalar() == 0
        conn.execute(grafana_alerts.delete().where(grafana_alerts.c.id == raw_ids[-1]))
    new_raw = store_spaced(engine, [_body({"alertname": "Mem"})])
    process_all(engine)
    assert new_raw[0] > raw_ids[-1]
    with engine.connect() as conn:
        assert conn.execute(select(incidents.c.id).where(incidents.c.alertname == "Mem")).scalar_one() > newest
    engine.dispose()
    fresh.dispose()


@pytest.mark.backends("sqlite")
def test_a_failed_upgrade_on_sqlite_leaves_foreign_keys_on(empty_database_url, monkeypatch):
    import incidentctl.db.migrations as migrations

    engine = make_engine(empty_database_url())
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == LATEST_VERSION))

    def broken(conn):
        raise RuntimeError("migration failed")

    latest = migrations.MIGRATIONS[-1]
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS[:-1],
                                                   migrations.Migration(latest.version, latest.description, broken)))
    with pytest.raises(RuntimeError, match="migration failed"):
        upgrade(engine)
    assert schema_status(engine).current == LATEST_VERSION - 1  # rolled back
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def _body(labels: dict) -> bytes:
    alert = {"status": "firing", "labels": labels, "annotations": {}, "startsAt": "2026-01-05T00:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z"}
    return json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()


def test_upgrade_adds_the_delivery_log_and_notify_uses_it(empty_database_url):
    # A database without the deliveries migration (no deliveries table) with a pending change, as deployed.
    from datetime import datetime, timezone

    import requests
    from sqlalchemy import select

    from incidentctl.config import load_settings
    from incidentctl.db.schema import deliveries, metadata, schema_migrations
    from incidentctl.notify.delivery import notify_pending

    DELIVERIES = next(m for m in MIGRATIONS if m.description.startswith("deliveries:"))
    from tests.support.factories import add_incidents_with_changes
    from tests.support.slack_fake import FakeSlack

    engine = make_engine(empty_database_url())
    t0 = datetime(2026, 1, 5, tzinfo=timezone.utc)
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t is not deliveries])
        conn.execute(schema_migrations.insert(), [{"version": m.version, "description": m.description,
                                                   "applied_at": t0} for m in MIGRATIONS if m is not DELIVERIES])
    add_incidents_with_changes(engine, 1)
    assert upgrade(engine) == [DELIVERIES]
    with FakeSlack() as slack, requests.Session() as session:
        summary = notify_pending(engine, load_settings({"SLACK_WEBHOOK_URL": slack.url("ok")}), session,
                                 clock=lambda: t0)
    assert summary.sent == 1
    with engine.connect() as conn:
        assert conn.execute(select(deliveries.c.outcome, deliveries.c.changes)).all() == [("ok", 1)]
    engine.dispose()


def test_upgrade_to_the_slack_app_tables_takes_existing_changes_as_seen(empty_database_url):
    # A version-5 database: no threaded_at / slack_seen_at, no slack_* tables, changes and a silence.
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import inspect, select, text

    from incidentctl.db.schema import metadata, notifications, schema_migrations, silences
    from incidentctl.notify.silences import Matcher, add_silence
    from tests.support.factories import add_incidents_with_changes

    SLACK = next(m for m in MIGRATIONS if m.version == 7)
    engine = make_engine(empty_database_url())
    t0 = datetime(2026, 1, 5, tzinfo=timezone.utc)
    slack_tables = {"slack_messages", "slack_message_incidents", "slack_replies", "slack_reminders"}
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name not in slack_tables])
        next(i for i in notifications.indexes if i.name == "ix_notifications_threaded").drop(conn)
        conn.execute(text("ALTER TABLE notifications DROP COLUMN threaded_at"))
        conn.execute(text("ALTER TABLE silences DROP COLUMN slack_seen_at"))
        conn.execute(schema_migrations.insert(), [{"version": m.version, "description": m.description,
                                                   "applied_at": t0} for m in MIGRATIONS if m is not SLACK])
    add_incidents_with_changes(engine, 2)  # inserts name their columns: no threaded_at
    add_silence(engine, [Matcher("team", "db")], starts_at=t0, ends_at=t0 + timedelta(hours=1), comment="c",
                created_by="me", now=t0)
    assert upgrade(engine) == [SLACK]
    assert slack_tables <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert None not in conn.execute(select(notifications.c.threaded_at)).scalars().all()
        assert None not in conn.execute(select(silences.c.slack_seen_at)).scalars().all()
    engine.dispose()


def test_upgrade_to_silence_replies_keeps_the_replies_and_gives_the_current_shape(empty_database_url):
    # A version-8 database: slack_replies without silence_id, notification_id NOT NULL, and a reply owed.
    from datetime import datetime, timezone

    from sqlalchemy import Column, ForeignKey, Index, Integer, MetaData, String, Table, UniqueConstraint, select

    from incidentctl.db.schema import Id, UtcDateTime, metadata, schema_migrations, slack_messages, slack_replies

    t0 = datetime(2026, 1, 5, tzinfo=timezone.utc)
    old = MetaData()
    Table("slack_messages", old, Column("id", Id, primary_key=True))  # only for the foreign key
    v8 = Table("slack_replies", old,
               Column("id", Id, primary_key=True, autoincrement=True),
               Column("message_id", Id, ForeignKey("slack_messages.id", ondelete="CASCADE"), nullable=False),
               Column("notification_id", Id, nullable=False),
               Column("incident_id", Id, nullable=False),
               Column("state", String(16), nullable=False),
               Column("created_at", UtcDateTime, nullable=False),
               Column("attempts", Integer, nullable=False, default=0),
               Column("next_attempt_at", UtcDateTime),
               Column("last_error", String(1024)),
               Column("reply_ts", String(32)),
               Column("sent_at", UtcDateTime),
               UniqueConstraint("message_id", "notification_id", name="ux_slack_replies_change"),
               Index("ix_slack_replies_state", "state", "id"))
    SILENCES = next(m for m in MIGRATIONS if m.version == 9)
    fresh = make_engine(empty_database_url("fresh"))
    upgrade(fresh)
    engine = make_engine(empty_database_url("v8"))
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name != "slack_replies"])
        v8.create(conn)
        conn.execute(schema_migrations.insert(), [{"version": m.version, "description": m.description,
                                                   "applied_at": t0} for m in MIGRATIONS if m is not SILENCES])
        conn.execute(slack_messages.insert().values(id=1, route="default", channel="C0ALERTS", ts="1.000100",
                                                    posted_at=t0, base={}, lines={}, changes_seen=1,
                                                    changes_shown=0, state="live", attempts=0))
        conn.execute(v8.insert().values(message_id=1, notification_id=7, incident_id=3, state="pending",
                                        created_at=t0, attempts=0))

    assert upgrade(engine) == [SILENCES]

    assert _shape(engine)["slack_replies"] == _shape(fresh)["slack_replies"]
    with engine.connect() as conn:
        (row,) = conn.execute(select(slack_replies)).all()
    assert (row.message_id, row.notification_id, row.silence_id, row.state) == (1, 7, None, "pending")
    with engine.begin() as conn:  # a silence's reply: no change, once per message
        conn.execute(slack_replies.insert().values(message_id=1, silence_id=4, incident_id=3, state="pending",
                                                   created_at=t0, attempts=0))
    engine.dispose()
    fresh.dispose()
