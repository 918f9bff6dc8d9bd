"""export and replay keep people's actions: an export holds the action inbox among the webhooks,
in the order received, and `replay --process` applies each where it happened, so the incidents
come out as they were (acks, resolves, notes, silences, by whom, via which door); a refused
action stays refused; an action never lands on another incident that has the same id."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy import func, select

from incidentctl.db.schema import action_inbox, grafana_alerts, silences
from incidentctl.history.export import export_to_file
from incidentctl.history.replay import replay
from incidentctl.incidents.model import Rules
from incidentctl.ingest.inbox import Door, InboxRequest, insert_requests
from incidentctl.notify.applier import apply_pending
from incidentctl.notify.intent import AllowList
from tests.support.processing import process_all, snapshot, store
from tests.support.slack_interactions import SlackInteractions
from tests.support.synthetic_history import history


def _click(value: str, at, user: str) -> InboxRequest:
    clicks = SlackInteractions("unused", clock=at.timestamp, user={"id": f"U0{user.upper()}", "username": user})
    payload = clicks.payload(value, value, response_url="http://127.0.0.1:9/respond/none")
    return InboxRequest(at, Door.SLACK, urlencode({"payload": json.dumps(payload)}).encode())


def _rest(body: dict, incident_id: int, at) -> InboxRequest:
    return InboxRequest(at, Door.API, json.dumps(body).encode(), incident_id=incident_id, token_name="bob")


def _open(engine) -> list[int]:
    from incidentctl.db.schema import incidents
    with engine.connect() as conn:
        return list(conn.scalars(select(incidents.c.id).where(incidents.c.status == "open").order_by(incidents.c.id)))


def _original(engine):
    """Half the history processed, people act (Slack and REST, one refused), the rest processed."""
    rows = list(history(series=40, minutes=90, seed=3))
    half = len(rows) // 2
    store(engine, rows[:half])
    process_all(engine)
    with engine.connect() as conn:
        at = conn.scalar(select(func.max(grafana_alerts.c.received_at))) + timedelta(seconds=1)
    first, second, third = _open(engine)[:3]
    with engine.begin() as conn:
        insert_requests(conn, [
            _click(f"ic1:ack:{first}", at, "alice"),
            _rest({"action": "resolve", "text": "rolled back"}, second, at),
            _rest({"action": "reopen"}, third, at),  # open: refused
            _rest({"action": "note", "text": "db team paged"}, third, at + timedelta(microseconds=1)),
            _click(f"ic1:silence:{third}:4h", at + timedelta(microseconds=2), "carol"),
        ])
    summary = apply_pending(engine, allow=AllowList(), session=None, clock=lambda: at)
    assert (summary.applied, summary.refused) == (4, 1)
    store(engine, rows[half:])
    process_all(engine)
    return rows


def test_export_then_replay_with_process_keeps_peoples_actions(engine, second_engine, tmp_path):
    _original(engine)
    path = tmp_path / "history.jsonl.gz"
    exported = export_to_file(engine, path)
    assert exported.actions == 5
    with gzip.open(path, "rt") as lines:
        records = [json.loads(line) for line in lines]
    doors = [r["door"] for r in records if "door" in r]
    assert doors == ["slack", "api", "api", "api", "slack"]
    target = second_engine()
    summary = replay(target, [str(path)], clock=lambda: exported_time(engine), process_with=_rules())
    assert (summary.actions, summary.actions_applied, summary.errors) == (5, 4, [])
    assert _without_silence_ids(snapshot(target)) == _without_silence_ids(snapshot(engine))
    with target.connect() as conn:
        states = list(conn.scalars(select(action_inbox.c.state).order_by(action_inbox.c.id)))
        assert conn.scalar(select(func.count()).select_from(silences)) == 1
    assert states == ["applied", "applied", "refused", "applied", "applied"]
    again = replay(target, [str(path)], clock=lambda: exported_time(engine), process_with=_rules())
    assert (again.actions, again.action_duplicates) == (0, 5)


def test_an_action_never_lands_on_another_incident_with_the_same_id(engine, second_engine, tmp_path):
    # Only the actions are replayed, into a database of other incidents: none has their
    # fingerprints, so none is applied, whatever the ids.
    _original(engine)
    path = tmp_path / "history.jsonl"
    export_to_file(engine, path)
    actions_only = tmp_path / "actions.jsonl"
    actions_only.write_text("".join(line for line in path.read_text().splitlines(keepends=True) if '"door"' in line))
    target = second_engine()
    other = list(history(series=10, minutes=30, seed=11))  # other incidents under the same ids
    store(target, other)
    process_all(target)
    summary = replay(target, [str(actions_only)], clock=lambda: exported_time(engine), process_with=_rules())
    assert summary.actions_applied == 0
    with target.connect() as conn:
        reasons = list(conn.scalars(select(action_inbox.c.reason).order_by(action_inbox.c.id)))
    assert all("no incident here has the fingerprint" in r or "open" in r for r in reasons), reasons


def _without_silence_ids(snap: dict) -> dict:
    """A snapshot with the silence ids of `silenced` timeline rows left out: database ids, like
    the incidents' (which snapshot already leaves out)."""
    snap["events"] = [(*e[:5], {k: v for k, v in (e[5] or {}).items() if k != "silence_id"} if e[1] == "silenced"
                       else e[5]) for e in snap["events"]]
    return snap


def exported_time(engine):
    with engine.connect() as conn:
        return conn.scalar(select(func.max(grafana_alerts.c.received_at))) + timedelta(hours=1)


def _rules() -> Rules:
    from incidentctl.config import load_settings
    return Rules.configured(load_settings({}))
