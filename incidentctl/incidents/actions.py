"""What people do to incidents: ack, resolve, reopen (one or many ids) and notes.

A transition loads the incident as the model's IncidentState, applies the model's transition
(which says what is allowed and what changes) and writes back the columns that changed. Each
takes `now` from the caller and writes an incident_events row with the actor, and the door the
action came through (`via`: cli, slack, api) in its detail, in the same transaction; ack/resolve/
reopen also write an outbox row for Slack's digests and threads, a note one for the threads only
(state `thread`: no digest takes it). The `*_on` forms run in the caller's transaction (the
inbox applier marks its row in the same one); the others open their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError

from incidentctl.db.capabilities import capabilities
from incidentctl.db.engine import database_errors
from incidentctl.db.retry import retry_conflicts
from incidentctl.db.schema import incident_events, incidents, notifications
from incidentctl.errors import InvalidTransition, NotFound
from incidentctl.incidents.model import (
    ChangeKind,
    IncidentState,
    IncidentStatus,
    OutboxState,
    Resolution,
    TimelineKind,
    Via,
)
from incidentctl.incidents.store import incident_row, incident_state


@dataclass(frozen=True)
class TransitionResult:
    """What one id of a bulk transition came to."""

    id: int
    ok: bool
    status: str | None  # the incident's status after (or, on failure, as it is)
    message: str


def transition_many(engine: Engine, action: str, ids: Sequence[int], *, by: str, note: str | None,
                    now: datetime, via: str = Via.CLI) -> list[TransitionResult]:
    """Applies `action` (ack | resolve | reopen) to each id in its own transaction; one
    failure does not stop the others."""
    outcomes = []
    for incident_id in ids:
        try:
            status = transition(engine, action, incident_id, by=by, note=note, now=now, via=via)
            outcomes.append(TransitionResult(incident_id, True, status, f"incident {incident_id}: {status}"))
        except NotFound as exc:
            outcomes.append(TransitionResult(incident_id, False, None, str(exc)))
        except InvalidTransition as exc:
            outcomes.append(TransitionResult(incident_id, False, exc.status, str(exc)))
    return outcomes


# What each transition writes on the timeline and announces in the outbox.
_RECORDED = {"ack": (TimelineKind.ACKNOWLEDGED, ChangeKind.ACKNOWLEDGED),
             "resolve": (TimelineKind.RESOLVED, ChangeKind.RESOLVED),
             "reopen": (TimelineKind.REOPENED, ChangeKind.REOPENED)}


def transition(engine: Engine, action: str, incident_id: int, *, by: str, note: str | None,
               now: datetime, via: str = Via.CLI) -> IncidentStatus:
    """ack: open → acknowledged; resolve: open|acknowledged → resolved (manual); reopen:
    resolved → open. Returns the new status; raises NotFound, InvalidTransition. A conflict
    with a concurrent batch (1213/1205, e.g. on another Galera node) runs it again."""
    if action not in _RECORDED:
        raise ValueError(f"unknown transition {action!r}")

    def once() -> IncidentStatus:
        with engine.connect() as conn, conn.begin():
            return transition_on(conn, action, incident_id, by=by, note=note, now=now, via=via)

    with database_errors(engine):
        return retry_conflicts(once)


def transition_on(conn: Connection, action: str, incident_id: int, *, by: str, note: str | None,
                  now: datetime, via: str = Via.CLI) -> IncidentStatus:
    """`transition` in the caller's transaction (nothing is written when it raises)."""
    if action not in _RECORDED:
        raise ValueError(f"unknown transition {action!r}")
    state = incident_state(_locked(conn, incident_id)._mapping)
    before = incident_row(state)
    reason = _apply(state, action, by, now)
    changed = {name: value for name, value in incident_row(state).items() if value != before[name]}
    try:
        conn.execute(update(incidents).where(incidents.c.id == incident_id).values(changed))
    except IntegrityError:  # reopening: the unique active_key is taken
        other = conn.scalar(select(incidents.c.id).where(incidents.c.active_key == state.fingerprint))
        raise InvalidTransition(f"incident {incident_id} cannot be reopened: incident {other} with the same "
                                f"fingerprint is unresolved", status=before["status"]) from None
    if note:
        reason += f": {note}"
    kind, change = _RECORDED[action]
    _event(conn, incident_id, kind, now, by, {"via": via, **({"note": note} if note else {})})
    conn.execute(notifications.insert().values(
        incident_id=incident_id, change=change, reason=reason[:255], severity=state.severity,
        created_at=now, state=OutboxState.PENDING, attempts=0))
    return state.status


def _apply(state: IncidentState, action: str, by: str, now: datetime) -> str:
    """Applies a person's `action` to `state`; returns the reason its outbox row gives."""
    if action == "ack":
        state.ack(by, now)
        return f"acknowledged by {by}"
    if action == "resolve":
        state.resolve(by, now, Resolution.MANUAL)
        return f"manual by {by}"
    state.reopen()
    return f"reopened by {by}"


def add_note(engine: Engine, incident_id: int, text: str, *, by: str, now: datetime, via: str = Via.CLI) -> None:
    """Adds a note to the timeline of any incident; raises NotFound."""
    def once() -> None:
        with engine.connect() as conn, conn.begin():
            note_on(conn, incident_id, text, by=by, now=now, via=via)

    with database_errors(engine):
        retry_conflicts(once)


def note_on(conn: Connection, incident_id: int, text: str, *, by: str, now: datetime, via: str = Via.CLI) -> None:
    """`add_note` in the caller's transaction: the timeline row, and an outbox row born `thread`
    whose reason is `note_reason` (the Slack app replies it in the threads of the messages that
    show the incident, reading the whole text from the timeline row; no digest takes it)."""
    row = _locked(conn, incident_id)
    _event(conn, incident_id, TimelineKind.NOTE, now, by, {"text": text, "via": via})
    conn.execute(notifications.insert().values(
        incident_id=incident_id, change=ChangeKind.NOTE, reason=note_reason(by, text), severity=row.severity,
        created_at=now, state=OutboxState.THREAD, attempts=0))


def note_reason(by: str, text: str) -> str:
    """A note's outbox reason: `note by <who>: <text>`, cut to the column's 255 characters (the
    timeline row keeps the whole text)."""
    return f"note by {by}: {text}"[:255]


def record_on(conn: Connection, incident_id: int, kind: TimelineKind, *, by: str, now: datetime,
              detail: dict) -> None:
    """A timeline row by a person about incident `incident_id` (e.g. that they silenced it), in the
    caller's transaction; raises NotFound."""
    _locked(conn, incident_id)
    _event(conn, incident_id, kind, now, by, detail)


def _locked(conn: Connection, incident_id: int):
    query = select(incidents).where(incidents.c.id == incident_id)
    row = conn.execute(query.with_for_update() if capabilities(conn).row_locks else query).first()
    if row is None:
        raise NotFound(f"incident {incident_id} not found")
    return row


def _event(conn: Connection, incident_id: int, kind: TimelineKind, at: datetime, actor: str,
           detail: dict | None) -> None:
    conn.execute(incident_events.insert().values(incident_id=incident_id, kind=kind, at=at, actor=actor,
                                                 detail=detail))
