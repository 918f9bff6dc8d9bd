"""Reminders: an unacknowledged incident's thread is told again, mentioning the route's on-call,
until someone acknowledges it — then, once, the escalation route.

`decide` is pure: (policy, the incident as it stands, what was sent so far, now) → what to send
now and why. The first reminder is due `after` the incident opened, each next one `every` after
the last, at most `most` of them; once they ran out, the escalation (if the route names one) is
due `every` after the last reminder. Acknowledged, resolved, silenced, or of a severity the
policy does not cover: nothing (a reopened incident goes on where its reminders stopped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from incidentctl.config import Settings
from incidentctl.durations import format_duration
from incidentctl.incidents.model import IncidentStatus
from incidentctl.notify.digest import escape, link
from incidentctl.slicing import clip

NONE, REMIND, ESCALATE = "none", "remind", "escalate"


@dataclass(frozen=True)
class ReminderPolicy:
    after: timedelta
    every: timedelta
    most: int
    severities: frozenset[str]

    @classmethod
    def configured(cls, settings: Settings) -> ReminderPolicy:
        return cls(timedelta(seconds=settings.remind_after), timedelta(seconds=settings.remind_every),
                   settings.remind_max, frozenset(settings.remind_severities))


@dataclass(frozen=True)
class Sent:
    """What was sent so far for one incident."""

    count: int = 0
    last_at: datetime | None = None
    escalated_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    action: str  # none | remind | escalate
    reason: str
    due_at: datetime | None = None  # none: when something will be due (None: never)


def decide(policy: ReminderPolicy, *, status: str, severity: str, opened_at: datetime, silenced: bool,
           sent: Sent, can_escalate: bool, now: datetime) -> Decision:
    """What to send now for one incident."""
    if status != IncidentStatus.OPEN:
        return Decision(NONE, f"{status}")
    if severity not in policy.severities:
        return Decision(NONE, f"severity {severity} gets no reminders")
    if silenced:
        return Decision(NONE, "silenced")
    if policy.most <= 0:
        return Decision(NONE, "reminders are off")
    if sent.count < policy.most:
        due = opened_at + policy.after if sent.count == 0 or sent.last_at is None else sent.last_at + policy.every
        if now >= due:
            return Decision(REMIND, f"reminder {sent.count + 1} of {policy.most}")
        return Decision(NONE, f"reminder {sent.count + 1} due later", due)
    if not can_escalate:
        return Decision(NONE, f"{sent.count} reminders sent, no escalation route")
    if sent.escalated_at is not None:
        return Decision(NONE, "escalated already")
    due = (sent.last_at or opened_at) + policy.every
    if now >= due:
        return Decision(ESCALATE, f"not acknowledged after {sent.count} reminders")
    return Decision(NONE, "escalation due later", due)


def reminder_text(handle: str, incident: dict, decision: Decision, now: datetime) -> str:
    """`:alarm_clock: <@U…> #42 HighCPU is not acknowledged, open 15m (reminder 1 of 3)`."""
    who = f"{handle} " if handle else ""
    return clip(f":alarm_clock: {who}*#{incident['id']} {escape(clip(incident['title'], 200))}* is not "
                f"acknowledged, open {format_duration(now - incident['opened_at'])} ({decision.reason})", 3000)


def escalation_text(handle: str, incident: dict, decision: Decision, now: datetime, route: str,
                    permalink: str | None) -> str:
    """The one message to the escalation route's channel."""
    who = f"{handle} " if handle else ""
    where = link(permalink, "announced here")
    tail = f" · {where}" if where else ""
    return clip(f":arrow_double_up: {who}escalated from route `{escape(route)}`: *#{incident['id']} "
                f"{escape(clip(incident['title'], 200))}* {decision.reason}, open "
                f"{format_duration(now - incident['opened_at'])}{tail}", 3000)


def due(decisions: Sequence[tuple[dict, Decision]]) -> list[tuple[dict, Decision]]:
    """The decisions that send something."""
    return [(i, d) for i, d in decisions if d.action != NONE]
