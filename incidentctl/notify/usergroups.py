"""Slack user groups in the allow-list: who is in a group (usergroups.users.list with the bot
token, scope usergroups:read), kept for a bounded time.

`UserGroups.members(group)` answers from what it kept while that is younger than `ttl` (someone
taken out of the group may act that much longer), else asks Slack. Whatever goes wrong — no bot
token, Slack's error (`missing_scope`, `no_such_subteam`, a revoked token), no answer, a rate
limit — raises intent.MembershipUnknown with a reason a person can read: the action is then
refused, never allowed, and nothing is kept, so the next click asks again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from incidentctl.notify.intent import MembershipUnknown
from incidentctl.notify.slack_api import Permanent, SlackApi, SlackApiError


class UserGroups:
    """The members of Slack user groups, looked up with `api` and kept `ttl` seconds of `clock`."""

    def __init__(self, api: SlackApi | None, *, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.api, self.ttl, self.clock = api, ttl, clock
        self._kept: dict[str, tuple[float, frozenset[str]]] = {}

    def members(self, group: str) -> frozenset[str]:
        """The user ids in `group`; raises MembershipUnknown."""
        now = self.clock()
        kept = self._kept.get(group)
        if kept is not None and now - kept[0] < self.ttl:
            return kept[1]
        if self.api is None:
            raise MembershipUnknown("no SLACK_BOT_TOKEN to look it up with")
        try:
            users = frozenset(self.api.usergroup_members(group))
        except SlackApiError as exc:
            raise MembershipUnknown(_why(exc)) from None
        self._kept[group] = (now, users)
        return users


def _why(exc: SlackApiError) -> str:
    if exc.error == "missing_scope":
        return "Slack says missing_scope (the app needs usergroups:read: update it from `incidentctl slack manifest`)"
    if exc.error == "no_such_subteam":
        return "Slack says no_such_subteam (no user group has this id)"
    if isinstance(exc, Permanent):
        return f"Slack says {exc.error}"
    return f"Slack did not answer ({exc.outcome}: {exc.error})"
