"""The pure grouping decision, table-driven: a sequence of alert events per case, the actions it
yields and the incident it leaves. Times are minutes after T0; no database, no clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incidentctl.incidents.decide import decide, decide_row, undo_changes
from incidentctl.incidents.model import Action, normalize_severity
from incidentctl.incidents.parsing import AlertEvent
from tests.support import T0
from tests.support.properties import examples

GROUP_BY = ("alertname", "cluster", "namespace", "service")
WINDOW = timedelta(minutes=30)
BASE = {"alertname": "HighLatency", "cluster": "eu1", "namespace": "shop", "service": "api"}


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def fire(fp="a", at=0, start=None, severity="warning", test=False, **labels) -> AlertEvent:
    """A firing alert received at `at` whose episode started at `start` (default: at)."""
    lbl = {**BASE, "severity": severity, **labels} if severity is not None else {**BASE, **labels}
    return AlertEvent(fp, "firing", lbl, {"summary": "slow"}, m(at), starts_at=m(at if start is None else start),
                      test=test)


def res(fp="a", at=0, end=None, start=None, **labels) -> AlertEvent:
    """A resolved alert received at `at` that ended at `end` (default: at)."""
    return AlertEvent(fp, "resolved", {**BASE, "severity": "warning", **labels}, {}, m(at),
                      starts_at=m(start) if start is not None else None, ends_at=m(at if end is None else end))


def legacy(state: str, at: float) -> AlertEvent:
    labels = {"alertname": "Disk", "rule_id": "3"}
    status = "firing" if state == "alerting" else "resolved"
    return AlertEvent("lg", status, labels, {}, m(at), starts_at=m(at) if status == "firing" else None,
                      ends_at=m(at) if status == "resolved" else None, source="grafana-legacy")


def run(events, state=None):
    """Applies events in order like the processor; returns (actions, changes, final state, all states)."""
    actions, changes = [], []
    incidents = [state] if state is not None else []
    for event in events:
        d = decide(state, event, group_by=GROUP_BY, reopen_window=WINDOW)
        actions.append(d.action)
        changes.extend(msg.change for msg in d.messages)
        if d.changed and d.state is not None:
            if d.action == Action.OPEN:
                incidents.append(d.state)
            else:
                incidents[-1] = d.state
            state = d.state
    return actions, changes, state, incidents


O, U, RO = Action.OPEN, Action.REPEAT, Action.REOPEN
ADD, REF, SR, AR, IGN = Action.ADD_SERIES, Action.REFIRE, Action.SERIES_RESOLVED, Action.AUTO_RESOLVE, Action.IGNORE


class Case(NamedTuple):
    """Events applied in order to no incident, and what they must yield."""

    id: str
    events: list[AlertEvent]
    actions: list[Action]  # one per event
    changes: list[str]  # the outbox rows written, in order
    final: tuple[str, str, int, str] | None  # the last incident: status, series firing/total, reopen_count, severity
    incidents: int  # how many incidents the events made


CASES = [
    # first firing: opens an incident at the alert's startsAt, one outbox row
    Case("first-firing", [fire(at=2, start=1)], actions=[O], changes=["opened"],
         final=("open", "1/1", 0, "warning"), incidents=1),
    # repeat of a firing alert: counts only, no outbox row
    Case("repeat", [fire(at=0), fire(at=5, start=0), fire(at=10, start=0)], actions=[O, U, U], changes=["opened"],
         final=("open", "1/1", 0, "warning"), incidents=1),
    # a second series of the same kind joins the incident
    Case("second-series", [fire("a", 0), fire("b", 1, instance="2")], actions=[O, ADD], changes=["opened"],
         final=("open", "2/2", 0, "warning"), incidents=1),
    # partial resolve: one of two series resolves, the incident stays open
    Case("partial-resolve", [fire("a", 0), fire("b", 1), res("a", 5)], actions=[O, ADD, SR], changes=["opened"],
         final=("open", "1/2", 0, "warning"), incidents=1),
    # full resolve: the last series resolves → auto-resolve with one outbox row
    Case("full-resolve", [fire("a", 0), fire("b", 1), res("a", 5), res("b", 7)],
         actions=[O, ADD, SR, AR], changes=["opened", "resolved"],
         final=("resolved", "0/2", 0, "warning"), incidents=1),
    # fires again 10 min after auto-resolve (inside the 30 min window) → reopen, a flap
    Case("refire-within-window", [fire("a", 0), res("a", 5), fire("a", 15)],
         actions=[O, AR, RO], changes=["opened", "resolved", "reopened"],
         final=("open", "1/1", 1, "warning"), incidents=1),
    # fires again 45 min after resolve (outside the window) → a new incident
    Case("refire-after-window", [fire("a", 0), res("a", 5), fire("a", 50)],
         actions=[O, AR, O], changes=["opened", "resolved", "opened"],
         final=("open", "1/1", 0, "warning"), incidents=2),
    # out-of-order resolved: a late resolve of the first episode arrives after the second began → ignored
    Case("out-of-order-resolved", [fire("a", 0), res("a", 5), fire("a", 10), res("a", 12, end=5, start=0)],
         actions=[O, AR, RO, IGN], changes=["opened", "resolved", "reopened"],
         final=("open", "1/1", 1, "warning"), incidents=1),
    # a resolve stamped to the second, a fraction before the nanosecond start (amtool, Prometheus) → same episode
    Case("resolve-rounded-to-second", [fire("a", 0, start=0.01), res("a", 1, end=0, start=0)],
         actions=[O, AR], changes=["opened", "resolved"], final=("resolved", "0/1", 0, "warning"), incidents=1),
    # a late firing copy (started before the series resolved) does not reopen
    Case("late-firing-copy", [fire("a", 0), res("a", 5), fire("a", 6, start=0)],
         actions=[O, AR, IGN], changes=["opened", "resolved"], final=("resolved", "0/1", 0, "warning"), incidents=1),
    # severity escalation: a critical series raises the incident's severity once
    Case("escalation", [fire("a", 0), fire("b", 1, severity="critical"), fire("b", 2, start=1, severity="critical")],
         actions=[O, ADD, U], changes=["opened", "escalated"], final=("open", "2/2", 0, "critical"), incidents=1),
    # severity never goes down: the critical series resolving leaves the incident critical
    Case("no-de-escalation", [fire("a", 0, severity="CRITICAL"), fire("b", 1, severity="info"), res("a", 3)],
         actions=[O, ADD, SR], changes=["opened"], final=("open", "1/2", 0, "critical"), incidents=1),
    # legacy `state: ok`: alerting opens, ok auto-resolves, alerting again reopens
    Case("legacy-ok", [legacy("alerting", 0), legacy("ok", 4), legacy("alerting", 9)],
         actions=[O, AR, RO], changes=["opened", "resolved", "reopened"],
         final=("open", "1/1", 1, "none"), incidents=1),
    # test notifications never open or touch incidents
    Case("test-notification", [fire(test=True), fire("t", 1, test=True)], actions=[IGN, IGN], changes=[],
         final=None, incidents=0),
    # a resolved alert with no incident (history starting mid-way) is ignored
    Case("resolved-without-incident", [res("a", 3)], actions=[IGN], changes=[], final=None, incidents=0),
    # missing labels: group_by labels absent count as empty, the incident still opens
    Case("missing-labels", [AlertEvent("z", "firing", {}, {}, m(0))], actions=[O], changes=["opened"],
         final=("open", "1/1", 0, "none"), incidents=1),
    # a missed resolve: a later startsAt on a firing series is a new episode (refire), not a repeat
    Case("missed-resolve", [fire("a", 0), fire("a", 20, start=15)], actions=[O, REF], changes=["opened"],
         final=("open", "1/1", 0, "warning"), incidents=1),
    # Alertmanager, end set in the past by a person (API, amtool --end): resolved with startsAt = endsAt
    # before the firing's startsAt; the only episode the series has → the sender's resolve, applied
    Case("am-resolve-with-past-end", [fire("a", 10), res("a", 20, end=5, start=5)],
         actions=[O, AR], changes=["opened", "resolved"], final=("resolved", "0/1", 0, "warning"), incidents=1),
    # the same with one series of two: that series resolves, the incident stays open
    Case("am-past-end-one-of-two", [fire("a", 10), fire("b", 11), res("a", 20, end=5, start=5)],
         actions=[O, ADD, SR], changes=["opened"], final=("open", "1/2", 0, "warning"), incidents=1),
    # end set by hand with a start given too (amtool --start --end): ends after the firing began → applied
    Case("past-start-given", [fire("a", 10), res("a", 20, end=15, start=2)],
         actions=[O, AR], changes=["opened", "resolved"], final=("resolved", "0/1", 0, "warning"), incidents=1),
    # a resolve without endsAt whose startsAt predates the firing: nothing earlier known → applied
    Case("no-endsAt-nothing-earlier",
         [fire("a", 10), AlertEvent("a", "resolved", {**BASE, "severity": "warning"}, {}, m(20), starts_at=m(2))],
         actions=[O, AR], changes=["opened", "resolved"], final=("resolved", "0/1", 0, "warning"), incidents=1),
    # late resolve after a missed resolve: the series was seen before its current episode → ignored
    Case("late-resolve-after-refire", [fire("a", 0), fire("a", 20, start=15), res("a", 22, end=10, start=0)],
         actions=[O, REF, IGN], changes=["opened"], final=("open", "1/1", 0, "warning"), incidents=1),
    # a person ends a flapping series by hand, between its episodes: startsAt = endsAt → the sender's, applied
    Case("past-end-after-reopen", [fire("a", 0), res("a", 5), fire("a", 10), res("a", 20, end=8, start=8)],
         actions=[O, AR, RO, AR], changes=["opened", "resolved", "reopened", "resolved"],
         final=("resolved", "0/1", 1, "warning"), incidents=1),
    # the source still fires after the hand-made resolve: the same startsAt comes again → reopens
    Case("past-end-then-fires-again", [fire("a", 10), res("a", 20, end=5, start=5), fire("a", 25, start=10)],
         actions=[O, AR, RO], changes=["opened", "resolved", "reopened"],
         final=("open", "1/1", 1, "warning"), incidents=1),
    # a resolve sent again (a retry, an HA peer) is a repeat, not an ignored event
    Case("resolve-repeated", [fire("a", 0), res("a", 5), res("a", 6, end=5, start=0)],
         actions=[O, AR, U], changes=["opened", "resolved"], final=("resolved", "0/1", 0, "warning"), incidents=1),
    # a resolve with another end for a series already resolved changes nothing
    Case("resolve-of-resolved-series", [fire("a", 0), res("a", 5), res("a", 9, end=9, start=0)],
         actions=[O, AR, IGN], changes=["opened", "resolved"], final=("resolved", "0/1", 0, "warning"), incidents=1),
    # a resolved alert for a series the incident does not have changes nothing
    Case("resolve-of-unknown-series", [fire("a", 0), res("z", 5)], actions=[O, IGN], changes=["opened"],
         final=("open", "1/1", 0, "warning"), incidents=1),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decision_table(case):
    got_actions, got_changes, state, incidents = run(case.events)
    assert got_actions == case.actions
    assert got_changes == case.changes
    assert len(incidents) == case.incidents
    if case.final is not None:
        status, firing, reopens, severity = case.final
        assert (state.status, f"{state.series_firing}/{len(state.series)}", state.reopen_count, state.severity) == \
            (status, firing, reopens, severity)


def test_mixed_notification_applies_each_alert():
    # One notification [FIRING:1, RESOLVED:1]: the processor feeds its alerts in payload order.
    actions, changes, state, _ = run([fire("a", 0), fire("b", 1), fire("a", 5, start=0), res("b", 5, end=4)])
    assert actions == [O, ADD, U, SR]
    assert (state.status, state.series["b"].status, state.series["b"].ends_at) == ("open", "resolved", m(4))


def test_manual_resolve_then_firing_again():
    _, _, state, _ = run([fire("a", 0)])
    state.status, state.resolution, state.resolved_at, state.resolved_by = "resolved", "manual", m(3), "alice"
    # the same episode keeps repeating: recorded, the person's resolve stands
    actions, changes, after_repeat, _ = run([fire("a", 6, start=0)], state)
    assert (actions, changes, after_repeat.status, after_repeat.series["a"].times_seen) == ([U], [], "resolved", 2)
    # a new episode (later startsAt) within the window reopens it
    actions, changes, reopened, _ = run([fire("a", 20, start=19)], after_repeat)
    assert (actions, changes, reopened.status, reopened.reopen_count, reopened.resolved_by) == \
        ([RO], ["reopened"], "open", 1, None)


def test_auto_resolve_time_is_the_last_end_and_times_are_event_times():
    _, _, state, _ = run([fire("a", 2, start=1), fire("b", 3), res("b", 20, end=9), res("a", 30, end=8)])
    assert (state.opened_at, state.resolved_at, state.resolution, state.last_alert_at) == (m(1), m(9), "auto", m(30))


def test_acknowledged_incident_stays_acknowledged_on_updates():
    _, _, state, _ = run([fire("a", 0)])
    state.status, state.acknowledged_by = "acknowledged", "bob"
    actions, _, state, _ = run([fire("b", 2), fire("a", 3, start=0)], state)
    assert (actions, state.status, state.acknowledged_by) == ([ADD, U], "acknowledged", "bob")


def test_past_end_resolve_resolves_the_incident_when_it_arrives_and_says_why():
    # Alertmanager's shape: firing startsAt T1 first, then resolved startsAt = endsAt = T0 < T1.
    _, _, state, _ = run([fire("a", 12, start=10)])
    d = decide(state, res("a", 20, end=5, start=5), group_by=GROUP_BY, reopen_window=WINDOW)
    assert (d.action, d.state.status, d.state.series["a"].ends_at) == (AR, "resolved", m(5))
    assert d.state.resolved_at == m(20)  # never before it opened: when the resolve came
    series_entry = next(e for e in d.timeline if e.kind == "alert_resolved")
    assert "the sender resolved the firing episode" in series_entry.detail["reason"]


IGNORED = [
    # (id, events before, the ignored event, words of its reason)
    ("late-resolve", [fire("a", 0), res("a", 5), fire("a", 10)], res("a", 12, end=5, start=0),
     "late resolve of an earlier episode"),
    ("late-firing", [fire("a", 0), res("a", 5)], fire("a", 6, start=0), "late firing"),
    ("resolved-series", [fire("a", 0), res("a", 5)], res("a", 9, end=9, start=0), "already resolved"),
    ("unknown-series", [fire("a", 0)], res("z", 5), "series the incident does not have"),
]


@pytest.mark.parametrize("case", IGNORED, ids=[c[0] for c in IGNORED])
def test_an_event_ignored_against_an_incident_is_on_its_timeline_with_the_reason(case):
    _, before, event, words = case
    _, _, state, _ = run(before)
    d = decide(state, event, group_by=GROUP_BY, reopen_window=WINDOW)
    assert (d.action, d.state, d.messages) == (IGN, state, ())  # the incident as it was
    (entry,) = d.timeline
    assert (entry.kind, entry.at, entry.alert_fingerprint, entry.detail["status"]) == (
        "ignored", event.at, event.fingerprint, event.status)
    assert entry.detail["reason"] == d.reason and words in d.reason


@pytest.mark.parametrize("event, state_events", [
    (fire("a", 5, start=0), [fire("a", 0)]),  # a plain repeat: REPEAT, no entry (storms repeat)
    (res("a", 6, end=5, start=0), [fire("a", 0), res("a", 5)]),  # a repeated resolve likewise
    (fire("t", 1, test=True), [fire("a", 0)]),  # a test notification is not about the incident
    (res("a", 3), []),  # no incident to write on
])
def test_repeats_tests_and_eventless_ignores_write_no_timeline(event, state_events):
    _, _, state, _ = run(state_events)
    assert decide(state, event, group_by=GROUP_BY, reopen_window=WINDOW).timeline == ()


def test_decide_never_mutates_the_given_state():
    _, _, state, _ = run([fire("a", 0)])
    before = (state.alert_count, state.series["a"].times_seen, len(state.series))
    decide(state, fire("b", 1), group_by=GROUP_BY, reopen_window=WINDOW)
    decide(state, fire("a", 2, start=0), group_by=GROUP_BY, reopen_window=WINDOW)
    assert (state.alert_count, state.series["a"].times_seen, len(state.series)) == before


@pytest.mark.parametrize("label, severity", [
    ("critical", "critical"), ("Critical", "critical"), ("HIGH", "error"), ("error", "error"),
    ("warning", "warning"), ("warn", "warning"), ("info", "info"), ("none", "none"), (None, "none"),
    ("P2", "warning"),  # unknown values are worth a look, never a page
])
def test_severity_normalisation(label, severity):
    assert normalize_severity(label) == severity


# The strategies _streams draws from, built once: building one per draw cost more than the draw.
_COUNTS, _FPS, _MINUTES, _LAGS = st.integers(1, 40), st.sampled_from("abc"), st.integers(0, 300), st.integers(0, 20)
_SEVERITIES = st.sampled_from(["info", "warning", "critical", "P3", None])


@st.composite
def _streams(draw):
    events = []
    for _ in range(draw(_COUNTS)):
        fp = draw(_FPS)
        at = draw(_MINUTES)
        if draw(st.booleans()):
            events.append(fire(fp, at, start=at - draw(_LAGS), severity=draw(_SEVERITIES)))
        else:
            events.append(res(fp, at, end=at - draw(_LAGS), start=draw(_MINUTES)))
    return events


@given(_streams())
@settings(max_examples=examples(200), deadline=None)
def test_any_event_stream_keeps_the_incident_consistent(events):
    # Whatever order and timing alerts arrive in, decide never fails and the state stays coherent.
    _, _, _, incidents = run(events)
    for state in incidents:
        assert state.series_firing <= len(state.series)
        if state.status == "resolved":
            assert state.resolved_at is not None and state.series_firing == 0  # only auto-resolves here
        else:
            assert state.resolved_at is None and state.series_firing >= 1
        assert state.opened_at <= max(s.last_seen_at for s in state.series.values())


@given(_streams())
@settings(max_examples=examples(200), deadline=None)
def test_deciding_in_place_decides_what_copying_decides(events):
    # decide_row with `owned` (decide_batch, rebuild) changes the series dicts it owns in place; over
    # rows of up to three events it must decide what copying decides, event by event, end in equal
    # incidents, and keep their firing count equal to their series' statuses.
    copied: dict = {}
    in_place: dict = {}
    owned: set = set()
    for start in range(0, len(events), 3):
        row = events[start:start + 3]
        a = decide_row(copied, row, group_by=GROUP_BY, reopen_window=WINDOW)
        b = decide_row(in_place, row, group_by=GROUP_BY, reopen_window=WINDOW, owned=owned)
        assert [(fp, d.action, d.reason, d.timeline, d.messages, d.added_series) for _, fp, d in b] == \
            [(fp, d.action, d.reason, d.timeline, d.messages, d.added_series) for _, fp, d in a]
        for event, fp, d in a:
            if d.changed and d.state is not None:
                # The decision says it added a series exactly when the series was seen once.
                assert d.added_series == (d.state.series[event.fingerprint].times_seen == 1)
                copied[fp] = d.state
        for _, fp, d in b:
            if d.changed and d.state is not None:
                in_place[fp] = d.state
                owned.add(fp)
    assert in_place == copied
    for state in in_place.values():
        assert state.series_firing == sum(1 for s in state.series.values() if s.status == "firing")


def test_a_row_decided_in_place_is_undone_whole_when_its_caller_drops_it():
    # simulate decides a row under several rule sets and drops it when any of them fails: what the
    # row changed in the series dicts it owns goes back, new series and changed ones alike.
    states: dict = {}
    owned: set = set()
    for _, fp, d in decide_row(states, [fire("a"), fire("b", at=1)], group_by=GROUP_BY, reopen_window=WINDOW):
        states[fp] = d.state
        owned.add(fp)
    (state,) = states.values()
    before = dict(state.series)
    undo: list = []
    decided = decide_row(states, [res("a", at=5), fire("c", at=6)], group_by=GROUP_BY, reopen_window=WINDOW,
                         owned=owned, undo=undo)
    assert [d.action for _, _, d in decided] == [Action.SERIES_RESOLVED, Action.ADD_SERIES]
    assert set(state.series) == {"a", "b", "c"} and state.series["a"].status == "resolved"  # changed in place
    undo_changes(undo)
    assert state.series == before and state.series["a"] is before["a"]
