"""`list` filters combined (common labels, series labels, columns, status, since, limit): the
same answers on both databases as a plain filter over the rows, whichever shape list_query gives
the SELECT."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import mysql

from incidentctl.db.engine import make_engine
from incidentctl.db.migrations import upgrade
from incidentctl.db.schema import LABEL_TEXT_MAX, incidents, series_labels
from incidentctl.incidents.listing import IncidentFilter, list_incidents, list_query
from incidentctl.incidents.store import series_label_rows
from tests.support import T0

LONG = "x" * LABEL_TEXT_MAX  # two team values that the label index clips to the same text
STATUSES = (None, "all", "resolved", "open", "acknowledged")


def history(n: int = 60) -> list[dict]:
    """Incidents whose labels and columns overlap in known ways: team t{i%4} and zone z{i%2}
    (t1 and z0 never meet), label cluster c{i%3} but the cluster column "grouped" for every
    fifth (a custom group_by), severity critical for every t1, pairs opened at the same time.
    Each has 1-3 series, the common labels plus pod p{i}-{k} and node n{(i+k)%3} (so
    n0 and n2 meet only in incidents of three series); incident 9 has a node `N1`, incident 10 a
    pod `p7-1 ` (a trailing space), incidents 52/53 pods of 191+ characters sharing a prefix."""
    rows = []
    for i in range(n):
        status = "open" if i % 7 == 0 else "acknowledged" if i % 11 == 0 else "resolved"
        team = LONG + ("a" if i % 2 else "b") if i in (50, 51) else f"t{i % 4}"
        labels = {"alertname": f"A{i % 5}", "cluster": f"c{i % 3}", "team": team, "zone": f"z{i % 2}"}
        series = [{**labels, "pod": f"p{i}-{k}", "node": f"n{(i + k) % 3}"} for k in range(1 + i % 3)]
        series[0]["node"] = "N1" if i == 9 else series[0]["node"]
        series[0]["pod"] = {10: "p7-1 ", 52: LONG + "a", 53: LONG + "b"}.get(i, series[0]["pod"])
        rows.append({
            "fingerprint": f"fp{i}", "active_key": None if status == "resolved" else f"fp{i}", "status": status,
            "title": f"I{i}", "severity": ["critical", "warning"][(i // 2) % 2], "alertname": labels["alertname"],
            "cluster": "grouped" if i % 5 == 0 else labels["cluster"], "namespace": f"ns{i % 2}", "service": "api",
            "group_labels": {}, "common_labels": labels, "opened_at": T0 + timedelta(minutes=i // 2),
            "last_alert_at": T0 + timedelta(minutes=i // 2), "alert_count": 1, "series_count": 1,
            "series_firing": int(status != "resolved"), "reopen_count": 0, "series": series})
    return rows


def insert(engine, rows: list[dict]) -> list[dict]:
    stored = []
    with engine.begin() as conn:
        for row in rows:
            iid = conn.execute(incidents.insert().values(
                **{k: v for k, v in row.items() if k != "series"})).inserted_primary_key[0]
            conn.execute(series_labels.insert(), series_label_rows(iid, row["opened_at"], row["series"]))
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
             and all(any(series.get(k) == v for series in r["series"]) for k, v in flt.series_labels)
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
    ({"labels": (("team", "T1"),)}, "a common label differing in case only"),
    ({"labels": (("zone", "z1 "),)}, "a common label with a trailing space"),
    ({"series_labels": (("pod", "p7-1"),)}, "a series label of one incident (not its trailing-space twin)"),
    ({"series_labels": (("node", "n1"),)}, "a series label of many incidents"),
    ({"series_labels": (("node", "N1"),)}, "a series label differing in case only"),
    ({"series_labels": (("node", "n0"), ("node", "n2"))}, "two pairs, each from another series"),
    ({"series_labels": (("pod", "p3-0"), ("pod", "p4-0"))}, "two series labels that never meet"),
    ({"series_labels": (("team", "t2"),)}, "a common label is a label of every series too"),
    ({"series_labels": (("node", "n1"),), "labels": (("team", "t1"),)}, "a series label and a common label"),
    ({"series_labels": (("node", "n2"),), "labels": (("team", "t3"), ("zone", "z1"))}, "and two common labels"),
    ({"series_labels": (("node", "n2"),), "severity": "critical"}, "a series label and a column"),
    ({"series_labels": (("node", "n0"),), "cluster": "c1", "labels": (("zone", "z0"),)}, "all three kinds"),
    ({"series_labels": (("node", "n1"),), "since": T0 + timedelta(minutes=20)}, "a series label --since"),
    ({"series_labels": (("pod", LONG + "a"),)}, "a series label of 191+ characters: the key tells them apart"),
    ({"series_labels": (("pod", "nobody"),), "labels": (("team", "t1"),)}, "a series label no incident has"),
]


_SEEDED: dict[str, tuple] = {}  # backend → (engine, rows): the cases below only read


@pytest.fixture(scope="module", autouse=True)
def _dispose_seeded():
    yield
    for engine, _ in _SEEDED.values():
        engine.dispose()
    _SEEDED.clear()


@pytest.fixture
def seeded(backend, empty_database_url):
    """history() in a database of `backend`, inserted once for all the cases of the module."""
    if backend not in _SEEDED:
        engine = make_engine(empty_database_url("listing"))
        upgrade(engine)
        _SEEDED[backend] = engine, insert(engine, history())
    return _SEEDED[backend]


@pytest.mark.parametrize("limit", [50, 3])
@pytest.mark.parametrize("filters,why", CASES, ids=[why for _, why in CASES])
def test_combined_filters_answer_as_a_plain_filter(seeded, filters, why, limit):
    engine, rows = seeded
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
    by_series = lambda *pairs: expected(rows, IncidentFilter(status="all", series_labels=pairs))  # noqa: E731
    assert by_series(("pod", "p7-1")) == ["I7"] and by_series(("pod", "p7-1 ")) == ["I10"]
    assert by_series(("node", "N1")) == ["I9"] and by_series(("pod", LONG + "a")) == ["I52"]
    assert len(by_series(("node", "n0"), ("node", "n2"))) == 20  # the incidents of three series


def test_only_all_or_resolved_reads_the_labels_before_the_incidents():
    # Unresolved incidents are few: reading them first stays MariaDB's choice.
    for status, straight in ((None, False), ("open", False), ("acknowledged", False), ("all", True),
                             ("resolved", True)):
        flt = IncidentFilter(status=status, labels=(("team", "t1"),), cluster="c1")
        sql = str(list_query(flt).compile(dialect=mysql.dialect()))
        assert ("STRAIGHT_JOIN" in sql) is straight, status
        assert ("FORCE INDEX (ix_incidents_cluster_opened)" in sql) is straight, status
        flt = IncidentFilter(status=status, series_labels=(("pod", "p1"), ("node", "n1")), labels=(("team", "t1"),))
        sql = str(list_query(flt).compile(dialect=mysql.dialect()))
        assert sql.count("FORCE INDEX (ix_series_labels_pair)") == (3 if straight else 0), status


@pytest.mark.backends("mysql")
def test_mysql_checks_every_filter_on_an_index_before_fetching_an_incident(engine):
    insert(engine, history())
    flt = IncidentFilter(status="all", labels=(("team", "t1"), ("zone", "z0")), cluster="c1", severity="warning")
    sql = str(list_query(flt).compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        conn.execute(text("ANALYZE TABLE incidents, series_labels"))  # statistics as a live database has
        plan = conn.execute(text("EXPLAIN " + sql)).mappings().all()
    assert plan[-1]["table"] == "incidents"
    checks = {row["table"]: row for row in plan[:-1]}
    assert set(checks) == {"label0", "label1", "by_cluster", "by_severity"}
    assert checks["by_cluster"]["key"] == "ix_incidents_cluster_opened"
    assert checks["by_severity"]["key"] == "ix_incidents_severity_opened"
    assert checks["label0"]["key"] == checks["label1"]["key"] == "ix_series_labels_pair"
    assert all("Using index" in (row["Extra"] or "") for row in checks.values()), plan


@pytest.mark.backends("mysql")
def test_mysql_checks_series_labels_on_their_index_before_fetching_an_incident(engine):
    insert(engine, history())
    flt = IncidentFilter(status="all", series_labels=(("node", "n0"), ("pod", "p3-0")), labels=(("team", "t1"),),
                         cluster="c1")
    sql = str(list_query(flt).compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        conn.execute(text("ANALYZE TABLE incidents, series_labels"))
        plan = conn.execute(text("EXPLAIN " + sql)).mappings().all()
    assert plan[-1]["table"] == "incidents"
    checks = {row["table"]: row for row in plan[:-1]}
    assert set(checks) == {"label0", "label1", "label2", "by_cluster"}  # the common label first
    # Not series_labels' primary key (incident_id, …): probes by it read all over the table.
    assert checks["label0"]["key"] == checks["label1"]["key"] == checks["label2"]["key"] == "ix_series_labels_pair"
    assert all("Using index" in (row["Extra"] or "") for row in checks.values()), plan
