"""The model: its vocabulary (severities in one order; enum members that read, serialise and
store as the plain strings the database and the outputs have always carried) and the
incident's transitions, table-driven over every status."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import orjson
import pytest

from incidentctl.errors import InvalidTransition
from incidentctl.incidents.model import (
    REOPEN_CLEARS,
    SYSTEM_ACTOR,
    Action,
    AlertStatus,
    ChangeKind,
    IncidentState,
    IncidentStatus,
    OutboxState,
    Resolution,
    Severity,
    TimelineKind,
    normalize_severity,
    severity_rank,
)

MEMBERS = [m for enum in (IncidentStatus, AlertStatus, Severity, Resolution, TimelineKind, ChangeKind, OutboxState,
                          Action) for m in enum]


@pytest.mark.parametrize("severity, rank", [
    ("none", 0), ("info", 1), ("warning", 2), ("error", 3), ("critical", 4),
    ("P2", 0),  # not a severity: with none (a stored value is always normalised)
])
def test_severity_rank(severity, rank):
    assert severity_rank(severity) == rank


def test_severity_rank_of_unknown_text_can_be_chosen():
    assert severity_rank("P2", unknown=-1) == -1 and severity_rank(Severity.NONE, unknown=-1) == 0


def test_every_alias_normalises_to_a_member():
    for label in ("CRITICAL", "page", "err", "major", "warn", "minor", "informational", "notice", "", "P2"):
        assert type(normalize_severity(label)) is Severity


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: f"{type(m).__name__}.{m.name}")
def test_a_member_reads_and_serialises_as_its_value(member):
    assert member == member.value and hash(member) == hash(member.value)
    assert f"{member}" == str(member) == member.value
    assert json.dumps({"k": member}) == json.dumps({"k": member.value})
    assert orjson.dumps(member) == orjson.dumps(member.value)
    out = io.StringIO()
    csv.writer(out).writerow([member])
    assert out.getvalue().strip() == member.value


# The transitions, every status × every transition.

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
LATER = T0 + timedelta(minutes=30)


def incident(status: IncidentStatus) -> IncidentState:
    """An incident in `status`, with what reaching that status set."""
    state = IncidentState(fingerprint="f1", status=IncidentStatus.OPEN, title="Disk", severity=Severity.WARNING,
                          alertname="Disk", cluster="eu1", namespace="db", service="pg", group_labels={},
                          common_labels={"alertname": "Disk"}, opened_at=T0, last_alert_at=T0, id=7, alert_count=3)
    if status == IncidentStatus.ACKNOWLEDGED:
        state.ack("alice", T0 + timedelta(minutes=1))
    elif status == IncidentStatus.RESOLVED:
        state.ack("alice", T0 + timedelta(minutes=1))
        state.resolve("bob", T0 + timedelta(minutes=2), Resolution.MANUAL)
    return state


def values(state: IncidentState) -> dict:
    return {f.name: getattr(state, f.name) for f in fields(state)}


class Case(NamedTuple):
    status: IncidentStatus
    transition: str
    apply: Callable[[IncidentState], None]
    after: dict | None  # the fields that change; None: refused with InvalidTransition


ACK = lambda s: s.ack("carol", LATER)  # noqa: E731
RESOLVE = lambda s: s.resolve("carol", LATER, Resolution.MANUAL)  # noqa: E731
AUTO_RESOLVE = lambda s: s.resolve(SYSTEM_ACTOR, LATER, Resolution.AUTO)  # noqa: E731
REOPEN = lambda s: s.reopen()  # noqa: E731
CLEARED = dict.fromkeys(REOPEN_CLEARS)

CASES = [
    # open: acknowledged by a person
    Case(IncidentStatus.OPEN, "ack", ACK,
         {"status": "acknowledged", "acknowledged_at": LATER, "acknowledged_by": "carol"}),
    # open: resolved by a person
    Case(IncidentStatus.OPEN, "resolve", RESOLVE,
         {"status": "resolved", "resolution": "manual", "resolved_at": LATER, "resolved_by": "carol"}),
    # open: every series resolved
    Case(IncidentStatus.OPEN, "resolve", AUTO_RESOLVE,
         {"status": "resolved", "resolution": "auto", "resolved_at": LATER, "resolved_by": SYSTEM_ACTOR}),
    # open: nothing to reopen
    Case(IncidentStatus.OPEN, "reopen", REOPEN, None),
    # acknowledged twice: the first ack stands
    Case(IncidentStatus.ACKNOWLEDGED, "ack", ACK, None),
    # acknowledged, then resolved by a person: the ack is kept on the resolved incident
    Case(IncidentStatus.ACKNOWLEDGED, "resolve", RESOLVE,
         {"status": "resolved", "resolution": "manual", "resolved_at": LATER, "resolved_by": "carol"}),
    # acknowledged, then its series all resolved
    Case(IncidentStatus.ACKNOWLEDGED, "resolve", AUTO_RESOLVE,
         {"status": "resolved", "resolution": "auto", "resolved_at": LATER, "resolved_by": SYSTEM_ACTOR}),
    # acknowledged: nothing to reopen
    Case(IncidentStatus.ACKNOWLEDGED, "reopen", REOPEN, None),
    # resolved: too late to acknowledge
    Case(IncidentStatus.RESOLVED, "ack", ACK, None),
    # resolved twice, by a person or by its series
    Case(IncidentStatus.RESOLVED, "resolve", RESOLVE, None),
    Case(IncidentStatus.RESOLVED, "resolve", AUTO_RESOLVE, None),
    # resolved, reopened: open again, resolution and ack forgotten, one more reopen
    Case(IncidentStatus.RESOLVED, "reopen", REOPEN, {"status": "open", **CLEARED, "reopen_count": 1}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.status}-{c.transition}-{c.apply is AUTO_RESOLVE}")
def test_transition(case):
    state = incident(case.status)
    before = values(state)
    if case.after is None:
        with pytest.raises(InvalidTransition) as refused:
            case.apply(state)
        assert refused.value.status == case.status
        assert str(refused.value) == f"incident 7 is {case.status.value}: cannot {case.transition} it"
        assert values(state) == before  # refused: nothing changed
        return
    case.apply(state)
    after = values(state)
    assert {name: after[name] for name in after if after[name] != before[name]} == case.after


def test_every_status_meets_every_transition():
    assert {(c.status, c.transition) for c in CASES} == {(s, t) for s in IncidentStatus
                                                         for t in ("ack", "resolve", "reopen")}


def test_reopen_forgets_whatever_ack_and_resolve_set():
    # A field that acknowledging or resolving sets is one that reopening clears, in one place
    # (REOPEN_CLEARS): a new field set by a transition fails here until reopen forgets it too.
    fresh = incident(IncidentStatus.OPEN)
    state = incident(IncidentStatus.RESOLVED)
    set_by_transitions = {name for name, value in values(state).items() if value != values(fresh)[name]}
    assert set_by_transitions - {"status"} == set(REOPEN_CLEARS)
    state.reopen()
    assert {name: value for name, value in values(state).items() if value != values(fresh)[name]} == {
        "reopen_count": 1}
