"""The grouping decision: what one alert event does to the incident of its fingerprint.

Pure: `decide(state, event, …)` takes the model's plain dataclasses (model.py) and returns a
Decision (action, reason, the new state, the timeline entries and outbox messages to write).
The processor applies it to the database; `simulate`/`rebuild` run it over history in memory.
Times are event times. `decide_row` decides one raw row's events in order over the newest
incidents without changing them, so a row applies whole or not at all (the processor's
`decide_batch` runs it over a batch). The rules: docs/SEMANTICS.md.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from incidentctl.durations import format_duration
from incidentctl.incidents.fingerprint import group_values, incident_fingerprint
from incidentctl.incidents.model import (
    SYSTEM_ACTOR,
    Action,
    AlertStatus,
    ChangeKind,
    Decision,
    IncidentState,
    IncidentStatus,
    Message,
    Resolution,
    SeriesState,
    Severity,
    TimelineEntry,
    TimelineKind,
    normalize_severity,
    severity_rank,
)
from incidentctl.incidents.parsing import AlertEvent

CLOCK_PRECISION = timedelta(seconds=1)
# Compared on every event, so bound to globals once: on Python 3.11 reading a member from its
# enum class passes through EnumType.__getattr__, several times the cost of a global.
_FIRING, _RESOLVED, _INCIDENT_RESOLVED = AlertStatus.FIRING, AlertStatus.RESOLVED, IncidentStatus.RESOLVED
_IGNORE, _REPEAT = Action.IGNORE, Action.REPEAT


def decide(
    current: IncidentState | None,
    event: AlertEvent,
    *,
    group_by: Sequence[str],
    reopen_window: timedelta,
    series_owned: bool = False,
) -> Decision:
    """What `event` does to `current` (the newest incident of the event's incident fingerprint,
    or None). Never mutates `current`, except, with `series_owned`, the one entry of its series
    dict that the event's series has: the new state shares that dict instead of copying it (see
    `decide_row`). An event ignored against an incident carries an `ignored` timeline entry with
    its reason, except test notifications (not about it)."""
    if event.test:
        return Decision(_IGNORE, "test notification", current)
    if current is None or _too_old_to_reopen(current, event, reopen_window):
        if event.status == _RESOLVED:
            return Decision(_IGNORE, "resolved alert without an incident", current)
        return _open(event, group_by)
    state = current.copy(share_series=series_owned)
    before = series = state.series.get(event.fingerprint)
    if series is not None:
        series = state.series[event.fingerprint] = series.copy()
    decision = _firing(state, series, event, reopen_window) if event.status == _FIRING else \
        _resolved(state, series, event)
    if decision.action == _IGNORE:
        if before is not None:
            state.series[event.fingerprint] = before  # a shared dict holds the incident as it was
        detail = {"status": event.status, "reason": decision.reason}
        return Decision(_IGNORE, decision.reason, current,
                        (TimelineEntry(TimelineKind.IGNORED, event.at, event.fingerprint, detail),))
    return decision


def decide_row(
    states: Mapping[str, IncidentState],
    events: Iterable[AlertEvent],
    *,
    group_by: Sequence[str],
    reopen_window: timedelta,
    owned: Container[str] | None = None,
    undo: list[tuple[dict, str, SeriesState | None]] | None = None,
) -> list[tuple[AlertEvent, str, Decision]]:
    """The decisions on one raw row's events, in order, each event seeing what the ones before
    it did: [(event, incident fingerprint, decision)]. `states` (incident fingerprint → newest
    incident) is not changed, so a row whose events cannot all be decided (whatever an event
    raises propagates) leaves nothing half applied; the caller applies a row whole.

    `owned`: the fingerprints whose incident in `states` has a series dict the caller made in
    this run and gives up to the decisions (`decide_batch` keeps the states decisions return).
    Their decisions change that dict in place rather than copying it (the other incidents' dicts
    are copied at their first change, once), so an event costs O(1), not O(series of its
    incident): 20,000 pods failing in one incident. Should an event raise, the row's changes to
    those dicts are undone. The states decided share their dict, so only the newest is whole.
    `undo`: a list of the caller's that gets what the row changed in those dicts, for
    `undo_changes` should the caller drop the row after all."""
    decided = []
    row_states: dict[str, IncidentState] = {}
    undo = [] if undo is None else undo
    first = len(undo)  # what this row adds to `undo` from here
    current: IncidentState | None
    try:
        for event in events:
            fp = incident_fingerprint(group_by, event.labels, event.fingerprint)
            if fp in row_states:
                current, shared = row_states[fp], owned is not None
            else:
                current, shared = states.get(fp), owned is not None and fp in owned
            if shared and current is not None:
                undo.append((current.series, event.fingerprint, current.series.get(event.fingerprint)))
            decision = decide(current, event, group_by=group_by, reopen_window=reopen_window, series_owned=shared)
            if decision.changed and decision.state is not None:
                row_states[fp] = decision.state
            decided.append((event, fp, decision))
    except BaseException:
        undo_changes(undo[first:])
        del undo[first:]
        raise
    return decided


def undo_changes(undo: list[tuple[dict, str, SeriesState | None]]) -> None:
    """Puts back what decisions changed in owned series dicts (`decide_row`'s `undo`): each entry
    is (series dict, series fingerprint, the series it held before, or None), newest last."""
    for series, fingerprint, before in reversed(undo):
        if before is None:
            series.pop(fingerprint, None)
        else:
            series[fingerprint] = before


def _too_old_to_reopen(current: IncidentState, event: AlertEvent, window: timedelta) -> bool:
    if current.status != _INCIDENT_RESOLVED or event.status != _FIRING:
        return False
    series = current.series.get(event.fingerprint)
    if series is not None and _same_episode(series, event):
        return False  # a repeat or late copy of what the incident already knows
    assert current.resolved_at is not None  # a resolved incident has its time
    return event.start - current.resolved_at > window


def _same_episode(series: SeriesState, event: AlertEvent) -> bool:
    """A firing event belongs to the episode the series already knows: the series still fires
    and the event does not carry a later startsAt (a missed resolve), or the series resolved
    after the event started (a late copy)."""
    if series.status == _FIRING:
        return not (event.starts_at and series.starts_at and event.starts_at > series.starts_at)
    return series.ends_at is not None and event.start <= series.ends_at


def _open(event: AlertEvent, group_by: Sequence[str]) -> Decision:
    labels = event.labels
    severity = normalize_severity(labels.get("severity"))
    alertname = labels.get("alertname", "")
    place = "/".join(v for v in (labels.get("cluster"), labels.get("namespace"), labels.get("service")) if v)
    title = (alertname or "(no alertname)") + (f" ({place})" if place else "")
    state = IncidentState(
        fingerprint=incident_fingerprint(group_by, labels, event.fingerprint),
        status=IncidentStatus.OPEN,
        title=title,
        severity=severity,
        alertname=alertname,
        cluster=labels.get("cluster", ""),
        namespace=labels.get("namespace", ""),
        service=labels.get("service", ""),
        group_labels=group_values(group_by, labels, event.fingerprint),
        common_labels=dict(labels),
        opened_at=event.start,
        last_alert_at=event.received_at,
        alert_count=1,
    )
    state.series[event.fingerprint] = _new_series(event, severity)
    return Decision(
        Action.OPEN, "first firing alert", state,
        (TimelineEntry(TimelineKind.OPENED, event.start, event.fingerprint, {"severity": severity, "title": title}),
         TimelineEntry(TimelineKind.ALERT_FIRING, event.start, event.fingerprint)),
        (Message(ChangeKind.OPENED, f"opened: {title} firing", severity, event.start),),
        added_series=True,
    )


def _firing(state: IncidentState, series: SeriesState | None, event: AlertEvent, window: timedelta) -> Decision:
    timeline: list[TimelineEntry] = []
    messages: list[Message] = []
    state.alert_count += 1
    state.last_alert_at = max(state.last_alert_at, event.received_at)
    added = False
    if series is not None and _same_episode(series, event):
        if series.status == _RESOLVED:
            return Decision(_IGNORE, f"late firing: the series resolved at {_when(series.ends_at)}, after this "
                                     f"episode started at {_when(event.start)}", None)
        series.times_seen += 1
        series.last_seen_at = max(series.last_seen_at, event.received_at)
        series.last_event_at = max(series.last_event_at, event.received_at)
        action, reason = _REPEAT, "repeat of a firing alert"
    else:
        severity = normalize_severity(event.labels.get("severity"))
        if series is None:
            series = state.series[event.fingerprint] = _new_series(event, severity)
            state.count_firing(False, True)
            state.common_labels = {k: v for k, v in state.common_labels.items() if event.labels.get(k) == v}
            action, reason, added = Action.ADD_SERIES, f"new series ({len(state.series)} in incident)", True
        else:
            _refresh(series, event, severity)
            state.count_firing(series.status == _FIRING, True)
            series.status, series.starts_at, series.ends_at = _FIRING, event.starts_at, None
            series.last_event_at = event.start
            action, reason = Action.REFIRE, "series fires again"
        timeline.append(TimelineEntry(TimelineKind.ALERT_FIRING, event.start, event.fingerprint))
    if state.status == _INCIDENT_RESOLVED:
        if action == _REPEAT:
            # The series kept firing after a person resolved the incident: record the repeat,
            # do not overrule the person (a new episode or a new series reopens it).
            return Decision(_REPEAT, "repeat of an alert still firing when the incident was resolved", state)
        assert state.resolved_at is not None  # a resolved incident has its time
        gap = event.start - state.resolved_at
        state.reopen()
        reason = (f"fired again {format_duration(gap)} after resolution (within {format_duration(window)}; "
                  f"flap {state.reopen_count})")
        timeline.append(TimelineEntry(TimelineKind.REOPENED, event.start, event.fingerprint,
                                      {"reason": reason, "reopen_count": state.reopen_count}))
        messages.append(Message(ChangeKind.REOPENED, reason, state.severity, event.start))
        action = Action.REOPEN
    _escalate(state, event, timeline, messages)
    return Decision(action, reason, state, tuple(timeline), tuple(messages), added_series=added)


def _resolved(state: IncidentState, series: SeriesState | None, event: AlertEvent) -> Decision:
    if series is None:
        return Decision(_IGNORE, "resolved alert for a series the incident does not have", None)
    state.alert_count += 1
    state.last_alert_at = max(state.last_alert_at, event.received_at)
    series.last_seen_at = max(series.last_seen_at, event.received_at)
    series.times_seen += 1
    if series.status == _RESOLVED:
        if series.ends_at is not None and abs(event.end - series.ends_at) <= CLOCK_PRECISION:
            # The sender says again what it said (a retry, an HA peer): a repeat, like a firing one.
            return Decision(_REPEAT, "repeat of a resolve", state)
        return Decision(_IGNORE, f"series already resolved at {_when(series.ends_at)}", None)
    start = series.starts_at or series.first_seen_at
    # Senders round times differently (amtool and Prometheus to the second, Grafana to the
    # nanosecond), so a resolve in the same second as the start is the same episode.
    earliest = start - CLOCK_PRECISION
    note = None
    if event.end < earliest or (event.ends_at is None and event.starts_at is not None
                                and series.starts_at is not None and event.starts_at < earliest):
        if _ends_an_earlier_episode(series, event, earliest):
            return Decision(_IGNORE, f"late resolve of an earlier episode: it ended at {_when(event.end)}, the "
                                     f"series fired again at {_when(start)}", None)
        note = (f"the sender resolved the firing episode (started {_when(start)}) with an earlier end "
                f"({_when(event.end)}); applied: it will not send it again")
    state.count_firing(series.status == _FIRING, False)
    series.status, series.ends_at = _RESOLVED, event.end
    series.last_event_at = max(series.last_event_at, event.end)
    timeline = [TimelineEntry(TimelineKind.ALERT_RESOLVED, event.end, event.fingerprint,
                              {"reason": note} if note else None)]
    if state.series_firing or state.status == _INCIDENT_RESOLVED:
        left = state.series_firing
        reason = f"series resolved ({left} of {len(state.series)} still firing)" if left else \
            "series resolved (incident already resolved by a person)"
        return Decision(Action.SERIES_RESOLVED, reason, state, tuple(timeline))
    resolved_at = max(s.ends_at or s.last_event_at for s in state.series.values())
    if note:
        # Its end is before the episode it ends: the incident was open until the resolve came.
        resolved_at = max(resolved_at, event.received_at)
    reason = f"auto-resolved: all {len(state.series)} series resolved"
    state.resolve(SYSTEM_ACTOR, resolved_at, Resolution.AUTO)
    timeline.append(TimelineEntry(TimelineKind.RESOLVED, resolved_at, None,
                                  {"resolution": Resolution.AUTO, "reason": reason}))
    return Decision(Action.AUTO_RESOLVE, reason, state, tuple(timeline),
                    (Message(ChangeKind.RESOLVED, reason, state.severity, resolved_at),))


def _ends_an_earlier_episode(series: SeriesState, event: AlertEvent, earliest: datetime) -> bool:
    """Whether a resolve that predates the series' firing episode (which began at `earliest`,
    give or take the clock precision) is a late resolve of an earlier episode, rather than the
    sender's own resolve of the firing one with an end time set in the past. Alertmanager sends
    a resolved alert once, so it is late only when history says so: the series was seen before
    this episode began (an earlier episode ended), and the resolve spans time as an episode
    does. An end set by hand (API, `amtool alert add --end`) gives startsAt = endsAt: the API
    starts such an alert at its end, and Alertmanager keeps the earlier of that and the start
    it held."""
    if series.first_seen_at >= earliest:
        return False  # the firing episode is the first we know: nothing earlier to resolve
    return not (event.starts_at is not None and event.ends_at is not None
                and abs(event.ends_at - event.starts_at) <= CLOCK_PRECISION)


def _escalate(state: IncidentState, event: AlertEvent, timeline: list, messages: list) -> None:
    severity = normalize_severity(event.labels.get("severity"))
    if severity_rank(severity) > severity_rank(state.severity):
        reason = f"severity {state.severity} → {severity}"
        timeline.append(TimelineEntry(TimelineKind.SEVERITY_CHANGED, event.start, event.fingerprint,
                                      {"from": state.severity, "to": severity}))
        state.severity = severity
        messages.append(Message(ChangeKind.ESCALATED, reason, severity, event.start))


def _new_series(event: AlertEvent, severity: Severity) -> SeriesState:
    return SeriesState(
        fingerprint=event.fingerprint, status=_FIRING, severity=severity, labels=dict(event.labels),
        annotations=dict(event.annotations), links=dict(event.links), starts_at=event.starts_at, ends_at=None,
        last_event_at=event.start, first_seen_at=event.received_at, last_seen_at=event.received_at, times_seen=1,
    )


def _refresh(series: SeriesState, event: AlertEvent, severity: Severity) -> None:
    series.severity = severity
    series.labels, series.annotations, series.links = dict(event.labels), dict(event.annotations), dict(event.links)
    series.times_seen += 1
    series.last_seen_at = max(series.last_seen_at, event.received_at)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment is not None else "an unknown time"
