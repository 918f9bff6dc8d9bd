"""Reminders: the pure decision on a virtual clock (table-driven), then the whole loop against
the fake Web API on both databases — first after N, repeats, stop on ack, escalation after K."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

import pytest

from incidentctl.config import load_settings
from incidentctl.incidents.actions import transition
from incidentctl.notify.delivery import notify_pending
from incidentctl.notify.reminders import ESCALATE, NONE, REMIND, ReminderPolicy, Sent, decide
from incidentctl.notify.silences import Matcher, add_silence
from tests.support import T0
from tests.support.factories import add_incidents_with_changes, outbox_rows
from tests.support.slack_web_fake import TOKEN

POLICY = ReminderPolicy(after=timedelta(minutes=15), every=timedelta(minutes=10), most=3,
                        severities=frozenset({"critical"}))
M = timedelta(minutes=1)


class Case(NamedTuple):
    minutes: float  # now, minutes after the incident opened
    sent: Sent
    expected: str
    status: str = "open"
    severity: str = "critical"
    silenced: bool = False
    can_escalate: bool = True


def at(minutes: float):
    return T0 + minutes * M


CASES = {
    "too early for the first": Case(14.9, Sent(), NONE),
    "first after N": Case(15, Sent(), REMIND),
    "second not yet (M after the first)": Case(24, Sent(1, at(15)), NONE),
    "second after M": Case(25, Sent(1, at(15)), REMIND),
    "a late run sends one, not the missed ones": Case(90, Sent(1, at(15)), REMIND),
    "third": Case(35, Sent(2, at(25)), REMIND),
    "after K, escalation waits M": Case(44, Sent(3, at(35)), NONE),
    "escalation after K": Case(45, Sent(3, at(35)), ESCALATE),
    "escalated once only": Case(60, Sent(3, at(35), at(45)), NONE),
    "after K without an escalation route: nothing": Case(45, Sent(3, at(35)), NONE, can_escalate=False),
    "acknowledged stops them": Case(25, Sent(1, at(15)), NONE, status="acknowledged"),
    "resolved stops them": Case(25, Sent(1, at(15)), NONE, status="resolved"),
    "silenced gets none": Case(15, Sent(), NONE, silenced=True),
    "other severities get none": Case(15, Sent(), NONE, severity="warning"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decide(case):
    decision = decide(POLICY, status=case.status, severity=case.severity, opened_at=T0, silenced=case.silenced,
                      sent=case.sent, can_escalate=case.can_escalate, now=at(case.minutes))
    assert decision.action == case.expected, decision.reason


def test_reminders_off():
    off = ReminderPolicy(POLICY.after, POLICY.every, 0, POLICY.severities)
    assert decide(off, status="open", severity="critical", opened_at=T0, silenced=False, sent=Sent(),
                  can_escalate=True, now=at(600)).action == NONE


def test_the_reason_says_which_reminder_and_when_the_next_is_due():
    first = decide(POLICY, status="open", severity="critical", opened_at=T0, silenced=False, sent=Sent(),
                   can_escalate=True, now=at(15))
    waiting = decide(POLICY, status="open", severity="critical", opened_at=T0, silenced=False,
                     sent=Sent(1, at(15)), can_escalate=True, now=at(16))
    assert first.reason == "reminder 1 of 3" and waiting.due_at == at(25)


# -- the loop through notify and the fake -------------------------------------------------------

CHANNEL, ESCALATION = "C0ALERTS", "C0OPS"
CONFIG = f"""
[[routes]]
name = "managers"
channel = "{ESCALATION}"
oncall = "<!subteam^S0MANAGERS>"
severity = ["none"]
"""


@pytest.fixture
def fake(slack_web):
    slack_web[0].reset()
    return slack_web[0]


@pytest.fixture
def settings(fake, tmp_path):
    path = tmp_path / "incidentctl.toml"
    path.write_text(CONFIG)
    return load_settings(environ={
        "SLACK_BOT_TOKEN": TOKEN, "SLACK_CHANNEL": CHANNEL, "SLACK_ONCALL": "<@U0ONCALL>",
        "INCIDENTCTL_ESCALATE_TO": "managers", "INCIDENTCTL_SLACK_API_URL": fake.api_url,
        "INCIDENTCTL_REMIND_AFTER": "15m", "INCIDENTCTL_REMIND_EVERY": "10m", "INCIDENTCTL_REMIND_MAX": "2",
    }, config_file=path)


def run_at(engine, settings, api, minutes):
    """notify at `minutes` after the incidents opened."""
    return notify_pending(engine, settings, None, clock=lambda: at(minutes), api=api)


def reminders_in(fake, ts):
    return [m.text for m in fake.thread(CHANNEL, ts) if m.text.startswith(":alarm_clock:")]


def test_reminders_repeat_then_escalate_once(engine, fake, api, settings):
    add_incidents_with_changes(engine, 1, created_at=at(5))  # opened at T0 (5 minutes before its change)
    run_at(engine, settings, api, 5)
    (message,) = [m for m in fake.messages.values() if m.channel == CHANNEL]

    sent = [run_at(engine, settings, api, minutes).slack["reminders"] for minutes in (14, 15, 16, 25, 30)]
    escalated = [run_at(engine, settings, api, minutes).slack["escalations"] for minutes in (34, 35, 36, 90)]

    assert sent == [0, 1, 0, 1, 0]  # first after 15m, the second 10m later, at most 2
    texts = reminders_in(fake, message.ts)
    assert len(texts) == 2 and all(t.startswith(":alarm_clock: <@U0ONCALL> ") for t in texts)
    assert "reminder 1 of 2" in texts[0] and "reminder 2 of 2" in texts[1]
    assert escalated == [0, 1, 0, 0]
    (up,) = [m for m in fake.messages.values() if m.channel == ESCALATION]
    assert up.text.startswith(":arrow_double_up: <!subteam^S0MANAGERS> escalated from route `default`")
    assert "announced here" in up.text


def test_an_ack_stops_the_reminders_and_a_silence_prevents_them(engine, fake, api, settings):
    changes = add_incidents_with_changes(engine, 2, created_at=at(5))
    acked, silenced = (outbox_rows(engine)[c]["incident_id"] for c in changes)
    run_at(engine, settings, api, 5)
    (message,) = [m for m in fake.messages.values() if m.channel == CHANNEL]
    assert run_at(engine, settings, api, 15).slack["reminders"] == 2
    transition(engine, "ack", acked, by="ivy", note=None, now=at(16))
    assert run_at(engine, settings, api, 25).slack["reminders"] == 1  # the other one's second; none for the acked
    add_silence(engine, [Matcher("alertname", "HighCPU")], starts_at=at(26), ends_at=at(120), created_by="ivy",
                comment="maintenance", now=at(26))

    later = [run_at(engine, settings, api, minutes) for minutes in (35, 45, 60)]

    assert [s.slack["reminders"] + s.slack["escalations"] for s in later] == [0, 0, 0]
    texts = reminders_in(fake, message.ts)
    assert len(texts) == 3 and not any(f"#{acked} " in t for t in texts[2:])
