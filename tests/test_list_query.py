"""`list` filters combined (labels, columns, status, since, limit): the same answers on both
databases as a plain filter over the rows, whichever shape list_query gives the SELECT."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import mysql

from incidentctl.incidents import IncidentFilter, list_incidents, list_query
from incidentctl.schema import LABEL_TEXT_MAX, incident_labels, incidents
from incidentctl.state import label_rows
from factories import T0

LONG = "x" * LABEL_TEXT_MAX  # two team values that the label index clips to the same text
STATUSES = (None, "all", "resolved", "open", "acknowledged")


def history(n: int = 60) -> list[dict]:
    """Incidents whose labels and columns overlap in known ways: team t{i%4} and zone z{i%2}
    (t1 and z0 never meet), label cluster c{i%3} but the cluster column "grouped" for every
    fifth (a custom group_by), severity critical for every t1, pairs opened at the same time."""
    rows = []
    for i in range(n):
        status = "open" if i % 7 == 0 else "acknowledged" if i % 11 == 0 else "resolved"
        team = LONG + ("a" if i % 2 else "b") if i in (50, 51) else f"t{i % 4}"
        labels = {"alertname": f"A{i % 5}", "cluster": f"c{i % 3}", "team": team, "zone": f"z{i % 2}"}
        rows.append({
            "fingerprint": f"fp{i}", "active_key": None if status == "resolved" else f"fp{i}", "status": status,
            "title": f"I{i}", "severity": ["critical", "warning"][(i // 2) % 2], "alertname": labels["alertname"],
            "cluster": "grouped" if i % 5 == 0 else labels["cluster"], "namespace": f"ns{i % 2}", "service": "api",
            "group_labels": {}, "common_labels": labels, "opened_at": T0 + timedelta(minutes=i // 2),
            "last_alert_at": T0 + timedelta(minutes=i // 2), "alert_count": 1, "series_count": 1,
            "series_firing": int(status != "resolved"), "reopen_count": 0})
    return rows


def insert(engine, rows: list[dict]) -> list[dict]:
    stored = []
    with engine.begin() as conn:
        for row in rows:
            iid = conn.execute(incidents.insert().values(**row)).inserted_primary_key[0]
            conn.execute(incident_labels.insert(), label_rows(iid, row["opened_at"], row["common_labels"]))
            stored.append({**row, "id": iid})
    return stored


def expected(rows: list[dict], flt: IncidentFilter) -> list[str]:
    """What `list` must answer, computed in Python."""
    wanted = ("open", "acknowledged") if flt.status is None else None if flt.status == "all" else (flt.status,)
    found = [r for r in rows
             if (wanted is None or r["status"] in wanted)
             and all(getattr(flt, c) is None or r[c] == getattr(flt, c)
                     for c in ("severity", "cluster", "namespace", "service", "alertname"))
             and all(r["common_labels"].get(k) == v for k, v in flt.labels)
             and (flt.since is None or r["opened_at"] >= flt.since)]
    found.sort(key=lambda r: (r["opened_at"], r["id"]), reverse=True)
    return [r["title"] for r in found[:flt.limit]]


CASES = [
    ({"labels": (("team", "t1"), ("zone", "z1"))}, "two labels that meet"),
    ({"labels": (("team", "t1"), ("zone", "z0"))}, "two labels that never meet"),
    ({"labels": (("zone", "z0"), ("team", "t1"))}, "the same, the larger set first"),
    ({"labels": (("team", "t2"), ("zone", "z0"), ("cluster", "c1"))}, "three labels"),
    ({"labels": (("team", "t0"),), "cluster": "c0"}, "a label and a column that meet"),
    ({"labels": (("team", "t1"),), "severity": "warning"}, "a label and a column that never meet"),
    ({"labels": (("cluster", "c0"),), "cluster": "grouped"}, "the cluster column is not the cluster label"),
    ({"labels": (("team", "t0"), ("zone", "z0")), "cluster": "c1", "namespace": "ns0"}, "labels and columns"),
    ({"labels": (("team", "t3"), ("zone", "z1")), "alertname": "A4", "service": "api"}, "other columns"),
    ({"labels": (("team", "t0"), ("zone", "z0")), "since": T0 + timedelta(minutes=12)}, "with --since"),
    ({"labels": (("team", "t1"), ("zone", "z0")), "since": T0 + timedelta(minutes=12)}, "--since, never meet"),
    ({"labels": (("team", LONG + "a"), ("zone", "z1"))}, "a clipped value: common_labels tells them apart"),
    ({"labels": (("team", "nobody"), ("zone", "z0")), "severity": "critical"}, "a label no incident has"),
]


@pytest.mark.parametrize("limit", [50, 3])
@pytest.mark.parametrize("filters,why", CASES, ids=[why for _, why in CASES])
def test_combined_filters_answer_as_a_plain_filter(engine, filters, why, limit):
    rows = insert(engine, history())
    for status in STATUSES:
        flt = IncidentFilter(status=status, limit=limit, **filters)
        assert [r["title"] for r in list_incidents(engine, flt)] == expected(rows, flt), (why, status)


def test_the_history_has_answers_to_check():
    # Guards the cases above against passing on empty answers only.
    rows = history()
    for i, row in enumerate(rows):
        row["id"] = i + 1
    for status in ("all", None):
        answers = [expected(rows, IncidentFilter(status=status, **filters)) for filters, _ in CASES]
        assert sum(bool(a) for a in answers) >= 5
    assert expected(rows, IncidentFilter(status="all", labels=(("team", "t1"), ("zone", "z1"))))[:2] == ["I57", "I53"]


def test_only_all_or_resolved_reads_the_labels_before_the_incidents():
    # Unresolved incidents are few: reading them first stays MariaDB's choice.
    for status, straight in ((None, False), ("open", False), ("acknowledged", False), ("all", True),
                             ("resolved", True)):
        flt = IncidentFilter(status=status, labels=(("team", "t1"),), cluster="c1")
        sql = str(list_query(flt).compile(dialect=mysql.dialect()))
        assert ("STRAIGHT_JOIN" in sql) is straight, status
        assert ("FORCE INDEX (ix_incidents_cluster_opened)" in sql) is straight, status


@pytest.mark.backends("mysql")
def test_mysql_checks_every_filter_on_an_index_before_fetching_an_incident(engine):
    insert(engine, history())
    flt = IncidentFilter(status="all", labels=(("team", "t1"), ("zone", "z0")), cluster="c1", severity="warning")
    sql = str(list_query(flt).compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        conn.execute(text("ANALYZE TABLE incidents, incident_labels"))  # statistics as a live database has
        plan = conn.execute(text("EXPLAIN " + sql)).mappings().all()
    assert plan[-1]["table"] == "incidents"
    checks = {row["table"]: row for row in plan[:-1]}
    assert set(checks) == {"label0", "label1", "by_cluster", "by_severity"}
    assert checks["by_cluster"]["key"] == "ix_incidents_cluster_opened"
    assert checks["by_severity"]["key"] == "ix_incidents_severity_opened"
    assert all("Using index" in (row["Extra"] or "") for row in checks.values()), plan
