"""Versioned schema migrations, recorded in `schema_migrations`.

A fresh database gets the current schema in one step (create_all) and every version recorded,
as Alembic recommends; an existing one runs the migrations it has not recorded, in order.
Each migration is a function over a Connection, written to work on MySQL and SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, Insert, Table, inspect, select, text
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.schema import CreateTable

from incidentctl.db.capabilities import capabilities
from incidentctl.db.schema import (
    MYSQL_TABLE_OPTIONS,
    NEVER_REUSED_IDS,
    QUEUE_ROW_FORMAT,
    action_inbox,
    api_tokens,
    deliveries,
    grafana_alerts,
    incident_alerts,
    incidents,
    leases,
    metadata,
    notifications,
    schema_migrations,
    seen_signatures,
    series_labels,
    silences,
    slack_message_incidents,
    slack_messages,
    slack_reminders,
    slack_replies,
)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    upgrade: Callable[[Connection], None]


def _initial(conn: Connection) -> None:
    metadata.create_all(conn)


def _incident_labels(conn: Connection) -> None:
    """Created the common-label index of `list --label` (incident_labels). Superseded: that
    list reads series_labels, and version 10 drops the table, so there is nothing to create."""


def _series_labels(conn: Connection) -> None:
    """The label index of `list --series-label`, filled from the labels of every series, a page
    of incidents at a time (each incident's pairs once)."""
    series_labels.create(conn, checkfirst=True)
    if capabilities(conn).on_duplicate_key:
        stmt = mysql_insert(series_labels)
        insert: Insert = stmt.on_duplicate_key_update(incident_id=stmt.inserted.incident_id)
    else:
        insert = sqlite_insert(series_labels).on_conflict_do_nothing()
    c, a = incidents.c, incident_alerts.c
    last = 0
    while True:
        page = dict(conn.execute(select(c.id, c.opened_at).where(c.id > last).order_by(c.id)
                                 .limit(BACKFILL_PAGE)).all())
        if not page:
            return
        first, last = min(page), max(page)
        pairs = {(row.incident_id, name, str(value))
                 for row in conn.execute(select(a.incident_id, a.labels).where(a.incident_id.between(first, last)))
                 for name, value in (row.labels or {}).items()}
        if pairs:
            conn.execute(insert, [{"incident_id": i, "name": n, "value": v, "opened_at": page[i]}
                                  for i, n, v in sorted(pairs)])


BACKFILL_PAGE = 2000


def _deliveries(conn: Connection) -> None:
    """The delivery log of Slack digests; it starts empty (no history of earlier sends exists)."""
    deliveries.create(conn, checkfirst=True)


def _seen_signatures(conn: Connection) -> None:
    seen_signatures.create(conn, checkfirst=True)


def _action_inbox(conn: Connection) -> None:
    """The action inbox and the REST door's tokens; both start empty."""
    action_inbox.create(conn, checkfirst=True)
    api_tokens.create(conn, checkfirst=True)


def _slack_messages(conn: Connection) -> None:
    """The Slack app's messages, the incidents each shows, thread replies owed, reminders sent;
    notifications.threaded_at and silences.slack_seen_at, set on every existing row (no message
    shows their incidents yet)."""
    for table in (slack_messages, slack_message_incidents, slack_replies, slack_reminders):
        table.create(conn, checkfirst=True)
    now = datetime.now(timezone.utc)
    for table, column in ((notifications, notifications.c.threaded_at), (silences, silences.c.slack_seen_at)):
        if column.name not in {c["name"] for c in inspect(conn).get_columns(table.name)}:
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
        conn.execute(table.update().where(column.is_(None)).values({column.name: now}))
    next(i for i in notifications.indexes if i.name == "ix_notifications_threaded").create(conn, checkfirst=True)


def _leases(conn: Connection) -> None:
    """The lease table, and the outbox's claim column (NULL: unclaimed, as every existing row is)."""
    leases.create(conn, checkfirst=True)
    if "claimed_by" not in {c["name"] for c in inspect(conn).get_columns(notifications.name)}:
        column = notifications.c.claimed_by
        kind = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {notifications.name} ADD COLUMN {column.name} {kind} NULL")


def _silence_replies(conn: Connection) -> None:
    """slack_replies: a row may be owed for a silence (silence_id, unique per message) instead of
    a change, so notification_id may be NULL. The rows are kept; SQLite, which cannot change a
    column, gets the table copied into its new shape."""
    if "silence_id" in {c["name"] for c in inspect(conn).get_columns(slack_replies.name)}:
        return
    if capabilities(conn).alter_columns:
        kind = slack_replies.c.silence_id.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {slack_replies.name} MODIFY notification_id {kind} NULL, "
                             f"ADD COLUMN silence_id {kind} NULL AFTER notification_id, "
                             "ADD CONSTRAINT ux_slack_replies_silence UNIQUE (message_id, silence_id)")
        return
    _sqlite_copy_into_current_shape(conn, slack_replies)


def _fewer_indexes(conn: Connection) -> None:
    """Two indexes every batch kept up and no query reads. incident_labels: a common label is
    carried by every series, so series_labels has it (exactly, where incident_labels clipped
    it), and `list` confirms it is common on incidents.common_labels. The series' fingerprint
    index: series are read by incident (ux_incident_alerts_series), never by fingerprint alone."""
    conn.exec_driver_sql("DROP TABLE IF EXISTS incident_labels")
    if "ix_incident_alerts_fingerprint" in {i["name"] for i in inspect(conn).get_indexes(incident_alerts.name)}:
        on = f" ON {incident_alerts.name}" if conn.dialect.name in ("mysql", "mariadb") else ""
        conn.exec_driver_sql(f"DROP INDEX ix_incident_alerts_fingerprint{on}")


def _queue_marks_in_place(conn: Connection) -> None:
    """grafana_alerts in the REDUNDANT row format, whose records keep the room of a NULL
    fixed-width column: setting processed_at then changes the record in place, where DYNAMIC
    rewrites it, body and all (docs/ARCHITECTURE.md). MariaDB rebuilds the table online
    (receivers keep appending); SQLite has no row formats."""
    if conn.dialect.name in ("mysql", "mariadb"):
        conn.exec_driver_sql(f"ALTER TABLE {grafana_alerts.name} ROW_FORMAT={QUEUE_ROW_FORMAT}")


def _ids_never_given_again(conn: Connection) -> None:
    """On SQLite, the tables of NEVER_REUSED_IDS copied into AUTOINCREMENT tables (SQLite cannot
    change a table's key), their rows and ids as they were; from then on SQLite keeps the highest
    id it gave and never gives it again. Ids deleted before this upgrade cannot be known: the
    counter starts at the highest id still there. MySQL and MariaDB keep such a counter already."""
    if conn.dialect.name != "sqlite":
        return
    for name in NEVER_REUSED_IDS:
        if _sqlite_autoincrement(conn, name):
            continue
        _sqlite_copy_into_current_shape(conn, metadata.tables[name])


def _declared_table_options(conn: Connection) -> None:
    """Every table in utf8mb4 and the queue in its row format, whatever created them: before
    version 13 the tables took the database's default character set (latin1 on a server left at
    its defaults, where a reason's "→" or a label outside Latin-1 fails the batch that writes it),
    and a fresh schema made through a mariadb:// URL the server's default row format. Each table
    is rebuilt only when it differs (MariaDB rebuilds online; receivers keep appending)."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return
    found = conn.execute(text(
        "SELECT table_name, table_collation, row_format FROM information_schema.tables "
        "WHERE table_schema = DATABASE()")).all()
    for name, collation, row_format in found:
        if name not in metadata.tables:
            continue
        if not (collation or "").startswith(MYSQL_TABLE_OPTIONS["charset"]):
            conn.exec_driver_sql(f"ALTER TABLE `{name}` CONVERT TO CHARACTER SET {MYSQL_TABLE_OPTIONS['charset']}")
        if name == grafana_alerts.name and (row_format or "").upper() != QUEUE_ROW_FORMAT:
            _queue_marks_in_place(conn)


def _sqlite_autoincrement(conn: Connection, name: str) -> bool:
    sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).scalar()
    return "AUTOINCREMENT" in (sql or "").upper()


def _sqlite_copy_into_current_shape(conn: Connection, table: Table) -> None:
    """SQLite's way to change a table (its documentation, 'Making Other Kinds Of Table Schema
    Changes'): create the new shape under another name, copy the rows, drop the old table and
    rename the new one, so that the other tables' foreign keys, which name the table, find the
    new one. `upgrade` turns foreign keys off for it (dropping a parent would cascade) and
    checks them before it commits."""
    new = f"{table.name}_new"  # the columns of the old shape are copied; the new shape's others take NULL
    create = str(CreateTable(table).compile(dialect=conn.dialect)).strip()
    head = f"CREATE TABLE {table.name} ("
    assert create.startswith(head), create[:80]
    conn.exec_driver_sql(f"CREATE TABLE {new} (" + create[len(head):])
    columns = ", ".join(c["name"] for c in inspect(conn).get_columns(table.name))
    conn.exec_driver_sql(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {table.name}")
    conn.exec_driver_sql(f"DROP TABLE {table.name}")  # its indexes with it
    conn.exec_driver_sql(f"ALTER TABLE {new} RENAME TO {table.name}")
    for index in table.indexes:
        index.create(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema: raw archive, incidents, events, outbox, silences", _initial),
    Migration(2, "incident_labels: the common labels of each incident, indexed for list --label", _incident_labels),
    Migration(3, "deliveries: one row per Slack digest sent, with its outcome (unknown = possible duplicate)",
              _deliveries),
    Migration(4, "seen_signatures: signatures of stored signed webhooks, so a replay is not stored twice",
              _seen_signatures),
    Migration(5, "series_labels: the labels of every series of each incident, indexed for list --series-label",
              _series_labels),
    Migration(6, "action_inbox and api_tokens: actions people take from Slack and the REST API, applied by the batch",
              _action_inbox),
    Migration(7, "slack_messages, slack_message_incidents, slack_replies, slack_reminders: bot "
                 "messages kept current, their thread replies and reminders", _slack_messages),
    Migration(8, "leases: one applier at a time cluster-wide (owner, expiry, epoch); outbox claims by row update",
              _leases),
    Migration(9, "slack_replies.silence_id: a thread reply owed for a silence that began covering "
                 "incidents of a message", _silence_replies),
    Migration(10, "incident_labels and ix_incident_alerts_fingerprint dropped: list --label reads series_labels, "
                  "series are read by incident", _fewer_indexes),
    Migration(11, "grafana_alerts in the REDUNDANT row format: process marks rows processed in place",
              _queue_marks_in_place),
    Migration(12, "incidents and grafana_alerts ids never given again on SQLite (AUTOINCREMENT), "
                  "as MySQL and MariaDB never give them", _ids_never_given_again),
    Migration(13, "every table utf8mb4 and grafana_alerts REDUNDANT, whatever the defaults of the database "
                  "and the dialect name in the URL", _declared_table_options),
)

LATEST_VERSION = MIGRATIONS[-1].version


@dataclass(frozen=True)
class SchemaStatus:
    current: int  # 0 = no schema
    latest: int
    pending: tuple[Migration, ...]


def schema_status(engine: Engine) -> SchemaStatus:
    """Which versions the database has, and which are pending."""
    with engine.connect() as conn:
        recorded = _recorded_versions(conn)
    pending = tuple(m for m in MIGRATIONS if m.version not in recorded)
    return SchemaStatus(max(recorded, default=0), LATEST_VERSION, pending)


def upgrade(engine: Engine, now: datetime | None = None) -> list[Migration]:
    """Brings the schema to the latest version; returns what it applied. Idempotent."""
    now = now or datetime.now(timezone.utc)
    with engine.connect() as conn, _sqlite_foreign_keys_off(conn), conn.begin():
        recorded = _recorded_versions(conn)
        if not recorded and not _has_app_tables(conn):
            metadata.create_all(conn)
            applied = list(MIGRATIONS)
        else:
            schema_migrations.create(conn, checkfirst=True)
            # Every migration not recorded, in order: one merged from a branch may be older than
            # the newest recorded.
            applied = [m for m in MIGRATIONS if m.version not in recorded]
            for migration in applied:
                migration.upgrade(conn)
        for migration in applied:
            conn.execute(
                schema_migrations.insert().values(
                    version=migration.version, description=migration.description, applied_at=now
                )
            )
        if conn.dialect.name == "sqlite":
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:  # a copied table lost a parent row: roll back rather than commit that
                raise RuntimeError(f"schema upgrade left {len(broken)} rows without their parent "
                                   f"(first: {tuple(broken[0])}); nothing was changed")
    return applied


@contextmanager
def _sqlite_foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite: foreign keys off while migrations copy tables (`_sqlite_copy_into_current_shape`).
    The pragma is a no-op inside a transaction, so it is set on the driver's connection before
    the upgrade's transaction begins, and set back on afterwards whatever happened."""
    if conn.dialect.name != "sqlite":
        yield
        return
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None  # None only once closed
    dbapi.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        dbapi.execute("PRAGMA foreign_keys=ON")


def _recorded_versions(conn: Connection) -> set[int]:
    if not inspect(conn).has_table(schema_migrations.name):
        return set()
    return set(conn.execute(select(schema_migrations.c.version)).scalars())


def _has_app_tables(conn: Connection) -> bool:
    existing = set(inspect(conn).get_table_names())
    return bool(existing & (set(metadata.tables) - {schema_migrations.name}))


def mysql_ddl() -> str:
    """The current schema as MySQL/MariaDB DDL, as kept in sql/schema.sql."""
    from sqlalchemy.dialects import mysql
    from sqlalchemy.schema import CreateIndex

    dialect = mysql.dialect()
    parts = [
        "-- incidentctl schema, MySQL 8 / MariaDB 10.6+ (InnoDB, utf8mb4).",
        "-- Generated by `incidentctl db ddl` from incidentctl/db/schema.py; tests check they agree.",
        f"-- Schema version {LATEST_VERSION}. Prefer `incidentctl db upgrade`, which also records the version.",
        "",
    ]
    for table in metadata.sorted_tables:
        create = str(CreateTable(table).compile(dialect=dialect)).strip()
        columns, _, options = create.rpartition(")")  # options: the table's own (engine, charset, row format)
        parts.append(f"{columns}) {options};\n")
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            parts.append(str(CreateIndex(index).compile(dialect=dialect)).strip() + ";")
        if table.indexes:
            parts.append("")
    for m in MIGRATIONS:
        description = m.description.replace("'", "''")
        parts.append(
            "INSERT INTO schema_migrations (version, description, applied_at) "
            f"VALUES ({m.version}, '{description}', UTC_TIMESTAMP(6));"
        )
    return "\n".join(parts) + "\n"
