"""The schema: migrations are idempotent, and sql/schema.sql describes what the code creates."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from incidentctl.database import make_engine
from incidentctl.migrations import LATEST_VERSION, mysql_ddl, schema_status, upgrade

SQL_SCHEMA = Path(__file__).parent.parent / "sql" / "schema.sql"


def _shape(engine) -> dict:
    """Tables, columns, indexes and foreign keys as the database reports them."""
    insp = inspect(engine)
    shape = {}
    for table in sorted(insp.get_table_names()):
        shape[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)],
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table)),
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)),
            "pk": tuple(insp.get_pk_constraint(table)["constrained_columns"]),
            "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"]) for f in insp.get_foreign_keys(table)),
        }
    return shape


def test_upgrade_creates_schema_and_is_idempotent(empty_database_url):
    engine = make_engine(empty_database_url())
    assert schema_status(engine).current == 0
    first = upgrade(engine)
    assert [m.version for m in first] == list(range(1, LATEST_VERSION + 1))
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
            lines = [l for l in statement.splitlines() if not l.startswith("--")]
            if "".join(lines).strip():
                conn.execute(text("\n".join(lines)))
    assert _shape(from_sql) == _shape(from_code)
    assert schema_status(from_sql).current == LATEST_VERSION
    from_code.dispose()
    from_sql.dispose()
