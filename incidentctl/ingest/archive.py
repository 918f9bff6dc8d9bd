"""The raw archive (`grafana_alerts`): every webhook body, byte for byte, with its label.

`RawAlert` is a request as it will be stored (body, sha256, size, the sniffed label, client
metadata); `insert_raw_alerts` writes a batch in the caller's transaction. `body_room` says how
large a body the database can store and give back: `max_allowed_packet` less a row's overhead
on MariaDB, half that on MySQL 8, no limit that matters on SQLite.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from incidentctl.db.capabilities import capabilities
from incidentctl.db.rows import insert_rows
from incidentctl.db.schema import grafana_alerts
from incidentctl.ingest.sniff import BodyLabel, label_body
from incidentctl.slicing import clip


@dataclass(frozen=True)
class RawAlert:
    """One webhook request as it will be stored."""

    received_at: datetime
    body: bytes
    label: BodyLabel
    remote_addr: str | None = None
    user_agent: str | None = None
    content_type: str | None = None
    source: str | None = None  # overrides label.source, e.g. "replay"
    body_sha256: str | None = None  # when already known (an export record carries it); else computed

    @property
    def stored_user_agent(self) -> str | None:
        return clip(self.user_agent, 255, ellipsis=False)

    def row(self) -> dict:
        return {
            "received_at": self.received_at,
            "source": self.source or self.label.source,
            "remote_addr": clip(self.remote_addr, 64, ellipsis=False),
            "user_agent": self.stored_user_agent,
            "content_type": clip(self.content_type, 255, ellipsis=False),
            "body": self.body,
            "body_sha256": self.body_sha256 or hashlib.sha256(self.body).hexdigest(),
            "body_size": len(self.body),
            "alert_count": self.label.alert_count,
            "status": self.label.status,
            "parse_error": self.label.parse_error,
        }


def raw_alert(
    body: bytes,
    *,
    received_at: datetime,
    remote_addr: str | None = None,
    user_agent: str | None = None,
    content_type: str | None = None,
    source: str | None = None,
) -> RawAlert:
    """A RawAlert with its label computed from the body."""
    return RawAlert(received_at, body, label_body(body, user_agent), remote_addr, user_agent, content_type, source)


# What a stored row needs beside its body, in a packet: the other columns (at most ~7 KiB in
# utf8mb4) and the protocol's framing, with room to spare.
ROW_OVERHEAD = 64 << 10


def insert_raw_alerts(conn: Connection, alerts: Sequence[RawAlert]) -> list[int]:
    """Inserts the rows in the caller's transaction; returns their ids in order.

    Where the database can return ids from a multi-row INSERT (SQLite, MariaDB 10.5+), one
    statement carries many rows (MariaDB: mariadb_insert, which sends a long body ahead in
    pieces, so any body up to `body_room(conn).largest` is stored); elsewhere (MySQL 8) it is
    one statement per row (db.rows.insert_rows).
    """
    return insert_rows(conn, grafana_alerts, [alert.row() for alert in alerts], returning="id")


@dataclass(frozen=True)
class BodyRoom:
    """How large a body the database stores and gives back. On MySQL/MariaDB a row travels in one
    packet of at most `max_allowed_packet` (16 MiB by default on MariaDB, 64 MiB on MySQL 8);
    SQLite sets no limit that matters (a gigabyte): `largest` is None."""

    largest: int | None
    packet: int | None = None

    def problem(self, max_body_bytes: int) -> str | None:
        """Why bodies the receiver admits (up to max_body_bytes) cannot all be stored, or None."""
        if self.largest is None or max_body_bytes <= self.largest:
            return None
        return (f"max_body_bytes is {max_body_bytes} but the database stores bodies of at most {self.largest} "
                f"bytes (max_allowed_packet = {self.packet}); raise max_allowed_packet on the server or lower "
                "INCIDENTCTL_MAX_BODY_BYTES")


def body_room(conn: Connection) -> BodyRoom:
    """This database's BodyRoom (one query on MySQL/MariaDB)."""
    caps = capabilities(conn)
    if not caps.packet_limit:
        return BodyRoom(None)
    packet = int(conn.execute(text("SELECT @@max_allowed_packet")).scalar_one())
    return BodyRoom(largest_body_for(packet, sent_ahead=caps.bulk_insert), packet)


def largest_body_for(packet: int, *, sent_ahead: bool) -> int:
    """The largest body a server with this max_allowed_packet stores and returns. MariaDB (bulk)
    builds a long body in a session variable, which the packet bounds, as it bounds the row read
    back; MySQL 8 receives the body as an escaped parameter, up to twice its size."""
    room = max(0, packet - ROW_OVERHEAD)
    return room if sent_ahead else room // 2
