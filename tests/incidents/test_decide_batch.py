"""decide_batch: a batch of raw rows decided in memory (pure), table-driven. Rows are given as
(raw key, events); a poison event (labels that cannot be read) stands for a bug the next payload finds."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import pytest

from incidentctl.incidents.model import Rules
from incidentctl.incidents.parsing import AlertEvent
from incidentctl.incidents.processor import batch_fingerprints, decide_batch

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
RULES = Rules(("alertname", "cluster"), timedelta(minutes=30))


def alert(fp: str, status: str = "firing", at: int = 0, start: int = 0, name: str = "HighCPU") -> AlertEvent:
    """Received `at` minutes after T0, its episode started `start` minutes after T0."""
    when = T0 + timedelta(minutes=at)
    return AlertEvent(fp, status, {"alertname": name, "cluster": "eu"}, {"summary": "hot"}, when,
                      starts_at=T0 + timedelta(minutes=start), ends_at=when if status == "resolved" else None)


POISON = AlertEvent("p", "firing", None, {}, T0)  # type: ignore[arg-type]


class Case(NamedTuple):
    name: str
    rows: list[tuple[int, list[AlertEvent]]]
    counts: dict[str, int]  # the summary's non-zero alert counts
    errors: list[int]  # raw keys of the rows that failed
    timeline: list[tuple[str, int]]  # (kind, raw key) of the timeline entries, in order
    outbox: list[str]  # the outbox changes, in order


CASES = [
    # one alert opens, its repeat (same episode) only counts
    Case("open-then-repeat", [(0, [alert("a")]), (1, [alert("a", at=5)])],
         {"alerts": 2, "opened": 1, "updated": 1}, [], [("opened", 0), ("alert_firing", 0)], ["opened"]),
    # a second series joins the incident; its resolve later resolves nothing while the first fires
    Case("two-series", [(0, [alert("a"), alert("b", at=1, start=1)]), (3, [alert("b", "resolved", at=9)])],
         {"alerts": 3, "opened": 1, "updated": 2}, [],
         [("opened", 0), ("alert_firing", 0), ("alert_firing", 0), ("alert_resolved", 3)], ["opened"]),
    # a poison row changes nothing, not even its good first event; the next row opens as if it were not there
    Case("poison-row-whole", [(0, [alert("a"), POISON]), (1, [alert("a", at=2)])],
         {"alerts": 1, "opened": 1}, [0], [("opened", 1), ("alert_firing", 1)], ["opened"]),
    # the same in an incident an earlier row of the batch changed (its series are changed in place):
    # the new series the poison row brought is taken out again, so the resolve of the first resolves
    Case("poison-row-undone-in-a-changed-incident",
         [(0, [alert("a")]), (1, [alert("b", at=1, start=1), POISON]), (2, [alert("a", "resolved", at=5)])],
         {"alerts": 2, "opened": 1, "resolved": 1}, [1],
         [("opened", 0), ("alert_firing", 0), ("alert_resolved", 2), ("resolved", 2)], ["opened", "resolved"]),
    # and a series the poison row resolved fires on as before: the next firing alert is a repeat
    Case("poison-row-undone-on-a-series",
         [(0, [alert("a")]), (1, [alert("a", "resolved", at=2), POISON]), (2, [alert("a", at=3)])],
         {"alerts": 2, "opened": 1, "updated": 1}, [1], [("opened", 0), ("alert_firing", 0)], ["opened"]),
    # a resolve without an incident is ignored and writes nothing
    Case("resolve-without-incident", [(4, [alert("a", "resolved")])], {"alerts": 1, "ignored": 1}, [], [], []),
    # the incident resolves with its only series; a new episode within the window reopens it
    Case("resolve-then-reopen",
         [(0, [alert("a")]), (1, [alert("a", "resolved", at=5)]), (2, [alert("a", at=10, start=10)])],
         {"alerts": 3, "opened": 1, "resolved": 1, "reopened": 1}, [],
         [("opened", 0), ("alert_firing", 0), ("alert_resolved", 1), ("resolved", 1), ("alert_firing", 2),
          ("reopened", 2)], ["opened", "resolved", "reopened"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide_batch(case: Case):
    states: dict = {}
    decided = decide_batch(states, case.rows, RULES)
    assert {k: v for k, v in decided.summary.as_dict().items() if v} == case.counts
    assert sorted(decided.errors) == case.errors
    assert [(entry.kind, raw_key) for _, entry, raw_key in decided.changes.events] == case.timeline
    assert [message.change for _, message in decided.changes.messages] == case.outbox
    assert states == {}  # the input is not changed


def test_what_it_decides_against_is_not_changed():
    first = decide_batch({}, [(0, [alert("a")])], RULES)
    (state,) = first.changes.incidents.values()
    state.id = 1  # as write_batch gives it
    states = {state.fingerprint: state}
    before = copy.deepcopy(states)
    again = decide_batch(states, [(7, [alert("a", "resolved", at=3)])], RULES)
    assert states == before and again.summary.resolved == 1
    assert [(e.kind, k) for _, e, k in again.changes.events] == [("alert_resolved", 7), ("resolved", 7)]


def test_fingerprints_leave_out_a_row_that_cannot_be_fingerprinted():
    rows = [(0, [alert("a"), POISON]), (1, [alert("b", name="DiskFull")])]
    (fingerprint,) = batch_fingerprints(rows, RULES.group_by)
    assert decide_batch({}, rows, RULES).changes.incidents[-2].fingerprint == fingerprint
