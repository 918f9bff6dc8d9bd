"""The unresolved incidents at a glance, in ONE statement: the newest of them (the `list`
filters), how many there are by severity, and the oldest unacknowledged critical one (`watch`).

Window functions over the matching incidents give every row the counts of the whole set, and
ranks that keep, besides the newest `limit` rows, the first row of each severity (which
carries that severity's count) and the oldest open critical. So the header and the table come
from the same read, consistent with each other, and a refresh is one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import Connection, Engine, case, func, literal, select

from incidentctl.db.engine import database_errors, is_sqlite
from incidentctl.incidents.listing import LIST_FIELDS, IncidentFilter, list_query

UNRESOLVED = (None, "unresolved", "open", "acknowledged")


@dataclass(frozen=True)
class Overview:
    rows: list[dict]  # the newest matching incidents (the `list` fields), at most the filter's limit
    total: int  # matching incidents
    by_severity: dict[str, int]  # matching incidents per severity (only severities that occur)
    oldest_unacked_critical: dict | None  # the open critical incident opened first: id, title, opened_at, …


def overview_query(flt: IncidentFilter):
    """The statement behind `overview` (also timed and EXPLAINed by bench/bench_watch.py)."""
    if flt.status not in UNRESOLVED:
        raise ValueError(f"an overview is of unresolved incidents, not {flt.status!r}")
    matching = list_query(replace(flt, limit=None)).order_by(None).subquery("matching")
    m = matching.c
    critical_open = case(((m.status == "open") & (m.severity == "critical"), literal(1)), else_=literal(0))
    ranked = select(
        *(m[name] for name in LIST_FIELDS),
        # Ordered, over the whole partition: MariaDB 10.11 miscounts a bare `COUNT(*) OVER
        # (PARTITION BY severity)` next to `COUNT(*) OVER ()` (it counts runs of the rows as sorted
        # for another window). The total is the sum of these counts.
        func.count().over(partition_by=m.severity, order_by=m.id, rows=(None, None)).label("severity_count"),
        func.row_number().over(order_by=(m.opened_at.desc(), m.id.desc())).label("newest_rank"),
        func.row_number().over(partition_by=m.severity, order_by=m.id).label("severity_rank"),
        critical_open.label("critical_open"),
        func.row_number().over(partition_by=critical_open, order_by=(m.opened_at, m.id)).label("critical_rank"),
    ).subquery("ranked")
    r = ranked.c
    return (select(ranked)
            .where((r.newest_rank <= flt.limit) | (r.severity_rank == 1)
                   | ((r.critical_open == 1) & (r.critical_rank == 1)))
            .order_by(r.newest_rank))


def overview(engine: Engine, flt: IncidentFilter) -> Overview:
    """The overview of the unresolved incidents matching `flt`, read in one statement."""
    with database_errors(engine), _reader(engine) as conn:
        return read_overview(conn, flt)


def read_overview(conn: Connection, flt: IncidentFilter) -> Overview:
    rows = [dict(r._mapping) for r in conn.execute(overview_query(flt))]
    listed = [_fields(r) for r in rows if r["newest_rank"] <= flt.limit]
    oldest = next((_fields(r) for r in rows if r["critical_open"] == 1 and r["critical_rank"] == 1), None)
    by_severity = {r["severity"]: r["severity_count"] for r in rows}
    return Overview(listed, sum(by_severity.values()), by_severity, oldest)


def _fields(row: dict) -> dict:
    return {name: row[name] for name in LIST_FIELDS}


def _reader(engine: Engine):
    return engine.connect().execution_options(sqlite_begin="DEFERRED") if is_sqlite(engine) else engine.connect()
