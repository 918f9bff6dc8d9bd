"""What the database behind a connection can do, asked in one place rather than by dialect name.

Code that takes another path on one database asks a question here (`capabilities(conn).delete_limit`);
the answers come from the dialect, known once the connection is open, and are kept per dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect


@dataclass(frozen=True)
class Capabilities:
    bulk_insert: bool  # MariaDB through PyMySQL: mariadb_insert renders multi-row INSERTs (db.rows chooses it)
    returning: bool  # one INSERT … RETURNING (SQLite, MariaDB; not MySQL 8)
    returning_many: bool  # an executemany INSERT … RETURNING, its rows in parameter order
    on_duplicate_key: bool  # upserts are MySQL's ON DUPLICATE KEY UPDATE / INSERT IGNORE, else SQLite's ON CONFLICT
    row_locks: bool  # SELECT … FOR UPDATE locks rows; SQLite has one writer, which BEGIN IMMEDIATE makes the only one
    delete_limit: bool  # DELETE … LIMIT
    packet_limit: bool  # a statement or a row read back travels in one packet of at most max_allowed_packet
    server_process: bool  # statements run in a server process, so a thread waiting on one frees our interpreter
    alter_columns: bool  # ALTER TABLE … MODIFY a column / ADD a constraint; SQLite copies the table instead
    live_auto_increment: bool  # information_schema.tables.AUTO_INCREMENT is the table's counter now (MySQL 8 caches it)


def capabilities(conn: Connection) -> Capabilities:
    """What the database behind `conn` can do."""
    known = _KNOWN.get(conn.dialect)
    if known is None:
        known = _KNOWN[conn.dialect] = _of(conn.dialect)
    return known


_KNOWN: WeakKeyDictionary[Dialect, Capabilities] = WeakKeyDictionary()


def _of(dialect: Dialect) -> Capabilities:
    mysql = dialect.name in ("mysql", "mariadb")
    mariadb = mysql and bool(getattr(dialect, "is_mariadb", False))
    return Capabilities(
        bulk_insert=mariadb and dialect.driver == "pymysql",
        returning=bool(dialect.insert_returning),
        returning_many=bool(dialect.insert_executemany_returning_sort_by_parameter_order),
        on_duplicate_key=mysql,
        row_locks=mysql,
        delete_limit=mysql,
        packet_limit=mysql,
        server_process=mysql,  # SQLite works inside our process, under our interpreter lock
        alter_columns=mysql,
        live_auto_increment=mariadb,
    )
