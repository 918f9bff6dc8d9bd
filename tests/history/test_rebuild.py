"""rebuild: incidents recomputed from the raw archive, people's actions carried over, all or nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, event, func, select

import incidentctl.history.rebuild as rebuild_module
from incidentctl.config import load_settings
from incidentctl.db.lease import Lease
from incidentctl.db.schema import grafana_alerts, incident_alerts, incident_events, incidents
from incidentctl.durations import utc_now
from incidentctl.errors import ProcessingBusy, RebuildRefused
from incidentctl.history.rebuild import rebuild
from incidentctl.incidents.actions import add_note, transition
from incidentctl.incidents.model import Rules
from incidentctl.incidents.processor import backlog
from tests.support.cli import run_cli
from tests.support.factories import count_rows
from tests.support.processing import checksums, database_incidents, expected_incidents, process_all, snapshot, store
from tests.support.synthetic_history import history

SETTINGS = load_settings({})
DEFAULT = Rules(tuple(SETTINGS.group_by), timedelta(seconds=SETTINGS.reopen_window))
COARSE = Rules(("alertname", "cluster"), DEFAULT.reopen_window)
PER_SERIES = Rules(("fingerprint",), DEFAULT.reopen_window)


def _rows(seed: int = 7):
    return list(history(series=60, minutes=240, seed=seed))


def _ids(engine) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(incidents.c.id, incidents.c.fingerprint,
                                                      incidents.c.opened_at).order_by(incidents.c.id))]


def _open_ids(engine, status: str = "open", series_at_least: int = 1) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(select(incidents.c.id).where(incidents.c.status == status,
                                                               incidents.c.series_count >= series_at_least)
                                 .order_by(incidents.c.id)))


def _people_act(engine) -> dict:
    """An ack, a manual resolve with a note, a note on an incident a newer one replaced, and a
    reopen, at the real time (the order rebuild replays them in is the processing order)."""
    now = datetime.now(timezone.utc)
    open_ids = _open_ids(engine)
    assert len(open_ids) >= 2
    transition(engine, "ack", open_ids[0], by="alice", note=None, now=now)
    transition(engine, "resolve", open_ids[1], by="bob", note="restarted the pod", now=now)
    with engine.connect() as conn:
        replaced = conn.scalar(select(func.min(incidents.c.id)).group_by(incidents.c.fingerprint)
                               .having(func.count() > 1).limit(1))
        reopenable = conn.scalar(select(func.max(incidents.c.id)).where(incidents.c.status == "resolved",
                                                                        incidents.c.resolution == "auto")
                                 .group_by(incidents.c.fingerprint)
                                 .having(func.max(incidents.c.active_key).is_(None)).limit(1))
    assert replaced and reopenable
    add_note(engine, replaced, "post-mortem: same root cause as last week", by="carol", now=now)
    transition(engine, "reopen", reopenable, by="dave", note=None, now=now)
    return {"acked": open_ids[0], "resolved": open_ids[1], "noted": replaced, "reopened": reopenable}


def _processed_with_people(engine, rules: Rules = DEFAULT, seed: int = 7):
    rows = _rows(seed)
    half = len(rows) // 2
    store(engine, rows[:half])
    process_all(engine, rules)
    acted = _people_act(engine)
    store(engine, rows[half:])
    process_all(engine, rules)
    return rows, acted


@pytest.fixture
def with_people(loaded, engine) -> dict:
    """This test's database as _processed_with_people leaves it (processed once a session, each test
    reading a copy); the incidents people acted on, by what they did, read back from their events."""
    loaded(_processed_with_people)
    done = {("acknowledged", "alice"): "acked", ("resolved", "bob"): "resolved", ("note", "carol"): "noted",
            ("reopened", "dave"): "reopened"}
    with engine.connect() as conn:
        events = conn.execute(select(incident_events.c.kind, incident_events.c.actor, incident_events.c.incident_id)
                              .where(incident_events.c.actor.in_(["alice", "bob", "carol", "dave"]))).all()
    acted = {done[kind, actor]: incident_id for kind, actor, incident_id in events if (kind, actor) in done}
    assert len(acted) == len(done)
    return acted


def test_default_rules_change_nothing(engine, with_people):
    before, ids = snapshot(engine), _ids(engine)
    summary = rebuild(engine, DEFAULT)
    assert snapshot(engine) == before  # incidents, series, timelines (people's events in place), outbox
    assert _ids(engine) == ids
    assert summary.incidents_before == summary.incidents_after == summary.ids_kept == len(ids)
    assert (summary.actions, summary.actions_carried, summary.not_carried_count) == (4, 4, 0)
    assert summary.incidents_dropped == 0 and summary.rows > 400


def test_a_notes_outbox_row_stays_and_finds_its_text_again_after_a_rebuild(engine, with_people):
    # The Slack app replies a note from its outbox row and reads the whole text from the timeline,
    # which a rebuild rewrites with new ids.
    from incidentctl.db.schema import notifications
    from incidentctl.notify.slack_store import note_texts

    rebuild(engine, DEFAULT)
    with engine.connect() as conn:
        (row,) = [dict(r._mapping) for r in conn.execute(select(notifications).where(notifications.c.change == "note"))]
    assert row["state"] == "thread"
    claimed = {"notification_id": row["id"], **{k: row[k] for k in ("change", "incident_id", "created_at", "reason")}}
    assert note_texts(engine, [claimed]) == {row["id"]: ("carol", "post-mortem: same root cause as last week")}


def test_acks_and_resolves_stay_on_their_incident(engine, with_people):
    acted = with_people
    rebuild(engine, DEFAULT)
    with engine.connect() as conn:
        status = dict(conn.execute(select(incidents.c.id, incidents.c.acknowledged_by)
                                   .where(incidents.c.id == acted["acked"])).all())
        resolved = conn.execute(select(incidents.c.resolution, incidents.c.resolved_by)
                                .where(incidents.c.id == acted["resolved"])).one()
        notes = conn.execute(select(incident_events.c.incident_id, incident_events.c.actor)
                             .where(incident_events.c.kind == "note")).all()
    assert status == {acted["acked"]: "alice"}
    assert tuple(resolved) == ("manual", "bob")
    assert [tuple(n) for n in notes] == [(acted["noted"], "carol")]


def test_rebuild_equals_processing_under_the_new_rules(engine, second_engine):
    rows = _rows()
    store(engine, rows)
    process_all(engine)
    summary = rebuild(engine, COARSE)
    reference = second_engine("coarse")
    store(reference, rows)
    process_all(reference, COARSE)
    assert database_incidents(engine) == database_incidents(reference)
    mine, theirs = snapshot(engine), snapshot(reference)
    assert mine["series"] == theirs["series"] and mine["events"] == theirs["events"]
    assert summary.incidents_after == len(database_incidents(reference)) < summary.incidents_before
    assert summary.incidents_dropped == summary.incidents_before - summary.ids_kept


def test_group_by_fingerprint_gives_one_incident_per_series_and_the_ack_follows(engine):
    rows = _rows()
    half = len(rows) // 2
    store(engine, rows[:half])
    process_all(engine, COARSE)
    wide = _open_ids(engine, series_at_least=2)[0]
    transition(engine, "ack", wide, by="alice", note="on it", now=datetime.now(timezone.utc))
    with engine.connect() as conn:
        wide_series = set(conn.scalars(select(incident_alerts.c.alert_fingerprint)
                                       .where(incident_alerts.c.incident_id == wide)))
    store(engine, rows[half:])
    process_all(engine, COARSE)

    summary = rebuild(engine, PER_SERIES)
    with engine.connect() as conn:
        counts = conn.execute(select(func.count(), func.count(func.distinct(incidents.c.fingerprint)),
                                     func.max(incidents.c.series_count))).one()
        series = conn.scalar(select(func.count(func.distinct(incident_alerts.c.alert_fingerprint))))
        acked = conn.execute(select(incidents.c.id, incident_alerts.c.alert_fingerprint)
                             .join(incident_alerts, incident_alerts.c.incident_id == incidents.c.id)
                             .where(incidents.c.acknowledged_by == "alice")).all()
        ack_events = conn.scalar(select(func.count()).select_from(incident_events)
                                 .where(incident_events.c.kind == "acknowledged"))
    total, fingerprints, widest = counts
    assert widest == 1 and fingerprints == series  # one series per incident, one fingerprint per series
    assert total >= fingerprints
    # The ack of the wide incident is on each of its series' incidents that were open then.
    assert len(acked) >= 2 and {fp for _, fp in acked} <= wide_series
    assert wide in {incident_id for incident_id, _ in acked}  # one of them continues the old id
    assert ack_events == len(acked)
    assert (summary.actions, summary.actions_carried, summary.not_carried_count) == (1, 1, 0)


def test_dry_run_writes_nothing_and_reports_what_the_rebuild_does(engine, with_people):
    before = checksums(engine)
    preview = rebuild(engine, COARSE, dry_run=True)
    assert checksums(engine) == before
    done = rebuild(engine, COARSE)
    assert {**preview.as_dict(), "dry_run": False} == done.as_dict()
    assert preview.incidents_after < preview.incidents_before


def test_all_or_nothing(engine, with_people, monkeypatch):
    before, ids = snapshot(engine), _ids(engine)
    monkeypatch.setattr(rebuild_module, "ROWS_PER_CHUNK", 50)
    timelines = []

    def fail_the_third_chunk(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO incident_events"):
            timelines.append(statement)
            if len(timelines) == 3:
                raise RuntimeError("disk full (injected)")

    event.listen(engine, "before_cursor_execute", fail_the_third_chunk)
    try:
        with pytest.raises(RuntimeError, match="injected"):
            rebuild(engine, COARSE)
    finally:
        event.remove(engine, "before_cursor_execute", fail_the_third_chunk)
    assert snapshot(engine) == before and _ids(engine) == ids
    assert rebuild(engine, COARSE).incidents_after < len(ids)


def _purge_alerts_of(engine, incident_id: int) -> None:
    """Deletes every raw row carrying one of the incident's series, as retention would have."""
    with engine.begin() as conn:
        series = [fp.encode() for fp in conn.scalars(select(incident_alerts.c.alert_fingerprint)
                                                      .where(incident_alerts.c.incident_id == incident_id))]
        doomed = [row.id for row in conn.execute(select(grafana_alerts.c.id, grafana_alerts.c.body))
                  if any(fp in row.body for fp in series)]
        assert doomed
        conn.execute(delete(grafana_alerts).where(grafana_alerts.c.id.in_(doomed)))


def test_purged_raw_alerts_refuse_the_rebuild_unless_forced(engine, with_people):
    acted = with_people
    _purge_alerts_of(engine, acted["acked"])
    before = snapshot(engine)
    with pytest.raises(RebuildRefused, match="--force"):
        rebuild(engine, DEFAULT)
    assert snapshot(engine) == before
    summary = rebuild(engine, DEFAULT, force=True)
    assert summary.purged_incidents >= 1
    assert {"incident_id": acted["acked"], "kind": "acknowledged", "actor": "alice"}.items() <= \
        summary.not_carried[0].items()
    assert summary.not_carried_count == 1 and summary.actions_carried == 3
    assert count_rows(engine, incidents, incidents.c.id == acted["acked"]) == 0


def test_unprocessed_rows_are_left_for_process(engine):
    rows = _rows()
    store(engine, rows)
    process_all(engine, limit=len(rows) // 3)
    waiting = backlog(engine)
    rebuild(engine, DEFAULT)
    assert backlog(engine) == waiting > 0
    process_all(engine)
    assert database_incidents(engine) == expected_incidents(rows, SETTINGS.group_by, SETTINGS.reopen_window)


def test_rebuild_waits_for_the_lease_another_worker_holds_and_gives_up(engine):
    store(engine, _rows()[:200])
    process_all(engine)
    before = snapshot(engine)
    with Lease(engine, clock=utc_now, owner="host-a:1:worker", heartbeat=False), \
            pytest.raises(ProcessingBusy, match="host-a:1:worker"):
        rebuild(engine, COARSE, lease=Lease(engine, clock=utc_now, wait=0.3))
    assert snapshot(engine) == before


@pytest.mark.slow
def test_cli_end_to_end(engine, cli_env):
    _processed_with_people(engine)
    count = len(_ids(engine))
    preview = run_cli("rebuild", "--group-by", "alertname,cluster", "--dry-run", env=cli_env)
    assert preview.returncode == 0, preview.stderr
    assert preview.stdout.startswith(f"would rebuild {count} → ") and "carried over 4" in preview.stdout
    assert len(_ids(engine)) == count
    done = run_cli("rebuild", "--group-by", "alertname,cluster", "-o", "json", env=cli_env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["dry_run"] is False and data["group_by"] == ["alertname", "cluster"]
    assert data["incidents_after"] == len(_ids(engine)) < count
    assert "differ from the configured ones" in done.stderr  # process would group new alerts the old way


@pytest.mark.parametrize("args, message", [
    (["--reopen-window", "soon"], "--reopen-window"),
    (["--group-by", " , "], "--group-by"),
    (["--output", "xml"], "--output"),
])
@pytest.mark.slow
def test_cli_bad_options_are_usage_errors(engine, cli_env, args, message):
    result = run_cli("rebuild", *args, env=cli_env)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.slow
def test_cli_refusal_names_the_way_out(engine, cli_env):
    _, acted = _processed_with_people(engine)
    _purge_alerts_of(engine, acted["acked"])
    result = run_cli("rebuild", env=cli_env)
    assert result.returncode == 1 and "--force" in result.stderr
    forced = run_cli("rebuild", "--force", env=cli_env)
    assert forced.returncode == 0, forced.stderr
    assert "not carried: acknowledged by alice" in forced.stderr and "not carried over 1" in forced.stdout



@pytest.mark.slow
def test_cli_database_down_exits_3_and_says_so(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "INCIDENTCTL_DATABASE_URL": "mysql+pymysql://root@127.0.0.1:1/incidentctl"}
    result = run_cli("rebuild", "--yes", env=env)
    assert result.returncode == 3 and "unavailable" in result.stderr
