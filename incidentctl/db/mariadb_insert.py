"""Multi-row INSERTs rendered in one go on MariaDB, for the hot paths of replay and process.

Through SQLAlchemy's executemany, each row's parameters are processed by SQLAlchemy and then
escaped value by value again by PyMySQL (`mogrify`): most of the client's time on a batch of
thousands of rows. Here each column's bind processor (the same SQLAlchemy type conversion) runs
once per value and a row is one join of literals escaped by PyMySQL's rules, including its
NO_BACKSLASH_ESCAPES handling. Statements are split at STATEMENT_CHARS of text, literals as sent
(a body's hex is twice its size), far under MariaDB's 16 MiB `max_allowed_packet`; a value too
long for that (a webhook body of megabytes) is sent ahead in pieces into a session variable that
the INSERT names, so no statement outgrows the packet whatever the value. Other databases
(SQLite, MySQL 8) take the ordinary SQLAlchemy path: `db.rows.insert_rows` chooses, by
`capabilities(conn).bulk_insert`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from operator import itemgetter
from queue import SimpleQueue
from threading import Condition, Thread
from typing import Any

from pymysql.constants.SERVER_STATUS import SERVER_STATUS_NO_BACKSLASH_ESCAPES
from pymysql.converters import escape_string
from sqlalchemy import Connection, Table, text
from sqlalchemy.exc import SQLAlchemyError

from incidentctl.db.schema import JsonText, LabelKey, UtcDateTime, label_key

# Fewer round trips than smaller statements, less memory than larger ones, far under MariaDB's
# 16 MiB max_allowed_packet (docs/PERFORMANCE.md, History).
STATEMENT_CHARS = 2 << 20
# From this many rows, ids come from LAST_INSERT_ID() (`consecutive_ids`): reading RETURNING rows
# costs more than asking the server about its AUTO_INCREMENT settings (docs/PERFORMANCE.md).
CONSECUTIVE_MIN_ROWS = 500


class ValueTooLong(SQLAlchemyError):
    """A value is longer than the server will hold (its max_allowed_packet); nothing was stored."""


def insert(conn: Connection, table: Table, rows: Sequence[dict], *, update: Sequence[str] = (),
           update_sql: str = "", returning: str | None = None, pipeline: Pipeline | None = None) -> list:
    """INSERT `rows` (all with the same keys) into `table`, in the caller's transaction. `update_sql`
    then `update` columns (col = VALUES(col)) make it an upsert (ON DUPLICATE KEY UPDATE). With
    `returning` (the autoincrement primary key), returns its values in row order: from RETURNING,
    or for a plain INSERT of many rows from LAST_INSERT_ID() (`consecutive_ids`). SQLAlchemy's
    Python-side column defaults are not applied: rows carry every such column. With a `pipeline`
    (and no `returning`), the statements are handed to it and may still be running on return;
    with `returning`, its statements run first (the answer is needed now)."""
    if not rows:
        return []
    if pipeline is not None:
        if returning is None:
            _send(conn, table, rows, update, update_sql, pipeline)
            return []
        pipeline.wait()
    names = list(rows[0])
    head, tail = _head_tail(conn, table, names, update, update_sql)
    consecutive = (returning is not None and not tail and len(rows) >= CONSECUTIVE_MIN_ROWS
                   and consecutive_ids(conn))
    if returning is not None and not consecutive:
        tail += f" RETURNING {conn.dialect.identifier_preparer.quote(returning)}"
    values: list = []
    ahead = _SentAhead(conn)
    try:
        for statement in _statements(conn, table, names, rows, head, tail, ahead):
            # no_parameters: the statement goes to the driver as is (no %-formatting of the data).
            result = conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
            if consecutive:
                values.extend(range(result.lastrowid, result.lastrowid + result.rowcount))
            elif returning is not None:
                # InnoDB gives a multi-row INSERT increasing ids in VALUES order (SQLAlchemy's
                # insertmanyvalues relies on the same), so sorted ids follow the rows.
                values.extend(sorted(result.scalars()))
    except BaseException:
        ahead.release(after_failure=True)
        raise
    ahead.release()
    if returning is not None and len(values) != len(rows):
        raise RuntimeError(f"INSERT INTO {table.name} returned {len(values)} ids for {len(rows)} rows")
    return values


def _send(conn: Connection, table: Table, rows: Sequence[dict], update: Sequence[str], update_sql: str,
          pipeline: Pipeline) -> None:
    head, tail = _head_tail(conn, table, list(rows[0]), update, update_sql)
    ahead = _SentAhead(conn, before=pipeline.wait)
    for statement in _statements(conn, table, list(rows[0]), rows, head, tail, ahead):
        pipeline.send(statement)
    if ahead.names:
        pipeline.send(ahead.release_statement())
        ahead.names = []


def _head_tail(conn: Connection, table: Table, names: list[str], update: Sequence[str],
               update_sql: str) -> tuple[str, str]:
    quote = conn.dialect.identifier_preparer.quote
    head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES "
    assignments = ([update_sql] if update_sql else []) + [f"{quote(n)} = VALUES({quote(n)})" for n in update]
    return head, " ON DUPLICATE KEY UPDATE " + ", ".join(assignments) if assignments else ""


def update_statements(conn: Connection, table: Table, values: dict[str, Any], key: str,
                      keys: Sequence[Any]) -> Iterator[str]:
    """`UPDATE table SET values WHERE key IN (keys)` as statements of literal text (for a
    `Pipeline`), CHUNK_KEYS keys each, the values rendered as `insert` renders them."""
    quote = conn.dialect.identifier_preparer.quote
    assignments = ", ".join(f"{quote(name)} = {_converter(conn, table.c[name].type)(value)}"
                            for name, value in values.items())
    literal = _converter(conn, table.c[key].type)
    for start in range(0, len(keys), CHUNK_KEYS):
        listed = ",".join(map(literal, keys[start:start + CHUNK_KEYS]))
        yield f"UPDATE {quote(table.name)} SET {assignments} WHERE {quote(key)} IN ({listed})"


CHUNK_KEYS = 500


class Pipeline:
    """Statements run in order on a helper thread of their own, on the caller's connection, while
    the caller renders the next ones: the server's work on one statement overlaps ours on the
    next (the thread waits on the socket, which frees the interpreter). After a statement fails,
    the ones behind it are not run; `wait` raises that failure. While statements are pending,
    only the pipeline may use the connection: `wait` first to use it directly."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._queue: SimpleQueue = SimpleQueue()
        self._pending = 0
        self._done = Condition()
        self._failure: BaseException | None = None
        self._stopped = False
        self._thread = Thread(target=self._run, name="incidentctl-insert", daemon=True)
        self._thread.start()

    def send(self, statement: str) -> None:
        with self._done:
            self._pending += 1
        self._queue.put(statement)

    def wait(self) -> None:
        """Returns once every statement sent has run; raises the first failure (once)."""
        with self._done:
            self._done.wait_for(lambda: self._pending == 0)
            failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def stop(self) -> None:
        """The statements not yet run are skipped."""
        self._stopped = True

    def close(self) -> None:
        """Stops the thread once the statements sent have run (or been skipped)."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (statement := self._queue.get()) is not None:
            if self._failure is None and not self._stopped:
                try:
                    self.conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
                except BaseException as exc:  # the caller's to raise, from `wait`
                    self._failure = exc
            with self._done:
                self._pending -= 1
                self._done.notify_all()


def consecutive_ids(conn: Connection) -> bool:
    """Whether a plain multi-row INSERT gives its rows the ids LAST_INSERT_ID(), +1, +2, …: InnoDB's
    'traditional' and 'consecutive' AUTO_INCREMENT lock modes (0, 1; 1 is MariaDB's default) give
    the rows of one such statement consecutive values, and the increment is 1. Then ids need no
    RETURNING, whose rows PyMySQL reads one by one in Python. Elsewhere (mode 2, a Galera
    increment, a server without the variable) RETURNING is used."""
    found: dict[str, str] = {name: value for name, value in conn.execute(_AUTOINC_SETTINGS)}
    return found.get("INNODB_AUTOINC_LOCK_MODE") in ("0", "1") and found.get("AUTO_INCREMENT_INCREMENT") == "1"


_AUTOINC_SETTINGS = text("SELECT UPPER(variable_name), variable_value FROM information_schema.session_variables "
                         "WHERE variable_name IN ('innodb_autoinc_lock_mode', 'auto_increment_increment')")


def _statements(conn: Connection, table: Table, names: list[str], rows: Sequence[dict], head: str,
                tail: str, ahead: _SentAhead) -> Iterator[str]:
    columns = [_column_renderer(conn, table.c[n].type, ahead) for n in names]
    # One copy of a row's literals (bodies are most of the text): "(%s,%s,…)" % literals.
    template = "(" + ",".join(["%s"] * len(names)) + ")"
    parts: list[str] = []
    size = 0
    for start in range(0, len(rows), RENDER_ROWS):
        chunk = rows[start:start + RENDER_ROWS]
        # Column by column: a column's literals come from its memo in one pass (see _column_renderer).
        literals = [render(list(map(itemgetter(name), chunk))) for name, render in zip(names, columns, strict=True)]
        texts = list(map(template.__mod__, zip(*literals, strict=True)))
        grown = size + sum(map(len, texts)) + len(texts)
        if grown <= STATEMENT_CHARS:  # the whole chunk fits: no row of it would start a statement
            parts.extend(texts)
            size = grown
            continue
        for row_text in texts:
            if parts and size + len(row_text) > STATEMENT_CHARS:
                statement = head + ",".join(parts) + tail
                parts, size = [], 0  # the rows' texts go before the statement is sent
                yield statement
            parts.append(row_text)
            size += len(row_text) + 1
    yield head + ",".join(parts) + tail


# UTC datetimes → their literals, shared by every UtcDateTime column (a literal depends on the
# value alone); emptied when it grows past TIME_LITERALS_MAX (a few MB).
_TIME_LITERALS: dict[datetime, str] = {}
TIME_LITERALS_MAX = 20_000

# Rows rendered at a time, column by column: few enough that a batch of bodies' literals is
# small beside a statement.
RENDER_ROWS = 100


def _column_renderer(conn: Connection, column_type: Any, ahead: _SentAhead) -> Callable[[list], list[str]]:
    """A column's values → their literals (`_converter`). Within one `insert`, a value's literal is
    rendered once and reused: most columns repeat a few values (a source, a batch's processing
    time, a state, an incident's labels), and they are looked up in one call over the column
    (map(memo.get)) rather than a Python call per value. Bodies and JSON documents, unique or
    unhashable, are rendered each time."""
    convert = _converter(conn, column_type, ahead)
    if _python_type(column_type) is bytes or isinstance(column_type, JsonText):
        return lambda values: list(map(convert, values))  # unique or unhashable: nothing to look up
    memo: dict[Any, str] = {}
    if isinstance(column_type, UtcDateTime):
        # One time is written to several columns and tables (a series' start is its row's
        # starts_at and last_event_at and its timeline entry's time) and again in later batches
        # (a series' counters): rendered once per run, not once per column.
        if len(_TIME_LITERALS) > TIME_LITERALS_MAX:
            _TIME_LITERALS.clear()
        memo = _TIME_LITERALS
    get = memo.get

    def render_all(values: list) -> list[str]:
        try:
            found: list = list(map(get, values))  # None where not seen yet
        except TypeError:  # an unhashable value
            return list(map(convert, values))
        for i, literal in enumerate(found):
            if literal is None:
                value = values[i]
                found[i] = memo[value] = convert(value)
        return found

    return render_all


def _converter(conn: Connection, column_type: Any, ahead: _SentAhead | None = None) -> Callable[[Any], str]:
    """A column's value → its SQL literal: the column type's bind processor, then `_literal` (or,
    for a value too long for a statement, the session variable `ahead` sent it into)."""
    literal = _literal(conn)
    longest = _long_units() if ahead is not None else float("inf")
    if ahead is not None:
        short = literal

        def literal(value: Any) -> str:
            kind = type(value)
            if (kind is bytes or kind is str) and len(value) > longest:
                return ahead.send(value, short)
            return short(value)

    process = column_type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    convert = literal if process is None else (lambda value: literal(process(value)))
    if isinstance(column_type, UtcDateTime):
        convert = _utc_datetime(convert)
    if isinstance(column_type, LabelKey):  # text to its key's bytes (never long), in one call
        return lambda value: "X'" + label_key(value).hex() + "'" if type(value) is str else convert(value)
    if _python_type(column_type) is bytes:
        return lambda value: ("X'" + value.hex() + "'" if type(value) is bytes and len(value) <= longest
                              else convert(value))
    return convert


def _long_units() -> int:
    """Bytes (or characters) from which a value is sent ahead: its literal could pass half a
    statement (hex doubles bytes; escaping at most doubles text)."""
    return STATEMENT_CHARS // 4


class _SentAhead:
    """Values too long for a statement, each sent into a session variable (`@incidentctl_long_N`)
    in pieces whose literals are at most STATEMENT_CHARS long; the INSERT names the
    variable. A variable is as long as a value can be on the server: the final length is read
    back (assigning inside SELECT costs no extra round trip), and a value the server cut
    (CONCAT gives NULL past max_allowed_packet) raises ValueTooLong instead of storing less."""

    def __init__(self, conn: Connection, before: Callable[[], None] | None = None) -> None:
        self.conn = conn
        self.names: list[str] = []
        self.before = before  # run before the connection is used (a pipeline's `wait`)

    def send(self, value: bytes | str, literal: Callable[[Any], str]) -> str:
        if self.before is not None:
            self.before()
        name = f"@incidentctl_long_{len(self.names)}"
        self.names.append(name)
        step = STATEMENT_CHARS // 2
        measure = "LENGTH" if type(value) is bytes else "CHAR_LENGTH"
        length = None
        for start in range(0, len(value), step):
            piece = literal(value[start:start + step])
            assigned = piece if start == 0 else f"CONCAT({name}, {piece})"
            length = self.conn.exec_driver_sql(f"SELECT {measure}({name} := {assigned})",
                                               execution_options={"no_parameters": True}).scalar()
        if length != len(value):
            raise ValueTooLong(f"a value of {len(value)} {'bytes' if measure == 'LENGTH' else 'characters'} "
                               "is longer than the database accepts (max_allowed_packet)")
        return name

    def release_statement(self) -> str:
        return "SET " + ", ".join(f"{n} = NULL" for n in self.names)

    def release(self, after_failure: bool = False) -> None:
        """Frees the variables' memory on the server (the connection goes back to the pool).
        After a failure, that failure is what matters: a broken connection frees them itself."""
        if not self.names:
            return
        statement = self.release_statement()
        self.names = []
        try:
            self.conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
        except SQLAlchemyError:
            if not after_failure:
                raise


def _utc_datetime(convert: Callable[[Any], str]) -> Callable[[Any], str]:
    """A UtcDateTime column's renderer: a UTC datetime straight to its literal (what the type's
    bind processor and PyMySQL write: naive UTC, microseconds when set), others through `convert`."""

    def render(value: Any) -> str:
        if type(value) is datetime and value.tzinfo is timezone.utc:
            return "'" + value.isoformat(" ")[:-6] + "'"  # without "+00:00"
        return convert(value)

    return render


def _python_type(column_type: Any) -> type | None:
    try:
        return column_type.python_type
    except NotImplementedError:
        return None


def _literal(conn: Connection) -> Callable[[Any], str]:
    """A value → its SQL literal, as PyMySQL's `Connection.escape` writes it."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None  # None only once the connection is closed
    fallback = dbapi.escape

    def literal(value: Any) -> str:
        kind = type(value)
        if kind is str:
            if dbapi.server_status & SERVER_STATUS_NO_BACKSLASH_ESCAPES:  # as PyMySQL checks it, per value
                return "'" + value.replace("'", "''") + "'"
            return "'" + _escape(value) + "'"
        if value is None:
            return "NULL"
        if kind is int:
            return str(value)
        if kind is datetime and value.tzinfo is None:
            return "'" + value.isoformat(" ") + "'"  # what converters.escape_datetime writes
        if kind is bytes:
            return "X'" + value.hex() + "'"
        return fallback(value)

    return literal


def _escape(value: str) -> str:
    """PyMySQL's `escape_string`, faster for text with none of its special characters but `"`
    (JSON documents): `str.translate` looks every character up in a table."""
    if "\\" in value or "'" in value or "\n" in value or "\r" in value or "\x00" in value or "\x1a" in value:
        return escape_string(value)
    return value.replace('"', '\\"')
