"""Incidents for people to read: `list` with filters (and the query planner behind its label
filters) and `show` one. What people do to incidents is in actions.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, FromClause, Join, Text, case, func, select, type_coerce
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from incidentctl.db.engine import database_errors, reader
from incidentctl.db.schema import (
    incident_alerts,
    incident_events,
    incidents,
    series_labels,
)
from incidentctl.errors import NotFound
from incidentctl.incidents.model import UNRESOLVED, AlertStatus, IncidentStatus

LIST_FIELDS = (
    "id", "status", "severity", "title", "fingerprint", "alertname", "cluster", "namespace", "service",
    "opened_at", "last_alert_at", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by",
    "resolution", "alert_count", "series_count", "series_firing", "reopen_count", "group_labels", "common_labels",
)
LINKS = ("generator", "dashboard", "panel", "silence", "image")


@dataclass(frozen=True)
class IncidentFilter:
    """What `list` shows. status: an IncidentStatus, `all`, or `unresolved` / None (open and acknowledged)."""

    status: str | None = None
    severity: str | None = None
    cluster: str | None = None
    namespace: str | None = None
    service: str | None = None
    alertname: str | None = None
    labels: tuple[tuple[str, str], ...] = ()  # common labels: every series carries each pair
    series_labels: tuple[tuple[str, str], ...] = ()  # each pair carried by some series
    since: datetime | None = None
    limit: int | None = 50  # None: every match


def parse_label_filter(text: str, option: str = "--label") -> tuple[str, str]:
    """`k=v` → (k, v); raises ValueError naming the problem."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"not a label filter: {text!r} (use name=value, e.g. {option} team=db)")
    return name.strip(), value


def list_query(flt: IncidentFilter):
    """The SELECT behind `list` (also EXPLAINed by bench/bench_process.py)."""
    c = incidents.c
    query = select(*(c[name] for name in LIST_FIELDS))
    if flt.status in (None, "unresolved"):
        query = query.where(c.status.in_(UNRESOLVED))
    elif flt.status != "all":
        query = query.where(c.status == flt.status)
    if flt.since is not None:
        query = query.where(c.opened_at >= flt.since)
    columns = [(name, getattr(flt, name)) for name in COLUMN_FILTERS if getattr(flt, name) is not None]
    if flt.labels or flt.series_labels:
        return _with_labels(query, flt, columns).limit(flt.limit)
    query = query.where(*(c[name] == value for name, value in columns))
    return query.order_by(c.opened_at.desc(), c.id.desc()).limit(flt.limit)


def _with_labels(query, flt: IncidentFilter, columns: list[tuple[str, str]]):
    """`query` restricted to the incidents carrying every label of `flt`, newest first.

    One index finds both kinds: series_labels holds every pair any series of an incident has
    carried, keyed exactly (schema.LabelKey) and by (name, value, opened_at, incident_id). A
    common label (`--label`) is a pair every series carries, so it is carried too; common_labels
    (JSON, sorted keys, no spaces: a pair reads `"k":"v"`) then confirms it is common. The first
    label is read in newest-first order (a rare label reads a few index entries, not every
    incident), the others by the whole index key, from the index alone."""
    c = incidents.c
    pairs = list(flt.labels) + list(flt.series_labels)
    labels = [series_labels.alias(f"label{n}") for n in range(len(pairs))]
    for sl, (name, value) in zip(labels, pairs, strict=True):
        query = query.where(sl.c.name == name, sl.c.value == value)
    for name, value in flt.labels:
        pair = json.dumps(name, ensure_ascii=False) + ":" + json.dumps(value, ensure_ascii=False)
        query = query.where(type_coerce(c.common_labels, Text).like("%" + _escape_like(pair) + "%", escape="\\"))
    first = labels[0]
    if flt.since is not None:
        query = query.where(first.c.opened_at >= flt.since)
    query = query.order_by(first.c.opened_at.desc(), first.c.incident_id.desc())
    if flt.status not in ("all", IncidentStatus.RESOLVED):
        # Unresolved incidents are few: MariaDB reads them first by (status, opened_at) and
        # checks their labels by primary key (incident_id, name, value), fast whatever the
        # labels (reading the labels first would walk every entry of the first one to find the
        # few unresolved).
        source: FromClause = incidents.join(first, first.c.incident_id == c.id)
        for sl in labels[1:]:
            source = source.join(sl, _same_incident(sl, sl.c.incident_id, first))
        return query.select_from(source).where(*(c[name] == value for name, value in columns))
    # Over all history the labels drive, and every filter is checked on an index before an
    # incident row is fetched: fetching first is a random read per entry of the first label
    # (docs/PERFORMANCE.md, `list`; plans in docs/DATABASE.md). By its primary key
    # (incident_id, …) MariaDB would probe all of series_labels, a random read each; the pair
    # index keeps the probes of one pair together. A column filter is checked through an alias
    # of incidents on its index (column, opened_at), which InnoDB extends with id, so from the
    # index alone (FORCE INDEX: MariaDB would rather fetch the row by PRIMARY). _StraightJoin
    # puts the fetch after every check and leaves the optimizer to pick which check drives (the
    # smallest set).
    source = first
    for sl in labels[1:]:
        source = source.join(sl, _same_incident(sl, sl.c.incident_id, first))
    for sl in labels:
        for dialect in ("mysql", "mariadb"):
            query = query.with_hint(sl, "FORCE INDEX (ix_series_labels_pair)", dialect_name=dialect)
    for name, value in columns:
        alias = incidents.alias(f"by_{name}")
        source = source.join(alias, _same_incident(alias, alias.c.id, first) & (alias.c[name] == value))
        for dialect in ("mysql", "mariadb"):
            query = query.with_hint(alias, f"FORCE INDEX ({_COLUMN_INDEX[name]})", dialect_name=dialect)
    return query.select_from(_StraightJoin(source, incidents, c.id == first.c.incident_id))


COLUMN_FILTERS = ("severity", "cluster", "namespace", "service", "alertname")
# The incidents index `(column, opened_at)` of each column filter (schema.py).
_COLUMN_INDEX = {name: f"ix_incidents_{name}_opened" for name in COLUMN_FILTERS}


def _same_incident(table, id_column, first) -> ColumnElement[bool]:
    """`table`'s row is the incident of the first label's entry, by the whole index key. The
    `+` (a no-op) keeps SQLite from turning the first label's `opened_at >= since` into a range
    on `table`, which it would then probe instead of the whole key."""
    return (table.c.opened_at == UnaryExpression(first.c.opened_at, operator=custom_op("+"))) & (
        id_column == first.c.incident_id)


class _StraightJoin(Join):
    """`left STRAIGHT_JOIN right ON …` on MySQL/MariaDB, `left CROSS JOIN right ON …` on SQLite
    (the same there): every table of `left` is read before `right`, their order among
    themselves still the optimizer's."""

    inherit_cache = True


@compiles(_StraightJoin, "mysql")
@compiles(_StraightJoin, "mariadb")
def _compile_straight_join(join, compiler, **kw):
    return _render_join(join, "STRAIGHT_JOIN", compiler, **kw)


@compiles(_StraightJoin, "sqlite")
def _compile_cross_join(join, compiler, **kw):
    return _render_join(join, "CROSS JOIN", compiler, **kw)


@compiles(_StraightJoin)
def _compile_plain_join(join, compiler, **kw):
    return _render_join(join, "JOIN", compiler, **kw)  # other databases: the order is theirs


def _render_join(join, keyword, compiler, asfrom=False, from_linter=None, **kw):
    if from_linter:
        from_linter.edges.add((join.left, join.right))
    left = compiler.process(join.left, asfrom=True, from_linter=from_linter, **kw)
    right = compiler.process(join.right, asfrom=True, from_linter=from_linter, **kw)
    return f"{left} {keyword} {right} ON {compiler.process(join.onclause, from_linter=from_linter, **kw)}"


def list_incidents(engine: Engine, flt: IncidentFilter) -> list[dict]:
    """Incidents matching `flt`, newest opened first."""
    with database_errors(engine), _reader(engine) as conn:
        return [dict(row._mapping) for row in conn.execute(list_query(flt))]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _reader(engine: Engine):
    return reader(engine).connect()


def show_incident(engine: Engine, incident_id: int, *, series_limit: int | None = None,
                  events_limit: int | None = None) -> dict:
    """The incident with its series (labels, annotations, links) and its timeline; raises NotFound.
    Every series in the order they joined and every event, unless limited: `series_limit` gives the
    firing series first, the most recently seen first, at most that many; `events_limit` the newest
    events, at most that many, in time order. `series_count` and `event_count` say how many there
    are (a storm puts 20,000 series into one incident)."""
    s, e = incident_alerts.c, incident_events.c
    with database_errors(engine), _reader(engine) as conn:
        row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
        if row is None:
            raise NotFound(f"incident {incident_id} not found")
        incident = {name: row._mapping[name] for name in LIST_FIELDS}
        series = select(incident_alerts).where(s.incident_id == incident_id)
        if series_limit is None:
            series = series.order_by(s.id)
        else:
            series = series.order_by(case((s.status == AlertStatus.FIRING, 0), else_=1), s.last_seen_at.desc(),
                                     s.id.desc()).limit(series_limit)
        incident["series"] = [_series(r._mapping) for r in conn.execute(series)]
        events = select(*(e[k] for k in EVENT_FIELDS)).where(e.incident_id == incident_id)
        events = events.order_by(e.id) if events_limit is None else events.order_by(e.id.desc()).limit(events_limit)
        found = [dict(r._mapping) for r in conn.execute(events)]
        incident["events"] = found if events_limit is None else found[::-1]
        incident["event_count"] = len(found) if events_limit is None else conn.execute(
            select(func.count()).where(e.incident_id == incident_id)).scalar_one()
    return incident


EVENT_FIELDS = ("id", "kind", "at", "actor", "alert_fingerprint", "raw_alert_id", "detail")


def _series(row) -> dict:
    return {
        "alert_fingerprint": row["alert_fingerprint"], "status": row["status"], "severity": row["severity"],
        "labels": row["labels"], "annotations": row["annotations"],
        "links": {k: row[f"{k}_url"] for k in LINKS if row[f"{k}_url"]},
        "starts_at": row["starts_at"], "ends_at": row["ends_at"], "first_seen_at": row["first_seen_at"],
        "last_seen_at": row["last_seen_at"], "times_seen": row["times_seen"],
    }
