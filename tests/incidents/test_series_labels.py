"""`list --series-label k=v`: which incident has pod X? The series label index as `process`,
`rebuild` and the version-4 migration write it, and the option through the CLI, on both
databases."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from incidentctl.db.migrations import upgrade
from incidentctl.db.schema import incident_alerts, incidents, metadata, schema_migrations, series_labels
from incidentctl.history.rebuild import rebuild
from incidentctl.incidents.model import Rules
from tests.support import T0
from tests.support.cli import invoke
from tests.support.processing import process_all, series_label_index, store, store_spaced
from tests.support.synthetic_history import history

LONG = "v" * 200  # two pod names the index would confuse if it clipped them


def body(*pods, cluster="eu1", status="firing", start="2026-01-05T09:00:00Z", end="0001-01-01T00:00:00Z",
         alertname="PodCrash", instance="10.0.0.1:9100"):
    """One Alertmanager notification with one alert per pod of the same group (one incident)."""
    alerts = [{"status": status, "startsAt": start, "endsAt": end, "annotations": {},
               "labels": {"alertname": alertname, "cluster": cluster, "namespace": "shop", "service": "web",
                          "severity": "warning", "pod": pod, "instance": instance}} for pod in pods]
    return json.dumps({"version": "4", "status": status, "alerts": alerts}).encode()


def titles(db_url, *args) -> list[int]:
    result = invoke("list", "--output", "json", *args, db=db_url)
    assert result.exit_code == 0, result.output
    return [row["id"] for row in json.loads(result.output)]


@pytest.fixture
def pods(db_url, engine):
    """Incident A (eu1): pods a and b, then pod d in a later run; incident B (us1): pod c, and
    pods whose names share their first 200 characters; A has instance 10.0.0.1, B 10.0.0.2."""
    store_spaced(engine, [body("a", "b"), body("c", LONG + "1", cluster="us1", instance="10.0.0.2:9100")])
    assert invoke("process", db=db_url).exit_code == 0
    store_spaced(engine, [body("d", start="2026-01-05T09:10:00Z")], start=T0 + timedelta(minutes=10))
    assert invoke("process", db=db_url).exit_code == 0
    a, b = titles(db_url, "--status", "all", "--cluster", "eu1") + titles(db_url, "--status", "all", "--cluster", "us1")
    return db_url, a, b


def test_list_finds_the_incident_of_any_series(pods):
    db_url, a, b = pods
    assert titles(db_url, "--series-label", "pod=b") == [a]
    assert titles(db_url, "--series-label", "pod=d") == [a]  # a series added by a later run
    assert titles(db_url, "--series-label", "pod=c") == [b]
    assert titles(db_url, "--series-label", "pod=" + LONG + "1") == [b]
    assert titles(db_url, "--series-label", "pod=" + LONG + "2") == []  # same first 200 characters
    assert titles(db_url, "--series-label", "pod=B") == []  # exact, on both databases
    assert titles(db_url, "--label", "pod=b") == []  # not every series of A has it
    assert titles(db_url, "--series-label", "instance=10.0.0.2:9100") == [b]


def test_series_labels_combine_with_every_other_filter(pods):
    db_url, a, b = pods
    assert titles(db_url, "--series-label", "pod=a", "--series-label", "pod=d") == [a]  # each pair on some series
    assert titles(db_url, "--series-label", "pod=a", "--series-label", "pod=c") == []
    assert titles(db_url, "--series-label", "namespace=shop") == [b, a]  # newest opened first
    assert titles(db_url, "--series-label", "namespace=shop", "--limit", "1") == [b]
    assert titles(db_url, "--series-label", "pod=a", "--label", "instance=10.0.0.1:9100") == [a]
    assert titles(db_url, "--series-label", "pod=a", "--label", "instance=10.0.0.2:9100") == []
    assert titles(db_url, "--series-label", "pod=a", "--cluster", "us1") == []
    assert titles(db_url, "--series-label", "namespace=shop", "--cluster", "us1", "--severity", "warning") == [b]
    assert titles(db_url, "--series-label", "pod=a", "--status", "resolved") == []
    assert titles(db_url, "--series-label", "pod=a", "--since", "2026-01-05T09:00:30Z") == []
    assert titles(db_url, "--series-label", "pod=a", "--status", "acknowledged") == []
    assert invoke("ack", str(a), db=db_url).exit_code == 0
    assert titles(db_url, "--series-label", "pod=a", "--status", "acknowledged") == [a]


def test_a_resolved_incident_keeps_its_series_labels(pods, engine):
    db_url, a, b = pods
    resolved = dict(status="resolved", end="2026-01-05T09:30:00Z")
    store(engine, [(T0 + timedelta(minutes=30), body("a", "b", **resolved)),
                   (T0 + timedelta(minutes=31), body("d", start="2026-01-05T09:10:00Z", **resolved))])
    assert invoke("process", db=db_url).exit_code == 0
    assert titles(db_url, "--series-label", "pod=d") == []  # unresolved by default
    assert titles(db_url, "--series-label", "pod=d", "--status", "resolved") == [a]
    assert titles(db_url, "--series-label", "pod=d", "--status", "all", "-o", "json") == [a]


def test_a_series_with_only_the_common_labels_adds_nothing_and_fails_nothing(db_url, engine):
    store_spaced(engine, [body("a")])
    assert invoke("process", db=db_url).exit_code == 0
    # A second series of the same incident without a pod: every label it has is common now.
    alert = {"status": "firing", "startsAt": "2026-01-05T09:05:00Z", "endsAt": "0001-01-01T00:00:00Z",
             "annotations": {}, "labels": {"alertname": "PodCrash", "cluster": "eu1", "namespace": "shop",
                                           "service": "web", "severity": "warning", "instance": "10.0.0.1:9100"}}
    store(engine, [(T0 + timedelta(minutes=5), json.dumps({"version": "4", "alerts": [alert]}).encode())])
    assert invoke("process", db=db_url).exit_code == 0
    index, carried = series_label_index(engine)
    assert index == carried and len(index) == 7  # the six common labels and pod=a
    assert titles(db_url, "--series-label", "pod=a") == titles(db_url, "--series-label", "service=web")


@pytest.mark.parametrize("value, message", [
    ("pod", "not a label filter: 'pod' (use name=value, e.g. --series-label team=db)"),
    ("=x", "not a label filter: '=x'"),
])
def test_a_bad_series_label_is_a_usage_error(db_url, value, message):
    result = invoke("list", "--series-label", value, db=db_url)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def _rules(group_by: str) -> Rules:
    return Rules(tuple(group_by.split(",")), timedelta(minutes=30))


@pytest.mark.parametrize("group_by", ["alertname,cluster,namespace,service", "alertname,cluster", "fingerprint"])
def test_process_indexes_exactly_the_labels_its_series_carry(db_url, engine, group_by):
    # A realistic history in batches of 50 rows: new series, repeats, flaps, resolves, reopened
    # incidents; with coarser groups, incidents gain series batch after batch.
    store(engine, list(history(series=60, minutes=120, seed=3)))  # 560 rows: a dozen batches
    summary = process_all(engine, _rules(group_by), batch_size=50)
    assert summary.reopened and summary.resolved  # the history has both
    index, carried = series_label_index(engine)
    assert index == carried and len(index) > 150


@pytest.mark.parametrize("before, after", [
    ("alertname,cluster", "alertname,cluster,namespace,service"),  # finer: an incident keeps part of its series
    ("alertname,cluster,namespace,service", "alertname,cluster"),  # coarser: several namespaces in one incident
])
def test_rebuild_indexes_the_series_of_the_rebuilt_incidents(db_url, engine, before, after):
    store(engine, list(history(series=60, minutes=120, seed=5)))
    process_all(engine, _rules(before))
    namespaces = lambda: [i for i, name, _, _ in series_label_index(engine)[0] if name == "namespace"]  # noqa: E731
    coarse = len(namespaces()) > len(set(namespaces()))
    rebuild(engine, _rules(after))
    index, carried = series_label_index(engine)
    assert index == carried and len(index) > 100
    assert (len(namespaces()) > len(set(namespaces()))) is not coarse


def test_upgrade_indexes_the_series_of_existing_incidents(empty_database_url):
    from incidentctl.db.engine import make_engine
    from incidentctl.incidents.listing import IncidentFilter, list_incidents

    url = empty_database_url()
    engine = make_engine(url)
    t0 = datetime(2026, 1, 5, tzinfo=timezone.utc)
    with engine.begin() as conn:  # a version-2 database with incidents and their series
        metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t is not series_labels])
        for version in (1, 2):
            conn.execute(schema_migrations.insert().values(version=version, description="old", applied_at=t0))
        conn.execute(incidents.insert(), [
            {"fingerprint": f"fp{i}", "status": "resolved", "title": f"T{i}", "severity": "info",
             "opened_at": t0 + timedelta(seconds=i), "last_alert_at": t0, "common_labels": {"alertname": "A"},
             "alert_count": 1, "series_count": 1, "series_firing": 0, "reopen_count": 0}
            for i in range(2500)])  # more than one backfill page
        ids = conn.execute(select(incidents.c.id).order_by(incidents.c.id)).scalars().all()
        conn.execute(incident_alerts.insert(), [
            {"incident_id": iid, "alert_fingerprint": f"s{n}", "status": "resolved", "severity": "info",
             "labels": {"alertname": "A", "pod": f"p{i}-{n}", "node": "n1" if n else "n0"}, "annotations": {},
             "last_event_at": t0, "first_seen_at": t0, "last_seen_at": t0, "times_seen": 1}
            for i, iid in enumerate(ids) for n in range(1 + (i == 2100))])
    assert "series_labels" in [m.description.split(":")[0] for m in upgrade(engine)]
    index, carried = series_label_index(engine)
    assert index == carried and len(index) == 2500 * 3 + 2  # alertname, pod, node; node n1 and a 2nd pod once
    found = list_incidents(engine, IncidentFilter(status="all", series_labels=(("pod", "p2100-1"),)))
    assert [r["title"] for r in found] == ["T2100"]
    found = list_incidents(engine, IncidentFilter(status="all", series_labels=(("node", "n1"),)))
    assert [r["title"] for r in found] == ["T2100"]
    engine.dispose()
