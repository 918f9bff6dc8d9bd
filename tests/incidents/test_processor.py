"""`process_pending` on real databases: fixtures to incidents, outbox rows, bad rows, determinism."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from incidentctl.config import load_settings
from incidentctl.db.schema import grafana_alerts, incidents, notifications
from incidentctl.incidents.actions import transition
from incidentctl.incidents.listing import show_incident
from incidentctl.incidents.model import Rules
from incidentctl.incidents.processor import ProcessSummary, backlog
from tests.support import T0
from tests.support.cli import invoke
from tests.support.processing import process_all, snapshot, store, store_spaced
from tests.support.synthetic_history import history

RULES = Rules.configured(load_settings({}))


def _rows(engine, table, *cols):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(*(table.c[c] for c in cols)).order_by(table.c.id))]


@pytest.mark.parametrize(("conflicts", "tail"), [
    (0, "0 ignored, 0 errors"),  # the common case reads as it always did
    (3, "0 ignored, 0 errors, 3 conflicts retried"),
])
def test_the_summary_line_names_conflicts_only_when_there_were_some(conflicts, tail):
    line = ProcessSummary(rows=4, alerts=5, opened=2, conflicts_retried=conflicts).line()
    assert line.startswith("4 rows, 5 alerts, 2 opened, ") and line.endswith(tail)


def test_fixtures_become_incidents(engine, fixture_bodies):
    store_spaced(engine, fixture_bodies.values())
    summary = process_all(engine)
    # 14 bodies, 19 alerts; 3 test notifications and 1 resolve-before-fire are ignored
    assert summary.as_dict() == {"rows": 14, "alerts": 19, "opened": 9, "updated": 6, "reopened": 0,
                                 "resolved": 0, "ignored": 4, "errors": 0, "conflicts_retried": 0}
    titles = sorted(r[0] for r in _rows(engine, incidents, "title"))
    assert titles == ["High CPU usage", "High memory usage", "InstanceDown", "Memory (copy)", "No Data alert",
                      "Panel Title alert", "Second webhook test", "Test alert", "alert1"]
    assert "TestAlert" not in titles and "Test rule" not in titles  # test notifications open nothing
    assert backlog(engine) == 0


def test_outbox_contract(engine, fixture_bodies):
    firing = fixture_bodies["grafana/grafana9_zulip_firing_single_valueString.json"]
    resolved = fixture_bodies["grafana/grafana9_zulip_resolved_single.json"]
    store_spaced(engine, [firing, firing, firing, resolved])  # two repeats in between
    process_all(engine)
    rows = _rows(engine, notifications, "change", "reason", "severity", "created_at", "state", "attempts")
    start = "2022-06-17T00:41:00.782137+00:00"
    assert [(r[0], r[1], r[2], r[3].isoformat(), r[4], r[5]) for r in rows] == [
        ("opened", "opened: Test alert firing", "none", start, "pending", 0),
        ("resolved", "auto-resolved: all 1 series resolved", "none", "2022-06-17T00:51:24.067337+00:00", "pending", 0),
    ]
    [incident] = _rows(engine, incidents, "id", "status", "alert_count", "resolution", "active_key")
    assert incident[1:] == ("resolved", 4, "auto", None)


def test_unparseable_rows_are_marked_and_never_block(engine, fixture_bodies):
    good = fixture_bodies["alertmanager/am_v4_oncall-example_firing_3alerts_numFiring-added-by-oncall.json"]
    ids = store_spaced(engine, [b"{not json", good, b'{"custom": "template"}', b""])
    summary = process_all(engine, batch_size=1)
    assert (summary.rows, summary.errors, summary.opened) == (4, 3, 1)
    marks = {r[0]: (r[1] is not None, r[2])
             for r in _rows(engine, grafana_alerts, "id", "processed_at", "process_error")}
    assert marks[ids[1]] == (True, None)
    assert marks[ids[0]][0] and "invalid JSON" in marks[ids[0]][1]
    assert marks[ids[2]][0] and "custom template" in marks[ids[2]][1]
    assert marks[ids[3]] == (True, "empty body")
    assert process_all(engine).rows == 0  # nothing is retried


def test_replayed_rows_are_dispatched_on_shape(engine, fixture_bodies):
    store_spaced(engine, [fixture_bodies["grafana-legacy/grafana-legacy-le8_docs_alerting.json"]], source="replay")
    assert process_all(engine).opened == 1


def test_limit_and_progress(engine):
    store(engine, list(history(series=20, minutes=30)))
    total = backlog(engine)
    seen = []
    summary = process_all(engine, batch_size=4, limit=10, progress=lambda d, t: seen.append((d, t)))
    assert summary.rows == 10 and seen == [(4, 10), (8, 10), (10, 10)]
    assert backlog(engine) == total - 10


@pytest.mark.slow  # hundreds of one-row batches, each a commit
def test_batch_size_does_not_change_the_result(engine, second_engine):
    # Determinism: batch size 1 and 1000 over the same rows give identical incidents, series and events.
    rows = list(history(series=40, minutes=150, seed=7))
    other = second_engine("batch1000")
    store(engine, rows)
    store(other, rows)
    process_all(engine, batch_size=1)
    process_all(other, batch_size=1000)
    one, thousand = snapshot(engine), snapshot(other)
    assert one == thousand
    assert all('"alertname"' in series[10] for series in one["series"])  # labels survive batch boundaries
    kinds = {e[1] for e in one["events"]}
    assert {"opened", "alert_firing", "alert_resolved", "resolved", "reopened"} <= kinds
    assert len(one["incidents"]) > 10


def test_series_kept_between_batches_never_hide_another_runs_changes(engine, second_engine):
    # One run keeps the series it wrote (SeriesCache) and reads them back only when the
    # incident's version moved. Another run processing rows between its batches, and a person
    # acking meanwhile, must give what the same rows and ack give without any cache.
    from datetime import timedelta

    from incidentctl.incidents.series_cache import SeriesCache

    rows = list(history(series=30, minutes=180, seed=11))
    plain = second_engine("plain")
    store(engine, rows)
    store(plain, rows)
    cache = SeriesCache()

    def ack_first_open(db):
        with db.connect() as conn:
            first = conn.scalar(select(incidents.c.id).where(incidents.c.status == "open").order_by(incidents.c.id))
        transition(db, "ack", first, by="alice", note=None, now=T0 + timedelta(hours=1))

    process_all(engine, batch_size=40, limit=120, cache=cache)
    process_all(engine, batch_size=25, limit=100)  # another run, between our batches
    ack_first_open(engine)
    process_all(engine, batch_size=40, cache=cache)
    process_all(plain, batch_size=220, limit=220)
    ack_first_open(plain)
    process_all(plain)
    assert cache.hits > 0  # the cache was used, not bypassed
    cached, uncached = snapshot(engine), snapshot(plain)
    assert [e for e in cached["events"] if e[1] == "acknowledged"]
    assert cached["series"] == uncached["series"]
    assert cached["incidents"] == uncached["incidents"]


def test_event_time_not_wall_time(engine, fixture_bodies):
    store_spaced(engine, [fixture_bodies["grafana/grafana_docs_webhook-notifier_firing_2alerts_values.json"]])
    process_all(engine)
    opened = sorted(r[0].isoformat() for r in _rows(engine, incidents, "opened_at"))
    assert opened == ["2021-10-12T07:51:03.157076+00:00", "2021-10-12T07:56:03.157076+00:00"]  # +02:00 → UTC
    assert {r[0] for r in _rows(engine, incidents, "last_alert_at")} == {T0}


def test_group_by_fingerprint_gives_one_incident_per_series(engine, fixture_bodies):
    store_spaced(engine, [fixture_bodies["grafana/grafana9_zulip_firing_3alerts_2rules.json"]])
    assert process_all(engine, Rules(("fingerprint",), RULES.reopen_window)).opened == 3


def test_human_transitions_write_events_and_outbox(engine, fixture_bodies):
    store_spaced(engine, [fixture_bodies["grafana/grafana9_zulip_firing_single_valueString.json"]])
    process_all(engine)
    [(iid,)] = _rows(engine, incidents, "id")
    now = T0 + timedelta(hours=1)
    assert transition(engine, "ack", iid, by="alice", note=None, now=now) == "acknowledged"
    assert transition(engine, "resolve", iid, by="bob", note="fixed the queue", now=now) == "resolved"
    assert transition(engine, "reopen", iid, by="carol", note=None, now=now) == "open"
    changes = _rows(engine, notifications, "change", "reason")[1:]
    assert changes == [("acknowledged", "acknowledged by alice"), ("resolved", "manual by bob: fixed the queue"),
                       ("reopened", "reopened by carol")]
    shown = show_incident(engine, iid)
    assert [(e["kind"], e["actor"]) for e in shown["events"]][-3:] == [
        ("acknowledged", "alice"), ("resolved", "bob"), ("reopened", "carol")]
    assert (shown["status"], shown["reopen_count"], shown["resolved_by"]) == ("open", 1, None)


def test_reopen_refused_while_a_newer_incident_of_the_fingerprint_is_open(engine, fixture_bodies):
    from incidentctl.errors import InvalidTransition
    firing = fixture_bodies["grafana/grafana9_zulip_firing_single_valueString.json"]
    store_spaced(engine, [firing])
    process_all(engine)
    [(first,)] = _rows(engine, incidents, "id")
    resolved_at = datetime(2022, 6, 17, 0, 45, tzinfo=timezone.utc)  # a person resolves it 4 min in
    transition(engine, "resolve", first, by="a", note=None, now=resolved_at)
    # a new episode 2 h later (outside the reopen window) opens a second incident
    store(engine, [(T0 + timedelta(hours=2), firing.replace(b"2022-06-17T00:41:00", b"2022-06-17T02:41:00"))])
    assert process_all(engine).opened == 1
    with pytest.raises(InvalidTransition, match="same fingerprint is unresolved") as refused:
        transition(engine, "reopen", first, by="a", note=None, now=T0)
    assert refused.value.status == "resolved"
    assert _rows(engine, incidents, "status", "reopen_count")[0] == ("resolved", 0)  # rolled back


def test_what_people_do_never_changes_series_nor_the_cache_version(engine, db_url, fixture_bodies):
    # The other half of SeriesCache's invariant (series_cache.py): ack, resolve, reopen and note
    # leave every series and the version its kept series are checked against as they were.

    from incidentctl.db.schema import incident_alerts

    oncall = "alertmanager/am_v4_oncall-example_firing_3alerts_numFiring-added-by-oncall.json"
    store_spaced(engine, [fixture_bodies[oncall]])
    process_all(engine)
    (iid,) = [r[0] for r in _rows(engine, incidents, "id")]

    def observed():
        return (_rows(engine, incident_alerts, *incident_alerts.c.keys()),
                _rows(engine, incidents, "alert_count", "last_alert_at", "series_count"))

    before = observed()
    for args in (["ack", str(iid)], ["resolve", str(iid)], ["reopen", str(iid)], ["note", str(iid), "looked"]):
        result = invoke(*args, "--by", "alice", env={"INCIDENTCTL_DATABASE_URL": db_url})
        assert result.exit_code == 0, result.output
    assert observed() == before
    assert _rows(engine, incidents, "status") == [("open",)]  # the commands did apply


def test_each_batch_marks_its_rows_processed_at_one_reading_of_the_clock(engine, fixture_bodies):
    # processed_at is the injected clock's (rebuild orders people's actions by it), read once a batch.
    from incidentctl.incidents.processor import process_pending

    store_spaced(engine, [*list(fixture_bodies.values())[:4], b"{not json"])
    readings = [T0 + timedelta(hours=h) for h in range(3)]
    clock = iter(readings).__next__
    summary = process_pending(engine, RULES, batch_size=2, clock=clock)
    assert (summary.rows, summary.errors) == (5, 1)
    marks = [r[0] for r in _rows(engine, grafana_alerts, "processed_at")]
    assert marks == [readings[0], readings[0], readings[1], readings[1], readings[2]]
