"""Signatures already seen (`seen_signatures`), shared by every receiver using the database.

A signed request is valid while its signed timestamp is inside the allowed skew; replaying it
in that window would pass the signature check again. Its signature is recorded in the same
transaction as what the request stores, under a primary key, so the second use finds it taken
(from any receiver) and stores nothing. A record is useless once its signature has expired, and
is deleted then (`forget_expired`). Generic: the scheme names the signer (Grafana's HMAC now).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete
from sqlalchemy.dialects import mysql, sqlite

from incidentctl.db.capabilities import capabilities
from incidentctl.db.schema import seen_signatures

# Receivers' clocks differ a little: a record is kept this long past its expiry, so a receiver
# whose clock is behind never accepts what another has already forgotten.
CLOCK_MARGIN = timedelta(minutes=1)
FORGET_BATCH = 10_000


@dataclass(frozen=True)
class Signature:
    """One use of a signature: `key` identifies it, and after `expires_at` the signer's own check
    refuses it (e.g. the signed timestamp plus the allowed skew)."""

    key: str
    expires_at: datetime


def signature(scheme: str, value: str, expires_at: datetime) -> Signature:
    """The Signature of `value` under `scheme` (e.g. "grafana-hmac"); the key is a sha256, so
    every scheme fits the same column."""
    return Signature(hashlib.sha256(f"{scheme}:{value}".encode()).hexdigest(), expires_at)


def claim(conn: Connection, uses: Sequence[Signature], now: datetime) -> set[str]:
    """Records the signatures in the caller's transaction; returns the keys recorded here, i.e.
    seen for the first time. A key recorded before (by any receiver, committed or in flight:
    the key's lock makes the second wait for the first) is not returned."""
    by_key = {u.key: {"signature_hash": u.key, "seen_at": now, "expires_at": u.expires_at} for u in uses}
    rows: list[dict[str, Any]] = list(by_key.values())
    if not rows:
        return set()
    c = seen_signatures.c
    caps = capabilities(conn)
    if not caps.on_duplicate_key:
        statement = sqlite.insert(seen_signatures).values(rows).on_conflict_do_nothing()
        return set(conn.execute(statement.returning(c.signature_hash)).scalars())
    ignore = mysql.insert(seen_signatures).prefix_with("IGNORE")
    if caps.returning:  # INSERT IGNORE … RETURNING names only the rows inserted
        return set(conn.execute(ignore.values(rows).returning(c.signature_hash)).scalars())
    return {row["signature_hash"] for row in rows if conn.execute(ignore, row).rowcount == 1}


def forget_expired(conn: Connection, now: datetime) -> int:
    """Deletes records that can no longer match a valid request (committing every FORGET_BATCH
    rows, so a long pause never makes one long transaction); returns how many."""
    cutoff = now - CLOCK_MARGIN
    c = seen_signatures.c
    total = 0
    limited = capabilities(conn).delete_limit
    while True:
        statement = delete(seen_signatures).where(c.expires_at < cutoff)
        if limited:
            statement = statement.with_dialect_options(mysql_limit=FORGET_BATCH)
        with conn.begin():
            deleted = conn.execute(statement).rowcount
        total += deleted
        if not limited or deleted < FORGET_BATCH:
            return total
