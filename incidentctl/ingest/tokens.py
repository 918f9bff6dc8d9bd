"""Per-person API tokens of the REST door (`api_tokens`).

A token is `ict_` and 43 URL-safe characters (256 random bits). Only its sha256 is stored:
`add_token` returns the token once and nobody can read it back. A request's token is found by
its hash (an index lookup; a hash compared by the database, which is safe because an attacker
can neither choose the stored hash nor learn anything from a near miss of a 256-bit secret).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select, update

from incidentctl.db.engine import database_errors
from incidentctl.db.rows import inserted_id
from incidentctl.db.schema import api_tokens
from incidentctl.errors import InvalidTransition, NotFound, TokenError

PREFIX = "ict_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,254}")


@dataclass(frozen=True)
class TokenOwner:
    """Who a valid token belongs to."""

    id: int
    name: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def add_token(engine: Engine, name: str, *, created_by: str, now: datetime) -> tuple[dict, str]:
    """Stores a new token for `name`; returns (its row without the hash, the token). Raises
    TokenError for a bad name or one that already has a live token."""
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise TokenError(f"token name {name[:60]!r}: letters, digits and _.@+- only, starting with a letter or "
                         "digit, at most 255 characters")
    token = new_token()
    values = {"name": name, "token_sha256": token_hash(token), "created_at": now,
              "created_by": created_by[:255] or "unknown"}
    c = api_tokens.c
    with database_errors(engine), engine.begin() as conn:
        live = conn.scalar(select(c.id).where(c.name == name, c.revoked_at.is_(None)))
        if live is not None:
            raise TokenError(f"{name} already has a token (id {live}); revoke it first: "
                             f"incidentctl token revoke {name}")
        new_id = inserted_id(conn.execute(api_tokens.insert().values(**values)))
    return _view({**values, "id": new_id, "revoked_at": None}), token


def list_tokens(engine: Engine, *, include_revoked: bool = False) -> list[dict]:
    """Tokens by id, without their hashes; by default only the live ones."""
    c = api_tokens.c
    query = select(c.id, c.name, c.created_at, c.created_by, c.revoked_at).order_by(c.id)
    if not include_revoked:
        query = query.where(c.revoked_at.is_(None))
    with database_errors(engine), engine.connect() as conn:
        return [_view(r._mapping) for r in conn.execute(query)]


def revoke_token(engine: Engine, name_or_id: str, *, now: datetime) -> dict:
    """Revokes the live token named `name_or_id` (a name, or a token id); returns it. Raises
    NotFound, InvalidTransition (already revoked)."""
    c = api_tokens.c
    key = name_or_id.strip()
    where = c.id == int(key) if key.isdigit() else c.name == key
    with database_errors(engine), engine.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(api_tokens).where(where).order_by(c.id))]
        if not rows:
            raise NotFound(f"no token {key!r} (see incidentctl token list)")
        live = [r for r in rows if r["revoked_at"] is None]
        if not live:
            raise InvalidTransition(f"token {key!r} is already revoked")
        row = live[-1]
        conn.execute(update(api_tokens).where(c.id == row["id"]).values(revoked_at=now))
        row["revoked_at"] = now
    return _view(row)


def owner_of(conn: Connection, token: str) -> TokenOwner | None:
    """The live token's owner, or None (unknown or revoked)."""
    if not token.startswith(PREFIX):
        return None
    c = api_tokens.c
    row = conn.execute(select(c.id, c.name).where(c.token_sha256 == token_hash(token),
                                                  c.revoked_at.is_(None))).first()
    return None if row is None else TokenOwner(row.id, row.name)


def token_name(conn: Connection, token_id: int) -> str | None:
    """The name of token `token_id` (revoked or not), or None."""
    return conn.scalar(select(api_tokens.c.name).where(api_tokens.c.id == token_id))


def _view(row) -> dict:
    return {"id": row["id"], "name": row["name"], "created_at": row["created_at"], "created_by": row["created_by"],
            "state": "revoked" if row["revoked_at"] else "live", "revoked_at": row["revoked_at"]}
