"""What Slack would have heard: keep-firing windows and notify rules over an incident's changes.
Pure, table-driven."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from incidentctl.history.announce import IncidentHistory, NotifyRules, delays, heard, keep_firing
from incidentctl.history.recurrence import parse_window
from incidentctl.notify.routes import Route
from incidentctl.notify.thresholds import ChangeRecord, Threshold

T = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
M = timedelta(minutes=1)


def c(n, change, minute, severity="warning"):
    return ChangeRecord(n, change, T + minute * M, severity)


FLAPPING = [c(1, "opened", 0), c(2, "resolved", 10), c(3, "reopened", 13), c(4, "resolved", 30),
            c(5, "reopened", 50), c(6, "resolved", 60)]


@pytest.mark.parametrize("window, kept, dropped", [
    # 5m: the 3-minute gap closes (resolve + reopen go); the 20-minute one stays; resolves come 5m later
    (5 * M, [(1, 0), (4, 35), (5, 50), (6, 65)], 2),
    # 30m: every gap closes; only the last resolve is left, 30m later
    (30 * M, [(1, 0), (6, 90)], 4),
    # 1m: nothing closes; each resolve comes a minute later
    (M, [(1, 0), (2, 11), (3, 13), (4, 31), (5, 50), (6, 61)], 0),
])
def test_keep_firing(window, kept, dropped):
    changes, taken = keep_firing(FLAPPING, window)
    assert [(x.id, int((x.at - T) / M)) for x in changes] == kept and taken == dropped


def history(changes, labels=None, silenced=()):
    return IncidentHistory(("fp", T), "Disk", labels or {"alertname": "Disk"}, tuple(changes), (), frozenset(silenced))


ONE = [c(1, "opened", 0), c(2, "escalated", 2, "critical"), c(3, "resolved", 8, "critical")]


@pytest.mark.parametrize("rules, changes, silenced, expected", [
    # no rules: everything announced, the first page at the opening
    (NotifyRules(), ONE, (), {"pages": 1, "changes": 3, "first": 0}),
    # a stored silence took the opening: the escalation still goes out, first news at 2m
    (NotifyRules(), ONE, (1,), {"pages": 0, "changes": 2, "silenced": 1, "first": 2}),
    # the rule's threshold of 10m: it resolved at 8 — never announced
    (NotifyRules(threshold=Threshold(after=10 * M)), ONE, (), {"pages": 0, "below_threshold": 3, "first": None}),
    # 5m: announced at 5
    (NotifyRules(threshold=Threshold(after=5 * M)), ONE, (), {"pages": 1, "changes": 3, "first": 5}),
    # a route's threshold applies where the change is routed: critical changes go to oncall (none)
    (NotifyRules((Route("oncall", "", frozenset({"critical"})),
                  Route("default", "", threshold=Threshold(after=30 * M)))), ONE, (),
     {"pages": 0, "changes": 2, "below_threshold": 1, "first": 2}),
    # a change that matches no route (no default) is held
    (NotifyRules((Route("oncall", "", frozenset({"critical"})),)), ONE, (), {"changes": 2, "held": 1, "first": 2}),
    # a recurring silence over 10:00–11:00 takes everything
    (NotifyRules(silence=parse_window("daily 10:00-11:00")), ONE, (), {"silenced": 3, "first": None}),
    # the flaps under a 5m keep-firing window: two reopens of three pages
    (NotifyRules(keep_firing=5 * M), FLAPPING, (), {"pages": 2, "changes": 4, "kept_firing": 2, "first": 0}),
])
def test_heard(rules, changes, silenced, expected):
    result = heard(history(changes, silenced=silenced), rules, T + timedelta(hours=2))
    first = expected.pop("first")
    assert result.first_page_at == (None if first is None else T + first * M)
    figures = {"pages": 0, "changes": 0, "below_threshold": 0, "silenced": 0, "kept_firing": 0, "held": 0, **expected}
    assert {k: getattr(result, k) for k in figures} == figures


def test_an_open_incident_below_the_threshold_is_held_at_the_end():
    result = heard(history([c(1, "opened", 0)]), NotifyRules(threshold=Threshold(after=10 * M)), T + 5 * M)
    assert (result.pages, result.held) == (0, 1)


def test_delays():
    before = {("a", T): T, ("b", T): T, ("c", T): T, ("d", T): None}
    after = {("a", T): T + 3 * M, ("b", T): T + 5 * M, ("c", T): None}
    assert delays(before, after) == {"incidents": 3, "delayed": 2, "median_delay_s": 240.0, "never_announced": 1}
