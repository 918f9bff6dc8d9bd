"""Incident state in the database: load IncidentStates for a batch, write a batch's decisions.

The processor owns the transaction; these functions run inside it. MySQL reads the incidents
`FOR UPDATE` so a person's ack/resolve cannot slip between the read and the write.

`load_states` reads, for a batch's incident fingerprints, the unresolved incident (by
`active_key`) or else the newest one, with its series. `write_batch(conn, changes, raw_ids)`
writes a batch's decisions (timeline entries name their raw row by position in `raw_ids`):
updates of existing incidents (on MariaDB one multi-row `INSERT … ON DUPLICATE KEY UPDATE`,
guarded so it can only ever update the row of its own id), new incidents, series upserts,
timeline and outbox rows, and the `series_labels` rows of the series added, leaving out pairs
the incident has indexed already.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, select

from incidentctl.db.capabilities import capabilities
from incidentctl.db.rows import insert_rows, pipelined, reserve_ids, update_rows
from incidentctl.db.schema import (
    incident_alerts,
    incident_events,
    incidents,
    notifications,
    series_labels,
)
from incidentctl.incidents.model import (
    Decision,
    IncidentState,
    IncidentStatus,
    Message,
    OutboxState,
    SeriesState,
    TimelineEntry,
)
from incidentctl.incidents.series_cache import SeriesCache
from incidentctl.slicing import chunks, clip

CHUNK = 500


# Built once: statements built per call leave cyclic garbage (ops/gc_tuning.py); expanding
# parameters are rendered per execution from the one cached compilation.
_ACTIVE = select(incidents).where(incidents.c.active_key.in_(bindparam("keys", expanding=True)))
_NEWEST_IDS = (select(func.max(incidents.c.id)).where(incidents.c.fingerprint.in_(bindparam("fps", expanding=True)))
               .group_by(incidents.c.fingerprint))
_BY_ID = select(incidents).where(incidents.c.id.in_(bindparam("ids", expanding=True)))
_SERIES = (select(incident_alerts.c.incident_id, incident_alerts.c.alert_fingerprint, incident_alerts.c.status,
                  incident_alerts.c.severity, incident_alerts.c.starts_at, incident_alerts.c.ends_at,
                  incident_alerts.c.last_event_at, incident_alerts.c.first_seen_at, incident_alerts.c.last_seen_at,
                  incident_alerts.c.times_seen)
           .where(incident_alerts.c.incident_id.in_(bindparam("ids", expanding=True)))
           .order_by(incident_alerts.c.id))


def load_states(conn: Connection, fingerprints: Iterable[str], cache: SeriesCache | None = None
                ) -> dict[str, IncidentState]:
    """The incident each fingerprint's next alert applies to: the unresolved one, else the newest.
    Incident rows are always read (people change them); series come from `cache` when it holds
    them as they are."""
    fill = None if cache is None else cache.fill
    states = _read_states(conn, fingerprints, lock=capabilities(conn).row_locks, fill=fill)
    if cache is not None:
        cache.stage(state for _, (state, from_cache) in sorted(states.items()) if not from_cache)
    return {state.fingerprint: state for state, _ in states.values()}


def peek_states(conn: Connection, fingerprints: Iterable[str], cache: SeriesCache | None = None
                ) -> dict[str, IncidentState]:
    """What `load_states` would return now, read without locks and without changing `cache`: a
    guess for a batch that has not begun (the processor's `ReadAhead`), on a connection of its
    own, to be checked against what `load_states` reads when the batch does begin."""
    fill = None if cache is None else cache.peek
    return {state.fingerprint: state for state, _ in _read_states(conn, fingerprints, lock=False, fill=fill).values()}


def _read_states(conn: Connection, fingerprints: Iterable[str], *, lock: bool,
                 fill: Callable[[IncidentState, int], bool] | None) -> dict[int, tuple[IncidentState, bool]]:
    """By incident id: the state and whether `fill` gave it its series (else they were read)."""
    fps = sorted(set(fingerprints))
    active_query, by_id_query = (_ACTIVE.with_for_update(), _BY_ID.with_for_update()) if lock else (_ACTIVE, _BY_ID)
    rows: dict[int, dict] = {}
    for chunk in chunks(fps, CHUNK):
        for row in conn.execute(active_query, {"keys": list(chunk)}):
            rows[row.id] = dict(row._mapping)
    active = {r["fingerprint"] for r in rows.values()}
    rest = [fp for fp in fps if fp not in active]
    newest: list[int] = []
    for chunk in chunks(rest, CHUNK):
        newest.extend(conn.scalars(_NEWEST_IDS, {"fps": list(chunk)}))
    for id_chunk in chunks(newest, CHUNK):
        for row in conn.execute(by_id_query, {"ids": list(id_chunk)}):
            rows[row.id] = dict(row._mapping)
    states = {row["id"]: incident_state(row) for row in rows.values()}
    filled = set() if fill is None else {i for i in sorted(states) if fill(states[i], rows[i]["series_count"])}
    missing = [i for i in sorted(states) if i not in filled]
    # Labels, annotations and links are not read: an event that changes them rewrites them all.
    for chunk in chunks(missing, CHUNK):
        for row in conn.execute(_SERIES, {"ids": list(chunk)}):
            states[row.incident_id].series[row.alert_fingerprint] = SeriesState(
                fingerprint=row.alert_fingerprint, status=row.status, severity=row.severity, labels=None,
                annotations=None, links=None, starts_at=row.starts_at, ends_at=row.ends_at,
                last_event_at=row.last_event_at, first_seen_at=row.first_seen_at, last_seen_at=row.last_seen_at,
                times_seen=row.times_seen)
    return {i: (state, i in filled) for i, state in states.items()}


def incident_state(row) -> IncidentState:
    """An incidents row (a mapping) as the model's IncidentState, without its series."""
    return IncidentState(
        id=row["id"], fingerprint=row["fingerprint"], status=row["status"], title=row["title"],
        severity=row["severity"], alertname=row["alertname"] or "", cluster=row["cluster"] or "",
        namespace=row["namespace"] or "", service=row["service"] or "", group_labels=row["group_labels"] or {},
        common_labels=row["common_labels"] or {}, opened_at=row["opened_at"], last_alert_at=row["last_alert_at"],
        resolution=row["resolution"], acknowledged_at=row["acknowledged_at"], acknowledged_by=row["acknowledged_by"],
        resolved_at=row["resolved_at"], resolved_by=row["resolved_by"], alert_count=row["alert_count"],
        reopen_count=row["reopen_count"],
    )


def incident_row(state: IncidentState) -> dict:
    return {
        "fingerprint": state.fingerprint,
        "active_key": None if state.status == IncidentStatus.RESOLVED else state.fingerprint,
        "status": state.status, "resolution": state.resolution, "title": clip(state.title, 512),
        "severity": state.severity, "alertname": clip(state.alertname, 255), "cluster": clip(state.cluster, 255),
        "namespace": clip(state.namespace, 255), "service": clip(state.service, 255),
        "group_labels": state.group_labels, "common_labels": state.common_labels,
        "opened_at": state.opened_at, "last_alert_at": state.last_alert_at,
        "acknowledged_at": state.acknowledged_at, "acknowledged_by": state.acknowledged_by,
        "resolved_at": state.resolved_at, "resolved_by": state.resolved_by,
        "alert_count": state.alert_count, "series_count": len(state.series), "series_firing": state.series_firing,
        "reopen_count": state.reopen_count,
    }


_SERIES_COUNTERS = ("status", "severity", "starts_at", "ends_at", "last_event_at", "first_seen_at", "last_seen_at",
                    "times_seen")
_SERIES_CONTENT = ("labels", "annotations", "generator_url", "dashboard_url", "panel_url", "silence_url", "image_url")


def series_row(incident_id: int, s: SeriesState) -> dict:
    """The incident_alerts row; labels/annotations/links are placeholders when not loaded (the
    row exists then, and `_upsert_series` leaves those columns alone)."""
    row = {"incident_id": incident_id, "alert_fingerprint": s.fingerprint,
           **{k: getattr(s, k) for k in _SERIES_COUNTERS},
           "labels": s.labels if s.labels is not None else {},
           "annotations": s.annotations if s.annotations is not None else {}}
    links = s.links or {}
    for key in ("generator", "dashboard", "panel", "silence", "image"):
        row[f"{key}_url"] = clip(links.get(key), 2048)
    return row


@dataclass
class Changes:
    """A batch's decisions, collected in order, written by `write_batch`.

    Incidents are identified by a key (their id, or a negative number until inserted) because
    one fingerprint can have two incidents in a batch (one resolves, a later alert opens anew);
    timeline entries name their raw row by its key in the batch (see `write_batch`).
    """

    incidents: dict[int, IncidentState] = field(default_factory=dict)
    series: dict[int, set[str]] = field(default_factory=dict)
    events: list[tuple[int, TimelineEntry, int | None]] = field(default_factory=list)  # key, entry, raw key
    messages: list[tuple[int, Message]] = field(default_factory=list)
    added: dict[int, set[str]] = field(default_factory=dict)  # series added in this batch, by key
    _next_new: int = -1

    def key_for_new(self) -> int:
        self._next_new -= 1
        return self._next_new

    def record(self, key: int, decision: Decision, series_fp: str, raw_key: int, *, messages: bool = True) -> None:
        """A decision that changed the incident (its `state`, the newest; `messages`: whether its
        outbox messages are written too)."""
        assert decision.state is not None  # a change leaves an incident
        self.incidents[key] = decision.state
        self.series.setdefault(key, set()).add(series_fp)
        if decision.added_series:
            self.added.setdefault(key, set()).add(series_fp)
        self.events.extend((key, entry, raw_key) for entry in decision.timeline)
        if messages:
            self.messages.extend((key, message) for message in decision.messages)

    def note(self, key: int, timeline, raw_key: int | None) -> None:
        """Timeline entries for an incident the decision left as it was (an ignored event)."""
        self.events.extend((key, entry, raw_key) for entry in timeline)


def write_batch(conn: Connection, changes: Changes, raw_ids: Sequence[int] | None = None) -> None:
    """Writes a batch's changes in the caller's transaction: inserts new incidents, updates the
    others, upserts touched series, appends timeline and outbox rows. A timeline entry names its
    raw row by a key, a position in `raw_ids` (or, without them, the row's id), and may name an
    incident this batch does not change by its id (a positive key)."""
    ids: dict[int, int] = {}
    updates = [{"id": key, **incident_row(state)} for key, state in changes.incidents.items() if key > 0]
    new = [(key, state) for key, state in changes.incidents.items() if key < 0]
    # The applier lease makes this the only writer of incidents: new ones get the ids the
    # table's counter gives next, so nothing needs an answer from the server, and each table's
    # rows are prepared while the statements before them run.
    reserved = reserve_ids(conn, incidents, len(new)) if new else None
    with pipelined(conn):
        # Existing incidents first: one that resolved in this batch frees its active_key for a
        # new incident of the same fingerprint opened later in the batch.
        if updates:
            update_rows(conn, incidents, updates)
            ids.update((u["id"], u["id"]) for u in updates)
        if new:
            rows = [incident_row(s) for _, s in new]
            if reserved is None:
                reserved = insert_rows(conn, incidents, rows, returning="id")
            else:
                insert_rows(conn, incidents, [{"id": i, **row} for i, row in zip(reserved, rows, strict=True)])
            for (key, state), new_id in zip(new, reserved, strict=True):
                ids[key] = state.id = new_id
        full: list[dict] = []
        counters: list[dict] = []
        for key, fps in changes.series.items():
            for fp in sorted(fps):
                series = changes.incidents[key].series[fp]
                (counters if series.labels is None else full).append(series_row(ids[key], series))
        if full:
            _upsert_series(conn, full, _SERIES_COUNTERS + _SERIES_CONTENT)
        if changes.added:
            _add_series_labels(conn, [row for key, fps in changes.added.items()
                                      for row in _added_label_rows(ids[key], changes.incidents[key], fps)])
        if counters:
            _upsert_series(conn, counters, _SERIES_COUNTERS)
        if changes.events:
            insert_rows(conn, incident_events, [
                {"incident_id": ids.get(key, key), "kind": e.kind, "at": e.at, "actor": e.actor,
                 "alert_fingerprint": e.alert_fingerprint,
                 "raw_alert_id": raw_key if raw_ids is None or raw_key is None else raw_ids[raw_key],
                 "detail": dict(e.detail) if e.detail is not None else None}
                for key, e, raw_key in changes.events])
        if changes.messages:
            insert_rows(conn, notifications, [
                {"incident_id": ids[key], "change": m.change, "reason": clip(m.reason, 255), "severity": m.severity,
                 "created_at": m.at, "state": OutboxState.PENDING, "attempts": 0}
                for key, m in changes.messages])


def _upsert_series(conn: Connection, rows: list[dict], keys: tuple[str, ...]) -> None:
    insert_rows(conn, incident_alerts, rows, on_conflict=("incident_id", "alert_fingerprint"), update=keys)


def series_label_rows(incident_id: int, opened_at: datetime, label_sets: Iterable[dict[str, str]],
                      known: dict[str, str] | None = None) -> list[dict]:
    """The series_labels rows of these series' labels in an incident, each pair once, leaving
    out the pairs of `known`."""
    pairs = {(name, str(value)) for labels in label_sets for name, value in labels.items()}
    if known:
        pairs -= {(name, str(value)) for name, value in known.items()}
    return [{"incident_id": incident_id, "name": name, "value": value, "opened_at": opened_at}
            for name, value in sorted(pairs)]


def _labels(series: SeriesState) -> dict[str, str]:
    assert series.labels is not None  # a series is added with its labels
    return series.labels


def _added_label_rows(incident_id: int, state: IncidentState, added: set[str]) -> list[dict]:
    """A series' labels are its identity (its fingerprint hashes them), so they are indexed
    once, when it is added. When the incident has series from before this batch, they carry
    its common labels and indexed them already."""
    known = state.common_labels if len(added) < len(state.series) else None
    return series_label_rows(incident_id, state.opened_at, (_labels(state.series[fp]) for fp in sorted(added)), known)


def _add_series_labels(conn: Connection, rows: list[dict]) -> None:
    """Inserts the pairs an incident does not have yet; the ones it has stay as they are. (No
    rows: every label of the added series is common, indexed already.)"""
    insert_rows(conn, series_labels, rows, on_conflict=("incident_id", "name", "value"))
