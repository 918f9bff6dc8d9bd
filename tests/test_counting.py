"""Counts: the int fields are the counters; others ride along, neither added nor listed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from incidentctl.counting import Counts


@dataclass
class _Run(Counts):
    sent: int = 0
    failed: int = 0
    last_at: datetime | None = None
    errors: list[str] = field(default_factory=list)


def test_add_sums_the_counters_only():
    total = _Run(sent=1, last_at=datetime(2026, 1, 1), errors=["x"])
    total.add(_Run(sent=2, failed=3, last_at=datetime(2026, 2, 1), errors=["y"]))
    assert total == _Run(sent=3, failed=3, last_at=datetime(2026, 1, 1), errors=["x"])


def test_as_dict_lists_the_counters_in_field_order():
    assert _Run(sent=4, failed=1, errors=["x"]).as_dict() == {"sent": 4, "failed": 1}
    assert list(_Run().as_dict()) == ["sent", "failed"]
