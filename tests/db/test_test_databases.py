"""The tests' own databases: what `leftovers` finds, which the `db_url` fixture checks before every
test (tests/support/databases.py), and that emptying gets a used database back to a fresh one."""

from __future__ import annotations

from sqlalchemy import func, select, text

from incidentctl.db.migrations import MIGRATIONS
from incidentctl.db.schema import schema_migrations, silences
from tests.support.databases import APP_TABLES, empty_tables, leftovers
from tests.support.factories import add_change, add_incident


def found(engine) -> list[str]:
    with engine.connect() as conn:
        return leftovers(conn)


def test_a_test_starts_with_a_fresh_database(engine):
    assert found(engine) == []
    with engine.connect() as conn:
        counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in APP_TABLES}
        assert counts == dict.fromkeys(counts, 0)
        assert conn.execute(select(func.count()).select_from(schema_migrations)).scalar_one() == len(MIGRATIONS)


def test_leftovers_name_rows_left_and_emptying_removes_them(second_engine):
    engine = second_engine("leftovers")
    add_change(engine, add_incident(engine))
    assert found(engine) == ["rows in incidents", "rows in incident_alerts", "rows in notifications"]
    empty_tables(engine)
    assert found(engine) == []


def test_leftovers_name_a_changed_schema_and_an_unrecorded_migration(second_engine):
    engine = second_engine("schema")
    columns = len(silences.columns)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE silences ADD COLUMN extra INTEGER"))
    assert found(engine) == [f"table silences: {columns + 1} columns, not {columns}"]
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE silences DROP COLUMN extra"))
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == MIGRATIONS[-1].version))
    assert found(engine) == [f"{len(MIGRATIONS) - 1} migrations recorded, not {len(MIGRATIONS)}"]
