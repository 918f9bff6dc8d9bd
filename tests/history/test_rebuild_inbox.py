"""rebuild keeps what people did from Slack and the REST API (the action inbox) as it keeps the
CLI's: acks, resolves, notes and silences, with who and through which door."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from urllib.parse import urlencode

import requests
from sqlalchemy import select

from incidentctl.db.schema import action_inbox, incident_events, incidents
from incidentctl.history.rebuild import rebuild
from incidentctl.ingest.inbox import Door, InboxRequest, insert_requests
from incidentctl.ingest.tokens import add_token
from incidentctl.notify.applier import apply_pending
from incidentctl.notify.intent import AllowList
from tests.history.test_rebuild import DEFAULT, _open_ids, _rows
from tests.support.processing import process_all, store
from tests.support.slack_interactions import SlackInteractions


def _slack_click(value: str, at: datetime, user: str) -> InboxRequest:
    clicks = SlackInteractions("unused", clock=at.timestamp, user={"id": f"U0{user.upper()}", "username": user})
    payload = clicks.payload(value, value, response_url="http://127.0.0.1:9/respond/none")
    return InboxRequest(at, Door.SLACK, urlencode({"payload": json.dumps(payload)}).encode())


def _timeline(engine, incident_id: int) -> list[tuple]:
    e = incident_events.c
    with engine.connect() as conn:
        rows = conn.execute(select(e.kind, e.actor, e.detail).where(e.incident_id == incident_id,
                                                                    e.actor != "incidentctl").order_by(e.id))
        return [(r.kind, r.actor, (r.detail or {}).get("via")) for r in rows]


def test_rebuild_keeps_actions_from_slack_and_the_rest_api(engine):
    rows = _rows()
    half = len(rows) // 2
    store(engine, rows[:half])
    process_all(engine, DEFAULT)
    acked, resolved, noted = _open_ids(engine)[:3]
    owner, _ = add_token(engine, "bob", created_by="admin", now=datetime.now(timezone.utc))
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        insert_requests(conn, [
            _slack_click(f"ic1:ack:{acked}", now, "alice"),
            InboxRequest(now, Door.API, b'{"action": "resolve", "text": "rolled back"}', incident_id=resolved,
                         token_id=owner["id"], token_name="bob"),
            InboxRequest(now, Door.API, b'{"action": "note", "text": "paged the db team"}', incident_id=noted,
                         token_id=owner["id"], token_name="bob"),
            _slack_click(f"ic1:silence:{noted}:4h", now, "carol"),
        ])
    with requests.Session() as session:
        summary = apply_pending(engine, allow=AllowList(), session=session, clock=lambda: datetime.now(timezone.utc))
    assert (summary.applied, summary.refused) == (4, 0)
    store(engine, rows[half:])
    process_all(engine, DEFAULT)
    before = {i: _timeline(engine, i) for i in (acked, resolved, noted)}
    assert before == {acked: [("acknowledged", "alice", "slack")], resolved: [("resolved", "bob", "api")],
                      noted: [("note", "bob", "api"), ("silenced", "carol", "slack")]}

    summary = rebuild(engine, DEFAULT)
    assert summary.actions == 4 and summary.actions_carried == 4
    assert {i: _timeline(engine, i) for i in (acked, resolved, noted)} == before
    with engine.connect() as conn:
        got = {r.id: (r.acknowledged_by, r.resolved_by) for r in conn.execute(
            select(incidents).where(incidents.c.id.in_([acked, resolved])))}
        assert set(conn.scalars(select(action_inbox.c.state))) == {"applied"}
    assert got[acked][0] == "alice" and got[resolved][1] == "bob"
