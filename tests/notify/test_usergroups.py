"""Slack user groups in the allow-list: members looked up with usergroups.users.list against the
fake Web API, kept for a bounded time, and any failure a refusal with its reason, never an allow."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from incidentctl.config import load_settings
from incidentctl.incidents.model import Via
from incidentctl.ingest.inbox import ActionKind
from incidentctl.notify.intent import AllowList, Intent, MembershipUnknown, refusal
from incidentctl.notify.slack_api import SlackApi
from incidentctl.notify.usergroups import UserGroups
from tests.support.slack_web_fake import TOKEN

T = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def fake(slack_web):
    fake, _ = slack_web
    fake.reset()
    fake.usergroups["S0ONCALL"] = ["U0ALICE", "W0BOB"]
    return fake


@pytest.fixture
def groups(slack_web):
    fake, clock = slack_web
    with requests.Session() as session:
        api = SlackApi(session, TOKEN, base_url=fake.api_url, clock=clock, sleep=clock.advance, timeout=5)
        yield UserGroups(api, ttl=300, clock=clock)


def click(user: str) -> Intent:
    return Intent(kind=ActionKind.ACK, incident_id=1, by=user, via=Via.SLACK, at=T, slack_user=user,
                  slack_channel="C0ALERTS")


def test_members_are_asked_of_slack_once_and_kept_for_the_ttl(fake, groups, slack_web):
    clock = slack_web[1]
    assert groups.members("S0ONCALL") == {"U0ALICE", "W0BOB"}
    fake.usergroups["S0ONCALL"] = ["U0CAROL"]  # changed in Slack meanwhile
    clock.advance(299)
    assert groups.members("S0ONCALL") == {"U0ALICE", "W0BOB"}
    assert len(fake.calls_to("usergroups.users.list")) == 1
    clock.advance(1)
    assert groups.members("S0ONCALL") == {"U0CAROL"}
    assert len(fake.calls_to("usergroups.users.list")) == 2


@pytest.mark.parametrize("break_it, reason", [
    (lambda fake: fake.scopes.discard("usergroups:read"), "Slack says missing_scope (the app needs usergroups:read"),
    (lambda fake: fake.usergroups.clear(), "Slack says no_such_subteam"),
    (lambda fake: fake.revoke(TOKEN), "Slack says token_revoked"),
    (lambda fake: fake.fail("usergroups.users.list", "service_unavailable"), "Slack did not answer (retryable"),
    (lambda fake: fake.fail("usergroups.users.list", "internal_error"), "Slack did not answer (unknown"),
])
def test_any_failure_is_membership_unknown_with_why_and_is_not_kept(fake, groups, break_it, reason):
    break_it(fake)
    with pytest.raises(MembershipUnknown) as raised:
        groups.members("S0ONCALL")
    assert raised.value.reason.startswith(reason)
    fake.reset()
    fake.usergroups["S0ONCALL"] = ["U0ALICE"]
    assert groups.members("S0ONCALL") == {"U0ALICE"}  # the failure was not kept: asked again


def test_without_a_bot_token_a_group_cannot_be_looked_up():
    with pytest.raises(MembershipUnknown, match="no SLACK_BOT_TOKEN"):
        UserGroups(None).members("S0ONCALL")


def test_the_setting_takes_user_and_group_ids_apart():
    allow = AllowList.configured(load_settings(environ={"INCIDENTCTL_SLACK_ALLOWED_USERS": "U0ALICE, S0ONCALL"}))
    assert (allow.slack_users, allow.slack_groups) == ({"U0ALICE"}, {"S0ONCALL"})


GROUP = AllowList(slack_groups=frozenset({"S0ONCALL", "S0SRE"}))


def members(table):
    def look_up(group):
        found = table[group]
        if isinstance(found, str):
            raise MembershipUnknown(found)
        return frozenset(found)
    return look_up


@pytest.mark.parametrize("allow, user, table, refused", [
    # listed by id: no lookup needed
    (AllowList(slack_users=frozenset({"U0ALICE"}), slack_groups=frozenset({"S0SRE"})), "U0ALICE", {}, None),
    # in a group
    (GROUP, "U0ALICE", {"S0ONCALL": {"U0ALICE"}, "S0SRE": set()}, None),
    # in no group
    (GROUP, "U0EVE", {"S0ONCALL": {"U0ALICE"}, "S0SRE": set()},
     "you are not allowed to act on incidents from Slack (INCIDENTCTL_SLACK_ALLOWED_USERS)"),
    # one group cannot be looked up, the person is in the other: allowed
    (GROUP, "U0ALICE", {"S0ONCALL": "Slack says missing_scope", "S0SRE": {"U0ALICE"}}, None),
    # one group cannot be looked up and the person is in neither: refused, saying why
    (GROUP, "U0EVE", {"S0ONCALL": "Slack says missing_scope", "S0SRE": set()},
     "you are not allowed to act on incidents from Slack (INCIDENTCTL_SLACK_ALLOWED_USERS): could not check "
     "Slack user group S0ONCALL: Slack says missing_scope"),
])
def test_refusal_by_groups(allow, user, table, refused):
    assert refusal(click(user), allow, members(table)) == refused


def test_a_group_and_no_way_to_look_it_up_refuses():
    assert "could not check Slack user group S0ONCALL: no Slack bot token" in refusal(
        click("U0ALICE"), AllowList(slack_groups=frozenset({"S0ONCALL"})))


# Through the applier, on both databases: a click by a member applies, a failed lookup refuses and tells.

SECRET = "test-signing-secret"


def test_the_applier_allows_a_groups_member_and_refuses_when_slack_cannot_say(engine, fake, groups, slack_web):
    from sqlalchemy import select

    from incidentctl.db.schema import incidents
    from incidentctl.notify.applier import apply_pending
    from tests.support import T0
    from tests.support.asgi import call
    from tests.support.factories import add_incident
    from tests.support.inbox import clicking_receiver, inbox
    from tests.support.slack_web_fake import SlackInteractions

    allow = AllowList(slack_groups=frozenset({"S0ONCALL"}))
    first, second = add_incident(engine), add_incident(engine)
    clicks = SlackInteractions(SECRET, clock=lambda: T0.timestamp())
    with clicking_receiver(engine, SECRET) as receiver, requests.Session() as session:
        def click_and_apply(incident_id):
            request = clicks.raw(f"ic1:ack:{incident_id}", f"ic1:ack:{incident_id}",
                                 response_url=fake.response_url("C0ALERTS", "1700000000.000100"))
            assert call(receiver, "POST", "/slack/actions", request.body, request.headers).status == 200
            return apply_pending(engine, allow=allow, session=session, clock=lambda: T0, groups=groups)

        assert click_and_apply(first).applied == 1  # alice (U0ALICE) is in S0ONCALL
        slack_web[1].advance(300)  # the members kept run out
        fake.scopes.discard("usergroups:read")
        assert click_and_apply(second).refused == 1

    with engine.connect() as conn:
        status = dict(conn.execute(select(incidents.c.id, incidents.c.status)).all())
    assert (status[first], status[second]) == ("acknowledged", "open")
    refused = inbox(engine)[1]
    assert refused["state"] == "refused" and "S0ONCALL: Slack says missing_scope" in refused["reason"]
    (told,) = fake.ephemeral
    assert "Not done" in told["body"]["text"] and "missing_scope" in told["body"]["text"]
