"""Many rows written at once, by one entry whatever the database: on MariaDB through
mariadb_insert's rendered statements, elsewhere (SQLite, MySQL 8) through SQLAlchemy's."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

from sqlalchemy import Connection, CursorResult, Table, bindparam, func, null, text, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from incidentctl.db import mariadb_insert
from incidentctl.db.capabilities import capabilities
from incidentctl.slicing import chunks

# SQLite's multi-row INSERT … RETURNING statements carry up to this many bytes of binary values
# (the archive's bodies); MariaDB's statements are mariadb_insert's.
STATEMENT_BYTES = 4 << 20


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict], *, returning: str | None = None,
                on_conflict: tuple[str, ...] = (), update: Sequence[str] = ()) -> list:
    """INSERTs `rows` (all with the same keys) into `table`, in the caller's transaction.

    With `on_conflict` (the columns of a unique key), a row whose key is taken updates the
    `update` columns of the row holding it instead, or, without `update`, leaves it as it is
    (MySQL and MariaDB do so for a duplicate of any unique key). With `returning` (the
    autoincrement primary key) a plain INSERT returns its values in row order: in one statement
    where the database returns ids from a multi-row INSERT (MariaDB, SQLite), else a statement
    per row (MySQL 8). Python-side column defaults are not applied: rows carry every such column."""
    if not rows:
        return []
    caps = capabilities(conn)
    if caps.bulk_insert:
        pipeline = _PIPELINES.get(id(conn))
        if on_conflict and not update:
            key = conn.dialect.identifier_preparer.quote(on_conflict[0])
            return mariadb_insert.insert(conn, table, rows, update_sql=f"{key} = {key}", pipeline=pipeline)
        return mariadb_insert.insert(conn, table, rows, update=update, returning=returning, pipeline=pipeline)
    if on_conflict:
        conn.execute(_upsert(table, caps.on_duplicate_key, on_conflict, tuple(update)), rows)
        return []
    if returning is None:
        conn.execute(table.insert(), rows)
        return []
    if not caps.returning_many:
        return [_new_id(conn, table, row) for row in rows]
    statement = table.insert().returning(table.c[returning], sort_by_parameter_order=True)
    ids: list = []
    for chunk in _by_size(table, rows):
        if len(chunk) == 1:
            ids.append(_new_id(conn, table, chunk[0]))
        else:
            ids.extend(conn.execute(statement, chunk).scalars())
    return ids


@contextmanager
def pipelined(conn: Connection) -> Iterator[bool]:
    """Inside the block, `insert_rows` without `returning` may return before the server has run
    its statements: where the database works in a process of its own and the rows go through
    mariadb_insert, they run in order on a helper thread while the caller prepares the next
    rows. The block ends once all have run, raising the first failure (the ones behind it did
    not run). Inside it, use `conn` through `insert_rows` only. Elsewhere a plain block. Gives
    whether statements may run on behind the caller (a pipeline of this block or of one around it)."""
    caps = capabilities(conn)
    if not (caps.bulk_insert and caps.server_process) or id(conn) in _PIPELINES:
        yield id(conn) in _PIPELINES
        return
    pipeline = _PIPELINES[id(conn)] = mariadb_insert.Pipeline(conn)
    try:
        yield True
        pipeline.wait()
    except BaseException:
        pipeline.stop()  # what is still queued is not run: the transaction fails anyway
        raise
    finally:
        del _PIPELINES[id(conn)]
        pipeline.close()


_PIPELINES: dict[int, mariadb_insert.Pipeline] = {}  # by id() of the connection, while its block runs


def inserted_id(result: CursorResult) -> Any:
    """The primary key of the row a single-row INSERT inserted."""
    key = result.inserted_primary_key
    assert key is not None  # a single-row INSERT always has one
    return key[0]


def _new_id(conn: Connection, table: Table, row: dict) -> Any:
    return inserted_id(conn.execute(table.insert(), row))


def reserve_ids(conn: Connection, table: Table, count: int) -> list[int] | None:
    """`count` ids for new rows of `table` that the caller inserts with their `id` set: the next
    values of the table's AUTO_INCREMENT counter, which never gives again an id a row had (a
    deleted incident's id may still be in a Slack message's buttons), so that the INSERT needs
    no answer and can run on behind the caller (`pipelined`). Only for a writer no other can
    insert beside (the applier lease's holder). None where the database does not tell the
    counter as it is now: the caller inserts with `returning`."""
    if not capabilities(conn).live_auto_increment:
        return None
    pipeline = _PIPELINES.get(id(conn))
    if pipeline is not None:
        pipeline.wait()  # the connection is the pipeline's while statements are pending
    first = conn.execute(_AUTO_INCREMENT, {"table": table.name}).scalar()
    if first is None:  # the server keeps no counter for the table: let it give the ids
        return None
    return list(range(int(first), int(first) + count))


_AUTO_INCREMENT = text("SELECT auto_increment FROM information_schema.tables "
                       "WHERE table_schema = DATABASE() AND table_name = :table")


def update_rows(conn: Connection, table: Table, rows: Sequence[dict]) -> None:
    """Updates rows of `table` that exist, each named by its `id`, to its other columns, in the
    caller's transaction. Each row is whole (every column without a default: MySQL inserts it
    before it meets the duplicate key), and all have the same keys. Inside `pipelined` on MariaDB
    it may return before the server has run it.

    MySQL/MariaDB: one multi-row INSERT … ON DUPLICATE KEY UPDATE instead of a round trip per row.
    Every id exists, so InnoDB meets the primary key first; should another unique key of the
    table meet a row instead, `id = NULL` fails the statement rather than update that row."""
    if not rows:
        return
    columns = tuple(k for k in rows[0] if k != "id")
    caps = capabilities(conn)
    if caps.bulk_insert:
        name = conn.dialect.identifier_preparer.quote(table.name)
        mariadb_insert.insert(conn, table, rows, update=columns, pipeline=_PIPELINES.get(id(conn)),
                              update_sql=f"id = IF({name}.id = VALUES(id), {name}.id, NULL)")
    elif caps.on_duplicate_key:
        conn.execute(_guarded_upsert(table, columns), rows)
    else:
        conn.execute(_update_by_id(table, columns), [{**row, "_id": row["id"]} for row in rows])


def update_where_in(conn: Connection, table: Table, values: dict[str, Any], key: str, keys: Sequence[Any]) -> None:
    """Sets `values` on the rows of `table` whose `key` column is one of `keys`, in the caller's
    transaction. Inside `pipelined` on MariaDB it may return before the server has run it."""
    if not keys:
        return
    pipeline = _PIPELINES.get(id(conn))
    if pipeline is not None:
        for statement in mariadb_insert.update_statements(conn, table, values, key, keys):
            pipeline.send(statement)
        return
    statement = _update_where_in(table, key, tuple(values))
    for chunk in chunks(keys, mariadb_insert.CHUNK_KEYS):
        conn.execute(statement, {**{f"_set_{c}": v for c, v in values.items()}, "_keys": list(chunk)})


# Built once per table and set of columns: statements built per call leave cyclic garbage (ops/gc_tuning.py).
@cache
def _upsert(table: Table, on_duplicate_key: bool, key: tuple[str, ...], columns: tuple[str, ...]):
    if on_duplicate_key:
        mysql = mysql_insert(table)
        # without columns to update, the key's first column set to itself: the row stays as it is
        return mysql.on_duplicate_key_update({c: mysql.inserted[c] for c in columns or key[:1]})
    sqlite = sqlite_insert(table)
    if not columns:
        return sqlite.on_conflict_do_nothing(index_elements=list(key))
    return sqlite.on_conflict_do_update(index_elements=list(key), set_={c: sqlite.excluded[c] for c in columns})


@cache
def _guarded_upsert(table: Table, columns: tuple[str, ...]):
    stmt = mysql_insert(table)
    guard = func.if_(table.c.id == stmt.inserted.id, table.c.id, null())
    return stmt.on_duplicate_key_update([("id", guard)] + [(c, stmt.inserted[c]) for c in columns])


@cache
def _update_by_id(table: Table, columns: tuple[str, ...]):
    return update(table).where(table.c.id == bindparam("_id")).values({c: bindparam(c) for c in columns})


def _by_size(table: Table, rows: Sequence[dict]) -> Sequence[Sequence[dict]]:
    """`rows` in runs whose binary values (a table's bodies) stay within STATEMENT_BYTES."""
    binary = _binary_columns(table)
    if not binary:
        return [rows]
    chunks: list[list[dict]] = []
    size = 0
    for row in rows:
        length = sum(len(row[name] or b"") for name in binary if name in row)
        if not chunks or size + length > STATEMENT_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += length
    return chunks


@cache
def _binary_columns(table: Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.c if _python_type(c.type) is bytes)


def _python_type(column_type) -> type | None:
    try:
        return column_type.python_type
    except NotImplementedError:
        return None


@cache
def _update_where_in(table: Table, key: str, columns: tuple[str, ...]):
    return (update(table).where(table.c[key].in_(bindparam("_keys", expanding=True)))
            .values({c: bindparam(f"_set_{c}") for c in columns}))
