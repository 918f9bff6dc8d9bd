"""The incident model: its vocabulary as `StrEnum`s (statuses, severities, timeline and outbox
kinds, the decision's actions), an incident and its alert series as plain dataclasses, the
incident's transitions (`IncidentState.ack`, `resolve`, `reopen`: what each allows and changes,
written once for the decision, people's commands and `rebuild`), the timeline entries and
outbox messages a decision writes, the decision itself (`Decision`) and the grouping rules
(`Rules`).

A StrEnum member equals, hashes and serialises (json, orjson, csv, SQL parameters) as its
value, so the database keeps the plain strings. Values read back from the database are those
plain strings and are not converted: they compare equal to the members.

`decide` computes decisions over these; `store` loads and writes them; `simulate` and `rebuild`
run them in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from incidentctl.config import Settings
from incidentctl.errors import InvalidTransition

SYSTEM_ACTOR = "incidentctl"


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


UNRESOLVED = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)


class AlertStatus(StrEnum):
    """Of an alert event and of a series."""

    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(StrEnum):
    """Lowest first: the order of the members is the order of severities (`severity_rank`)."""

    NONE = "none"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class Resolution(StrEnum):
    AUTO = "auto"  # all series resolved
    MANUAL = "manual"  # a person resolved it


class TimelineKind(StrEnum):
    """Of an incident_events row."""

    OPENED = "opened"
    ALERT_FIRING = "alert_firing"
    ALERT_RESOLVED = "alert_resolved"
    SEVERITY_CHANGED = "severity_changed"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    NOTE = "note"
    SILENCED = "silenced"  # a person silenced the incident's labels (detail: silence id, until)
    IGNORED = "ignored"  # an event that changed nothing, with why


class Via(StrEnum):
    """The door a person's action came through (in its timeline row's detail)."""

    CLI = "cli"
    SLACK = "slack"
    API = "api"


class ChangeKind(StrEnum):
    """What an outbox row announces (`notifications.change`)."""

    OPENED = "opened"
    REOPENED = "reopened"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    # A person's note: replied in the threads of the Slack app's messages, never in a digest
    # (its row is born THREAD).
    NOTE = "note"


class OutboxState(StrEnum):
    """Of an outbox row: pending until sent, failed for good, or suppressed by a silence; a note
    is `thread` from the start (no digest takes it; only the Slack app's threads hear of it)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    THREAD = "thread"


_SEVERITY_RANK: dict[str, int] = {severity: rank for rank, severity in enumerate(Severity)}
_SEVERITY_ALIASES = {
    "critical": Severity.CRITICAL, "crit": Severity.CRITICAL, "fatal": Severity.CRITICAL,
    "emergency": Severity.CRITICAL, "page": Severity.CRITICAL,
    "error": Severity.ERROR, "err": Severity.ERROR, "high": Severity.ERROR, "major": Severity.ERROR,
    "warning": Severity.WARNING, "warn": Severity.WARNING, "medium": Severity.WARNING, "minor": Severity.WARNING,
    "info": Severity.INFO, "informational": Severity.INFO, "low": Severity.INFO, "notice": Severity.INFO,
    "none": Severity.NONE, "": Severity.NONE,
}
SEVERITY_NAMES = frozenset(name for name in _SEVERITY_ALIASES if name)
UNKNOWN_SEVERITY = Severity.WARNING  # a severity we cannot read is worth a look, never a page


def normalize_severity(value: str | None) -> Severity:
    """The `severity` label → critical | error | warning | info | none (case-insensitive);
    absent → none; an unknown value → warning (docs/SEMANTICS.md, "Severity")."""
    if value is None:
        return Severity.NONE
    return _SEVERITY_ALIASES.get(value.strip().lower(), UNKNOWN_SEVERITY)


def severity_rank(severity: str, unknown: int = 0) -> int:
    """A severity's place in the order, `none` = 0 up to `critical`; `unknown` for any other text."""
    return _SEVERITY_RANK.get(severity, unknown)


@dataclass
class SeriesState:
    """One alert series (alert fingerprint) inside an incident."""

    fingerprint: str
    status: AlertStatus
    severity: Severity
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

    def copy(self) -> SeriesState:
        return _shallow(self)


@dataclass
class IncidentState:
    """An incident and its series. `id` is None until the database gives it one."""

    fingerprint: str
    status: IncidentStatus
    title: str
    severity: Severity
    alertname: str
    cluster: str
    namespace: str
    service: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    opened_at: datetime
    last_alert_at: datetime
    id: int | None = None
    resolution: Resolution | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    alert_count: int = 0
    reopen_count: int = 0
    series: dict[str, SeriesState] = field(default_factory=dict)
    # How many series fire: counted once, then kept by `decide` as it changes a series' status
    # (`count_firing`), so an incident of 20,000 series is not counted again on every resolve.
    # None: not counted yet. Code that gives `series` other statuses sets it back to None.
    firing_count: int | None = field(default=None, compare=False, repr=False)

    @property
    def series_firing(self) -> int:
        if self.firing_count is None:
            self.firing_count = sum(1 for s in self.series.values() if s.status == _FIRING)
        return self.firing_count

    def count_firing(self, was_firing: bool, fires: bool) -> None:
        """A series of this incident went from firing or not to firing or not."""
        if self.firing_count is not None and was_firing != fires:
            self.firing_count += 1 if fires else -1

    def copy(self, *, share_series: bool = False) -> IncidentState:
        """A copy whose series dict is new; series themselves are shared (copy one before changing
        it). With `share_series`, the series dict too (its owner may change it: decide_row's `owned`)."""
        return _shallow(self) if share_series else _shallow(self, series=dict(self.series))

    # The transitions: by people (ack, resolve, reopen) and by the decision (resolve when every
    # series resolved, reopen when one fires again). Each raises InvalidTransition, carrying
    # the status, where it does not apply.

    def ack(self, by: str, at: datetime) -> None:
        """open → acknowledged."""
        self._check("ack", IncidentStatus.OPEN)
        self.status, self.acknowledged_at, self.acknowledged_by = IncidentStatus.ACKNOWLEDGED, at, by

    def resolve(self, by: str, at: datetime, resolution: Resolution) -> None:
        """open | acknowledged → resolved."""
        self._check("resolve", IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)
        self.status, self.resolution, self.resolved_at, self.resolved_by = IncidentStatus.RESOLVED, resolution, at, by

    def reopen(self) -> None:
        """resolved → open: forgets what resolving and acknowledging set (REOPEN_CLEARS) and counts
        the reopen. It stamps no time: the timeline entry says when."""
        self._check("reopen", IncidentStatus.RESOLVED)
        self.status = IncidentStatus.OPEN
        for name in REOPEN_CLEARS:
            setattr(self, name, None)
        self.reopen_count += 1

    def _check(self, verb: str, *allowed: IncidentStatus) -> None:
        if self.status not in allowed:
            raise InvalidTransition(f"incident {self.id} is {self.status}: cannot {verb} it", status=self.status)


# What a reopened incident forgets: every field acknowledging or resolving set, but the status.
REOPEN_CLEARS = ("resolution", "resolved_at", "resolved_by", "acknowledged_at", "acknowledged_by")


@dataclass(frozen=True)
class TimelineEntry:
    """An incident_events row to write."""

    kind: TimelineKind
    at: datetime
    alert_fingerprint: str | None = None
    detail: Mapping | None = None
    actor: str = SYSTEM_ACTOR  # a person's name for their own actions (carried over by `rebuild`)


@dataclass(frozen=True)
class Message:
    """A notifications (outbox) row to write."""

    change: ChangeKind
    reason: str
    severity: Severity
    at: datetime


class Action(StrEnum):
    """What a decision does to the incident."""

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
    action: Action
    reason: str
    # The incident after the event; when ignored, the incident as it was (None when there is none).
    state: IncidentState | None
    timeline: tuple[TimelineEntry, ...] = ()  # when ignored: its `ignored` entry, if it has an incident
    messages: tuple[Message, ...] = ()
    added_series: bool = False  # the event's series is new to the incident (its labels get indexed)

    @property
    def changed(self) -> bool:
        return self.action != _IGNORE


@dataclass(frozen=True)
class Rules:
    """How alerts group into incidents: the labels of an incident fingerprint, and how long
    after its resolution an incident reopens rather than a new one opening."""

    group_by: tuple[str, ...]
    reopen_window: timedelta

    @classmethod
    def configured(cls, settings: Settings) -> Rules:
        """The rules `process` applies."""
        return cls(tuple(settings.group_by), timedelta(seconds=settings.reopen_window))


# Read per event (see decide.py: a member read from its class is slow on Python 3.11).
_FIRING, _IGNORE = AlertStatus.FIRING, Action.IGNORE


def _shallow(obj, **changes):
    # dataclasses.replace re-runs __init__; this plain copy is what the hot path can afford.
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__, **changes)
    return new
