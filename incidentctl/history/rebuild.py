"""`incidentctl rebuild`: recompute every incident from the raw archive under (new) grouping rules.

The processed raw rows are run again, in id order (the order `process` took them), through the
same pure decision `process` applies (`decide.decide`), with the incidents held in memory
(one per incident fingerprint, as `simulate` does) and written in chunks.

What people did is replayed where it happened: each ack, manual resolve, reopen and note is
applied just before the first raw row processed after it, to every rebuilt incident that is
the same incident — it shares an alert series with the old incident and their lifetimes
overlap. An old incident is continued by the new one that opens holding one of its series,
preferring the same fingerprint and opening time (which unchanged rules always give, so a
rebuild under them rewrites every row as it was), else one alive when it opens. A rebuilt
incident keeps the id of the old incident it continues (an id people may have quoted, and the
Slack outbox rows hanging off it); the others get new ids, and old ids no rebuilt incident
continues are deleted with their outbox rows. Nothing new is queued for Slack: history is not
announced again.

Safety: one transaction (all or nothing) under the applier lease (db/lease.py), fenced before
it commits, so `process` on any host or node waits while a rebuild runs. Unprocessed rows are
left for the next `process`, which applies them on top.
`dry_run` computes the same figures and writes nothing.
"""

from __future__ import annotations

import bisect
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, Row, func, select, update

from incidentctl.db.engine import database_errors, reader
from incidentctl.db.lease import Lease, applier_connection
from incidentctl.db.retry import Backoff, retry_conflicts
from incidentctl.db.schema import (
    grafana_alerts,
    incident_alerts,
    incident_events,
    incidents,
    notifications,
    series_labels,
)
from incidentctl.errors import InvalidTransition, RebuildRefused
from incidentctl.incidents.decide import decide_row
from incidentctl.incidents.model import (
    SYSTEM_ACTOR,
    Action,
    IncidentState,
    IncidentStatus,
    Resolution,
    Rules,
    TimelineEntry,
    TimelineKind,
)
from incidentctl.incidents.parsing import parse_body
from incidentctl.incidents.store import Changes, write_batch
from incidentctl.slicing import chunks

ROWS_PER_CHUNK = 1000  # raw rows read and incident changes written per round trip
DELETE_CHUNK = 500
NOT_CARRIED_KEPT = 50  # the count is exact; only the first ones are listed
CLAIM_LOOKBACK = 50  # old incidents of one series searched for the one a new incident continues


@dataclass(frozen=True)
class OldIncident:
    id: int
    fingerprint: str
    opened_at: datetime
    resolved_at: datetime | None  # None: unresolved
    series: tuple[str, ...]  # alert fingerprints


@dataclass
class PastIncident:
    """A rebuilt incident a newer one of its fingerprint replaced, kept for notes made on it later."""

    state: IncidentState | None  # until written; then the id is enough: its series and labels go
    id: int | None  # None until written
    opened_at: datetime
    resolved_at: datetime | None
    key: int  # its key in `changes` until written


@dataclass(frozen=True)
class PersonAction:
    """An incident_events row a person wrote: acknowledged | resolved | reopened | note."""

    id: int
    incident_id: int
    kind: TimelineKind  # as read: the plain string, equal to the member
    at: datetime
    actor: str
    detail: dict | None


@dataclass
class RebuildSummary:
    group_by: tuple[str, ...]
    reopen_window: timedelta
    dry_run: bool
    rows: int = 0  # processed raw rows run again
    alerts: int = 0
    unparsable: int = 0
    incidents_before: int = 0
    incidents_after: int = 0
    ids_kept: int = 0  # rebuilt incidents that continue an old incident under its id
    incidents_dropped: int = 0  # old incidents no rebuilt incident continues
    reopens: int = 0
    purged_incidents: int = 0  # old incidents built from raw rows retention has deleted
    actions: int = 0  # acks, resolves, reopens and notes by people
    actions_carried: int = 0
    not_carried: list[dict] = field(default_factory=list)
    not_carried_count: int = 0

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run, "group_by": list(self.group_by),
            "reopen_window_s": self.reopen_window.total_seconds(), "rows": self.rows, "alerts": self.alerts,
            "unparsable_rows": self.unparsable, "incidents_before": self.incidents_before,
            "incidents_after": self.incidents_after, "ids_kept": self.ids_kept,
            "incidents_dropped": self.incidents_dropped, "reopens": self.reopens,
            "purged_incidents": self.purged_incidents, "actions": self.actions,
            "actions_carried": self.actions_carried, "actions_not_carried": self.not_carried_count,
            "not_carried": self.not_carried,
        }


def rebuild(engine: Engine, rules: Rules, *, dry_run: bool = False, force: bool = False,
            progress: Callable[[int, int], None] | None = None, lease: Lease | None = None) -> RebuildSummary:
    """Rebuilds all incidents under `rules` in one transaction (or, with `dry_run`, only counts),
    holding `lease` (default: the applier lease). Raises RebuildRefused when retention purged raw
    rows that incidents were built from, unless `force`; ProcessingBusy when another worker holds
    the lease; LeaseLost, DatabaseConflict, DatabaseUnavailable."""
    if dry_run:  # a reader: no lease, no write transaction
        with database_errors(engine), reader(engine).connect() as conn, conn.begin():
            return _Rebuild(conn, rules, dry_run, progress).run(force)
    lease = lease or Lease(engine)

    def once() -> RebuildSummary:
        with applier_connection(engine) as conn, conn.begin():
            summary = _Rebuild(conn, rules, dry_run, progress).run(force)
            lease.fence(conn)
            return summary

    with database_errors(engine), lease:
        # A person's ack on another node meanwhile conflicts with the whole rebuild: run it again.
        return retry_conflicts(once, backoff=Backoff(attempts=3, base=0.5, cap=2.0), counts=lease.conflicts)


class _Rebuild:
    def __init__(self, conn: Connection, rules: Rules, dry_run: bool, progress):
        self.conn, self.rules, self.dry_run, self.progress = conn, rules, dry_run, progress
        self.summary = RebuildSummary(rules.group_by, rules.reopen_window, dry_run)
        self.states: dict[str, IncidentState] = {}  # incident fingerprint → newest rebuilt incident
        self.keys: dict[str, int] = {}  # incident fingerprint → key of that incident in `changes`
        self.series_fp: dict[str, str] = {}  # alert fingerprint → incident fingerprint (new rules)
        self.past: dict[str, list[PastIncident]] = defaultdict(list)  # by incident fingerprint, oldest first
        self.new_past: list[PastIncident] = []  # not written yet
        self.claimed: set[int] = set()
        self.changes = Changes()

    def run(self, force: bool) -> RebuildSummary:
        s = self.summary
        s.purged_incidents = _count_purged(self.conn)
        if s.purged_incidents and not force and not self.dry_run:
            raise RebuildRefused(
                f"{s.purged_incidents} incident(s) were built from raw alerts that retention has purged; a rebuild "
                f"would drop them. Run with --force to rebuild anyway (those incidents are deleted).")
        self.old, self.old_by_series = _load_old(self.conn)
        s.incidents_before = len(self.old)
        actions = _load_actions(self.conn)
        s.actions = len(actions)
        pending = deque(actions)
        total = _count_rows(self.conn)
        if not self.dry_run:
            for table in (incident_events, incident_alerts, series_labels):
                self.conn.execute(table.delete())
            # The unique active_key would stop a rebuilt incident from opening while an old row
            # of its fingerprint is still unresolved; every surviving row is rewritten anyway.
            self.conn.execute(update(incidents).values(active_key=None))
        for chunk in _processed_rows(self.conn):
            for row in chunk:
                while pending and pending[0].at < row.processed_at:
                    self._apply_action(pending.popleft())
                self._apply_row(row)
            self._flush()
            if self.progress is not None:
                self.progress(s.rows, total)
        while pending:
            self._apply_action(pending.popleft())
        self._flush()
        s.ids_kept = len(self.claimed)
        dropped = sorted(set(self.old) - self.claimed)
        s.incidents_dropped = len(dropped)
        if not self.dry_run:
            for ids in chunks(dropped, DELETE_CHUNK):
                self.conn.execute(notifications.delete().where(notifications.c.incident_id.in_(ids)))
                self.conn.execute(incidents.delete().where(incidents.c.id.in_(ids)))
        return s

    # Alerts

    def _apply_row(self, row) -> None:
        s = self.summary
        s.rows += 1
        try:  # as `process`: a row that cannot be parsed or decided changes nothing
            events = parse_body(bytes(row.body), row.received_at, row.user_agent)
            # Every state held here was made by this rebuild's decisions: theirs to change in place.
            decided = decide_row(self.states, events, group_by=self.rules.group_by,
                                 reopen_window=self.rules.reopen_window, owned=self.states)
        except Exception:
            s.unparsable += 1
            return
        for event, fp, decision in decided:
            s.alerts += 1
            self.series_fp[event.fingerprint] = fp
            if decision.state is None:
                continue
            if not decision.changed:
                self.changes.note(self.keys[fp], decision.timeline, row.id)
                continue
            state = decision.state
            if decision.action == Action.OPEN:
                self._open(fp, state, event.fingerprint)
            elif decision.action == Action.REOPEN:
                s.reopens += 1
            self.states[fp] = state
            self.changes.record(self.keys[fp], decision, event.fingerprint, row.id, messages=False)

    def _open(self, fp: str, state: IncidentState, series: str) -> None:
        self.summary.incidents_after += 1
        previous = self.states.get(fp)
        if previous is not None:
            past = PastIncident(previous, previous.id, previous.opened_at, previous.resolved_at, self.keys[fp])
            self.past[fp].append(past)
            self.new_past.append(past)
        old_id = self._claim(series, fp, state.opened_at)
        if old_id is not None:
            state.id = self.keys[fp] = old_id
        else:
            self.keys[fp] = self.changes.key_for_new()

    def _claim(self, series: str, fp: str, opened_at: datetime) -> int | None:
        """The old incident a new incident continues: one holding its first series, same
        fingerprint and opening time first (what default rules give), else one alive when it
        opened; None when every such id is taken."""
        candidates = self.old_by_series.get(series)
        if not candidates:
            return None
        opened, ids = candidates
        end = bisect.bisect_right(opened, opened_at)
        alive = None
        for old_id in reversed(ids[max(0, end - CLAIM_LOOKBACK):end]):
            if old_id in self.claimed:
                continue
            old = self.old[old_id]
            if old.opened_at == opened_at and old.fingerprint == fp:
                alive = old_id
                break
            if alive is None and (old.resolved_at is None or opened_at <= old.resolved_at):
                alive = old_id
        if alive is not None:
            self.claimed.add(alive)
        return alive

    # What people did

    def _apply_action(self, action: PersonAction) -> None:
        old = self.old.get(action.incident_id)
        applied = 0
        if old is not None:
            fps = sorted({self.series_fp[s] for s in old.series if s in self.series_fp})
            for fp in fps:
                current = self.states.get(fp)
                if current is not None and _overlaps(current.opened_at, current.resolved_at, old):
                    applied += self._apply_to_current(fp, current, action)
                elif action.kind == TimelineKind.NOTE:
                    applied += self._note_on_past(fp, old, action)
        if applied:
            self.summary.actions_carried += 1
            return
        s = self.summary
        s.not_carried_count += 1
        if len(s.not_carried) < NOT_CARRIED_KEPT:
            s.not_carried.append({"incident_id": action.incident_id, "kind": action.kind, "at": action.at,
                                  "actor": action.actor})

    def _apply_to_current(self, fp: str, current: IncidentState, action: PersonAction) -> int:
        state = current.copy()
        try:
            if action.kind == TimelineKind.ACKNOWLEDGED:
                if state.status != IncidentStatus.ACKNOWLEDGED:  # acknowledged already: the first ack stands
                    state.ack(action.actor, action.at)
            elif action.kind == TimelineKind.RESOLVED:
                state.resolve(action.actor, action.at, Resolution.MANUAL)
            elif action.kind == TimelineKind.REOPENED:
                state.reopen()
        except InvalidTransition:
            return 0  # not valid on the rebuilt incident at that time
        self.states[fp] = state
        key = self.keys[fp]
        self.changes.incidents[key] = state
        self.changes.events.append((key, _entry(action), None))
        return 1

    def _note_on_past(self, fp: str, old: OldIncident, action: PersonAction) -> int:
        for past in reversed(self.past.get(fp, ())):
            if _overlaps(past.opened_at, past.resolved_at, old):
                # Not written yet: its provisional key; else its id (`write_batch` takes either).
                self.changes.events.append((past.key if past.id is None else past.id, _entry(action), None))
                return 1
        return 0

    # Writing

    def _flush(self) -> None:
        if not self.dry_run:
            write_batch(self.conn, self.changes)  # the raw keys are the rows' ids
        else:
            for state in self.changes.incidents.values():  # stand-in ids, so the next chunks see them as written
                if state.id is None:
                    state.id = -1
        for past in self.new_past:
            if past.id is None:
                assert past.state is not None  # unwritten until now, so still held
                past.id = past.state.id
            past.state = None
        for fp, key in list(self.keys.items()):
            if key < 0:
                written = self.states[fp].id
                assert written is not None  # written above, or a stand-in when dry
                self.keys[fp] = written
        self.new_past = []
        self.changes = Changes()


def _entry(action: PersonAction) -> TimelineEntry:
    return TimelineEntry(action.kind, action.at, None, action.detail, actor=action.actor)


def _overlaps(opened_at: datetime, resolved_at: datetime | None, old: OldIncident) -> bool:
    """Whether [opened_at, resolved_at] meets the old incident's lifetime (open ends: unresolved)."""
    if old.resolved_at is not None and opened_at > old.resolved_at:
        return False
    return resolved_at is None or resolved_at >= old.opened_at


def _count_purged(conn: Connection) -> int:
    e, g = incident_events.c, grafana_alerts.c
    query = (select(func.count(func.distinct(e.incident_id)))
             .select_from(incident_events.outerjoin(grafana_alerts, g.id == e.raw_alert_id))
             .where(e.raw_alert_id.is_not(None), g.id.is_(None)))
    return conn.scalar(query) or 0


def _load_old(conn: Connection) -> tuple[dict[int, OldIncident], dict[str, tuple[list[datetime], list[int]]]]:
    """Old incidents by id, and per alert series the (opening times, ids) of its old incidents,
    sorted by opening time."""
    series: dict[int, list[str]] = defaultdict(list)
    for incident_id, fp in conn.execute(select(incident_alerts.c.incident_id, incident_alerts.c.alert_fingerprint)):
        series[incident_id].append(fp)
    c = incidents.c
    old: dict[int, OldIncident] = {}
    by_series: dict[str, tuple[list[datetime], list[int]]] = defaultdict(lambda: ([], []))
    for row in conn.execute(select(c.id, c.fingerprint, c.opened_at, c.resolved_at).order_by(c.opened_at, c.id)):
        old[row.id] = OldIncident(row.id, row.fingerprint, row.opened_at, row.resolved_at,
                                  tuple(series.pop(row.id, ())))
        for fp in old[row.id].series:
            opened, ids = by_series[fp]
            opened.append(row.opened_at)
            ids.append(row.id)
    return old, dict(by_series)


def _load_actions(conn: Connection) -> list[PersonAction]:
    e = incident_events.c
    query = (select(e.id, e.incident_id, e.kind, e.at, e.actor, e.detail)
             .where(e.actor != SYSTEM_ACTOR).order_by(e.at, e.id))
    return [PersonAction(r.id, r.incident_id, r.kind, r.at, r.actor, r.detail) for r in conn.execute(query)]


def _done_filter():
    return grafana_alerts.c.processed_at.is_not(None), grafana_alerts.c.process_error.is_(None)


def _count_rows(conn: Connection) -> int:
    return conn.scalar(select(func.count()).select_from(grafana_alerts).where(*_done_filter())) or 0


def _processed_rows(conn: Connection) -> Iterator[Sequence[Row]]:
    """Processed, parsable raw rows in id order, a chunk at a time (keyset, so memory stays flat)."""
    g = grafana_alerts.c
    last = 0
    while True:
        chunk = conn.execute(select(g.id, g.received_at, g.body, g.user_agent, g.processed_at)
                             .where(g.id > last, *_done_filter()).order_by(g.id).limit(ROWS_PER_CHUNK)).all()
        if not chunk:
            return
        yield chunk
        last = chunk[-1].id
