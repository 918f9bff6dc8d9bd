"""The tests' databases between tests: emptied, and checked to start as a fresh one would.

A MySQL test database is made once a session and emptied before each test (`empty_tables`); a
SQLite one is a copy of a file made once (tests/conftest.py). `leftovers` names what makes a
database differ from a fresh one with the current schema: rows in a table, a table or column more
or fewer, a migration not recorded. The `db_url` fixture fails a test that would start with any, so
no test sees what another left behind.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, exists, func, select, text

from incidentctl.db.migrations import MIGRATIONS
from incidentctl.db.schema import metadata, schema_migrations

APP_TABLES = [t for t in metadata.sorted_tables if t is not schema_migrations]  # parents first
# table → how many columns it has in the current schema
COLUMNS = {t.name: len(t.columns) for t in metadata.sorted_tables}

_COLUMNS_SQL = {
    "mysql": "SELECT table_name, COUNT(*) FROM information_schema.columns"
             " WHERE table_schema = DATABASE() GROUP BY table_name",
    "sqlite": "SELECT m.name, COUNT(*) FROM sqlite_master AS m JOIN pragma_table_info(m.name)"
              " WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' GROUP BY m.name",
}


def empty_tables(engine: Engine) -> None:
    """Deletes every row but the recorded migrations, children first, in one transaction. One
    statement asks which tables have rows, and only those are emptied: a test fills a few."""
    with engine.begin() as conn:
        filled = conn.execute(select(*(exists(select(1).select_from(t)).label(t.name) for t in APP_TABLES))).one()
        for table in reversed(APP_TABLES):
            if filled._mapping[table.name]:
                conn.execute(table.delete())


def leftovers(conn: Connection) -> list[str]:
    """What differs from a fresh database with the current schema; empty when nothing does."""
    found = []
    columns = dict(conn.execute(text(_COLUMNS_SQL[conn.dialect.name])).all())
    if columns != COLUMNS:
        found += [f"table {name}: {columns.get(name, 0)} columns, not {COLUMNS.get(name, 0)}"
                  for name in sorted(set(columns) | set(COLUMNS)) if columns.get(name) != COLUMNS.get(name)]
        return found
    row = conn.execute(select(
        *(exists(select(1).select_from(t)).label(t.name) for t in APP_TABLES),
        select(func.count()).select_from(schema_migrations).scalar_subquery().label("versions"),
    )).one()._mapping
    found += [f"rows in {t.name}" for t in APP_TABLES if row[t.name]]
    if row["versions"] != len(MIGRATIONS):
        found.append(f"{row['versions']} migrations recorded, not {len(MIGRATIONS)}")
    return found
