"""Silences (maintenance windows): label matchers with a time window, a creator and a comment.

A silenced alert still updates its incident; only its Slack notifications are suppressed.
Whether an outbox row is silenced is decided at the change's `created_at` (its event time),
not at the time `notify` runs, so the answer is the same whenever notify runs: a change that
happened inside a window stays suppressed after the window ends, and one that happened after
it is sent. The labels matched are the incident's (see `silence_labels`).
`silenced_incidents()` tells `list` and `show` which incidents are silenced now.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, or_, select

from incidentctl.db.engine import database_errors
from incidentctl.db.rows import inserted_id
from incidentctl.db.schema import incidents, silences
from incidentctl.errors import InvalidSilence, InvalidTransition, NotFound

OPS = ("=~", "!~", "!=", "=")  # longest first, so `a!=b` is not read as `a!` = `b`
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    op: str = "="

    def matches(self, labels: Mapping[str, Any]) -> bool:
        actual = str(labels.get(self.name, ""))
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = re.fullmatch(self.value, actual) is not None
        return hit if self.op == "=~" else not hit

    def as_dict(self) -> dict:
        return {"name": self.name, "op": self.op, "value": self.value}

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """`k=v`, `k!=v`, `k=~regex`, `k!~regex` → Matcher. Raises InvalidSilence."""
    for op in OPS:
        name, sep, value = text.partition(op)
        if sep and "=" not in name and "!" not in name and "~" not in name:
            name = name.strip()
            if not _NAME.match(name):
                raise InvalidSilence(f"matcher {text!r}: label name {name!r} is not a valid label name")
            if op in ("=~", "!~"):
                try:
                    re.compile(value)
                except re.error as exc:
                    raise InvalidSilence(f"matcher {text!r}: bad regular expression: {exc}") from None
            return Matcher(name, value, op)
    raise InvalidSilence(f"matcher {text!r}: expected name=value (or !=, =~, !~)")


def matchers_from(stored: Iterable[Mapping[str, Any]]) -> list[Matcher]:
    return [Matcher(m["name"], m["value"], m.get("op", "=")) for m in stored]


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, Any]) -> bool:
    """True when every matcher holds; a silence without matchers silences nothing."""
    return bool(matchers) and all(m.matches(labels) for m in matchers)


def effective_end(row: Mapping[str, Any]) -> datetime:
    """When the silence stops: its end, or earlier if someone expired it."""
    end = row["ends_at"]
    return min(end, row["expired_at"]) if row.get("expired_at") else end


def active_at(row: Mapping[str, Any], moment: datetime) -> bool:
    return row["starts_at"] <= moment < effective_end(row)


def state_of(row: Mapping[str, Any], now: datetime) -> str:
    """pending (not started) | active | expired."""
    if now < row["starts_at"]:
        return "pending"
    return "active" if now < effective_end(row) else "expired"


def silence_labels(incident: Mapping[str, Any] | RowMapping) -> dict[str, Any]:
    """Labels a silence is matched against: the incident's common labels, its group labels, and
    its alertname/cluster/namespace/service/severity columns."""
    labels: dict[str, Any] = {}
    labels.update(incident.get("common_labels") or {})
    labels.update(incident.get("group_labels") or {})
    for key in ("alertname", "cluster", "namespace", "service", "severity"):
        if incident.get(key) and key not in labels:
            labels[key] = incident[key]
    return labels


def silence_for(rows: Sequence[Mapping[str, Any]], labels: Mapping[str, Any], moment: datetime) -> int | None:
    """Id of the first silence active at `moment` whose matchers all hold, else None."""
    for row in rows:
        if active_at(row, moment) and matches_all(matchers_from(row["matchers"]), labels):
            return row["id"]
    return None


# --- storage -----------------------------------------------------------------------------------

def add_silence(engine: Engine, matchers: Sequence[Matcher], *, starts_at: datetime, ends_at: datetime,
                comment: str, created_by: str, now: datetime) -> dict:
    """Stores a silence; returns it. Raises InvalidSilence."""
    with database_errors(engine), engine.begin() as conn:
        return silence_on(conn, matchers, starts_at=starts_at, ends_at=ends_at, comment=comment,
                          created_by=created_by, now=now)


def silence_on(conn: Connection, matchers: Sequence[Matcher], *, starts_at: datetime, ends_at: datetime,
               comment: str, created_by: str, now: datetime) -> dict:
    """`add_silence` in the caller's transaction."""
    if not matchers:
        raise InvalidSilence("a silence needs at least one --match")
    if not comment.strip():
        raise InvalidSilence("a silence needs a --comment saying why")
    if ends_at <= starts_at or ends_at <= now:
        raise InvalidSilence(f"the silence would end at {ends_at.isoformat()}, which is not in the future")
    values = {"matchers": [m.as_dict() for m in matchers], "starts_at": starts_at, "ends_at": ends_at,
              "created_by": created_by.strip()[:255] or "unknown", "comment": comment.strip(), "created_at": now}
    new_id = inserted_id(conn.execute(silences.insert().values(**values)))
    return _view({**values, "id": new_id, "expired_at": None}, now)


def incident_matchers(incident: Mapping[str, Any] | RowMapping) -> list[Matcher]:
    """The matchers that silence "this incident and its kind": its group labels that have a value
    (what makes its fingerprint), else its alertname/cluster/namespace/service. Pure."""
    group = {k: str(v) for k, v in (incident.get("group_labels") or {}).items() if v not in (None, "")}
    if not group:
        group = {k: str(incident[k]) for k in ("alertname", "cluster", "namespace", "service") if incident.get(k)}
    return [Matcher(name, value) for name, value in sorted(group.items()) if _NAME.match(name)]


def list_silences(engine: Engine, now: datetime, *, include_expired: bool = False) -> list[dict]:
    """Silences, newest first; by default only those not yet over."""
    query = select(silences).order_by(silences.c.id.desc())
    if not include_expired:
        query = query.where(silences.c.ends_at > now, silences.c.expired_at.is_(None))
    with database_errors(engine), engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    return [_view(r, now) for r in rows]


def expire_silence(engine: Engine, silence_id: int, now: datetime) -> dict:
    """Ends a silence now. Raises NotFound, InvalidTransition (already over)."""
    with database_errors(engine), engine.begin() as conn:
        found = conn.execute(select(silences).where(silences.c.id == silence_id)).first()
        if found is None:
            raise NotFound(f"no silence {silence_id}")
        row = dict(found._mapping)
        if state_of(row, now) == "expired":
            raise InvalidTransition(f"silence {silence_id} is already over (since {effective_end(row).isoformat()})")
        conn.execute(silences.update().where(silences.c.id == silence_id).values(expired_at=now))
        row["expired_at"] = now
    return _view(row, now)


def silences_active_between(conn: Connection, start: datetime, end: datetime) -> list[dict]:
    """Silences that were active at some moment in [start, end], for matching outbox rows."""
    query = select(silences).where(
        silences.c.starts_at <= end, silences.c.ends_at > start,
        or_(silences.c.expired_at.is_(None), silences.c.expired_at > start),
    ).order_by(silences.c.id)
    return [dict(r._mapping) for r in conn.execute(query)]


def silenced_incidents(engine: Engine, incident_ids: Sequence[int], now: datetime) -> dict[int, int]:
    """{incident id: silence id} for the incidents silenced now (for `list` and `show`)."""
    if not incident_ids:
        return {}
    with database_errors(engine), engine.connect() as conn:
        active = silences_active_between(conn, now, now)
        if not active:
            return {}
        rows = conn.execute(select(incidents).where(incidents.c.id.in_(list(incident_ids)))).all()
    result = {}
    for r in rows:
        sid = silence_for(active, silence_labels(r._mapping), now)
        if sid is not None:
            result[r.id] = sid
    return result


def _view(row: Mapping[str, Any], now: datetime) -> dict:
    return {"id": row["id"], "state": state_of(row, now),
            "matchers": " ".join(str(m) for m in matchers_from(row["matchers"])),
            "starts_at": row["starts_at"], "ends_at": effective_end(row), "created_by": row["created_by"],
            "comment": row["comment"], "created_at": row["created_at"], "expired_at": row.get("expired_at")}


def mark_silenced(engine: Engine, incidents_: list[dict], now: datetime) -> list[dict]:
    """Sets `silenced_by` (a silence id, or None) on each incident dict, as silenced at `now`."""
    silenced = silenced_incidents(engine, [i["id"] for i in incidents_], now)
    for incident in incidents_:
        incident["silenced_by"] = silenced.get(incident["id"])
    return incidents_
