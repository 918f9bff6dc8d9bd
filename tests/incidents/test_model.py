"""The model's vocabulary: severities in one order, and enum members that read, serialise and
store as the plain strings the database and the outputs have always carried."""

from __future__ import annotations

import csv
import io
import json

import orjson
import pytest

from incidentctl.incidents.model import (Action, AlertStatus, ChangeKind, IncidentStatus, OutboxState, Resolution,
                                         Severity, TimelineKind, normalize_severity, severity_rank)

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
