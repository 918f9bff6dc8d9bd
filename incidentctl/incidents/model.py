"""The incident model: statuses and severities, an incident and its alert series as plain
dataclasses, the timeline entries and outbox messages a decision writes, the decision itself
(`Action`, `Decision`) and the grouping rules (`Rules`).

`decide` computes decisions over these; `store` loads and writes them; `simulate` and `rebuild`
run them in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Mapping

from incidentctl.config import Settings
from incidentctl.incidents.parsing import FIRING

OPEN, ACKNOWLEDGED, STATUS_RESOLVED = "open", "acknowledged", "resolved"
SYSTEM_ACTOR = "incidentctl"

SEVERITIES = ("none", "info", "warning", "error", "critical")  # lowest → highest
_SEVERITY_ALIASES = {
    "critical": "critical", "crit": "critical", "fatal": "critical", "emergency": "critical", "page": "critical",
    "error": "error", "err": "error", "high": "error", "major": "error",
    "warning": "warning", "warn": "warning", "medium": "warning", "minor": "warning",
    "info": "info", "informational": "info", "low": "info", "notice": "info",
    "none": "none", "": "none",
}
SEVERITY_NAMES = frozenset(name for name in _SEVERITY_ALIASES if name)
UNKNOWN_SEVERITY = "warning"  # a severity we cannot read is worth a look, never a page


def normalize_severity(value: str | None) -> str:
    """The `severity` label → critical | error | warning | info | none (case-insensitive);
    absent → none; an unknown value → warning (documented in ARCHITECTURE.md)."""
    if value is None:
        return "none"
    return _SEVERITY_ALIASES.get(value.strip().lower(), UNKNOWN_SEVERITY)


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


@dataclass
class SeriesState:
    """One alert series (alert fingerprint) inside an incident."""

    fingerprint: str
    status: str  # firing | resolved
    severity: str
    # None when loaded without them (the processor does not read what it will not change);
    # set again whenever an event refreshes the series.
    labels: dict[str, str] | None
    annotations: dict[str, str] | None
    links: dict[str, str] | None
    starts_at: datetime | None
    ends_at: datetime | None
    last_event_at: datetime  # time of the newest event applied; older events never undo it
    first_seen_at: datetime
    last_seen_at: datetime
    times_seen: int = 1

    def copy(self) -> "SeriesState":
        return _shallow(self)


@dataclass
class IncidentState:
    """An incident and its series. `id` is None until the database gives it one."""

    fingerprint: str
    status: str
    title: str
    severity: str
    alertname: str
    cluster: str
    namespace: str
    service: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    opened_at: datetime
    last_alert_at: datetime
    id: int | None = None
    resolution: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    alert_count: int = 0
    reopen_count: int = 0
    series: dict[str, SeriesState] = field(default_factory=dict)

    @property
    def series_firing(self) -> int:
        return sum(1 for s in self.series.values() if s.status == FIRING)

    def copy(self) -> "IncidentState":
        """A copy whose series dict is new; series themselves are shared (copy one before changing it)."""
        return _shallow(self, series=dict(self.series))


@dataclass(frozen=True)
class TimelineEntry:
    """An incident_events row to write."""

    kind: str  # opened | alert_firing | alert_resolved | severity_changed | resolved | reopened | ignored
    at: datetime
    alert_fingerprint: str | None = None
    detail: Mapping | None = None
    actor: str = SYSTEM_ACTOR  # a person's name for their own actions (carried over by `rebuild`)


@dataclass(frozen=True)
class Message:
    """A notifications (outbox) row to write."""

    change: str  # opened | reopened | escalated | resolved
    reason: str
    severity: str
    at: datetime


class Action:
    OPEN = "open"
    REOPEN = "reopen"
    REPEAT = "repeat"
    ADD_SERIES = "add-series"
    REFIRE = "refire"  # a known series fires again (new episode) in an unresolved incident
    SERIES_RESOLVED = "series-resolved"
    AUTO_RESOLVE = "auto-resolve"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    # The incident after the event; when ignored, the incident as it was (None when there is none).
    state: IncidentState | None
    timeline: tuple[TimelineEntry, ...] = ()  # when ignored: its `ignored` entry, if it has an incident
    messages: tuple[Message, ...] = ()

    @property
    def changed(self) -> bool:
        return self.action != Action.IGNORE

    @property
    def labels_changed(self) -> bool:
        """The incident's common labels are new or fewer (they change only on these two)."""
        return self.action in (Action.OPEN, Action.ADD_SERIES)


@dataclass(frozen=True)
class Rules:
    """How alerts group into incidents: the labels of an incident fingerprint, and how long
    after its resolution an incident reopens rather than a new one opening."""

    group_by: tuple[str, ...]
    reopen_window: timedelta

    @classmethod
    def configured(cls, settings: Settings) -> "Rules":
        """The rules `process` applies."""
        return cls(tuple(settings.group_by), timedelta(seconds=settings.reopen_window))


def _shallow(obj, **changes):
    # dataclasses.replace re-runs __init__; this plain copy is what the hot path can afford.
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__, **changes)
    return new
