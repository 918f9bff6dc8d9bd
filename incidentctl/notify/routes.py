"""Routes: which Slack webhook hears about which change.

`SLACK_WEBHOOK_URL` is the `default` route. The config file may add routes, tried in order; the
first whose conditions all hold takes the change, else the default route does:

    [[routes]]
    name = "oncall"
    webhook_url = "https://hooks.slack.com/services/T000/B000/XXXX"
    severity = ["critical"]             # optional: any of these severities
    match = { cluster = "prod-eu" }     # optional: every label equal
    channel = "C0123ABCD"               # the channel ID the Slack app's bot posts to (with
                                        # SLACK_BOT_TOKEN; then webhook_url may be left out)
    oncall = "<!subteam^S0123ABCD>"     # optional: who reminders mention (<@U…> or <!subteam^S…>)
    escalate_to = "managers"            # optional: the route told once when reminders ran out
    notify_after = "5m"                 # optional thresholds (notify/thresholds.py): announce an
    notify_min_alerts = 3               # incident once any one is reached
    notify_min_severity = "critical"

`SLACK_CHANNEL` is the default route's channel (with a bot token, `SLACK_CHANNEL` alone makes the
default route); its thresholds, on-call handle and escalation are settings (SLACK_ONCALL, …).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from incidentctl.config import Settings, slack_channel_id, slack_handle
from incidentctl.errors import ConfigError
from incidentctl.notify.slack import mask_url
from incidentctl.notify.thresholds import KEYS as THRESHOLD_KEYS
from incidentctl.notify.thresholds import Threshold, threshold_settings

DEFAULT_ROUTE = "default"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Route:
    name: str
    webhook_url: str = field(repr=False)
    severities: frozenset[str] = frozenset()  # empty: any
    match: Mapping[str, str] = field(default_factory=dict)  # empty: any
    channel: str = ""  # Slack channel ID for the app's bot; empty: none
    threshold: Threshold | None = None  # announce an incident only once it reached this
    oncall: str = ""  # the handle reminders mention; empty: none
    escalate_to: str = ""  # the route told once when reminders ran out; empty: none

    def accepts(self, severity: str, labels: Mapping[str, Any]) -> bool:
        if self.severities and severity not in self.severities:
            return False
        return all(str(labels.get(k, "")) == v for k, v in self.match.items())

    def describe(self) -> dict:
        """The route for people: webhook masked."""
        described = {"name": self.name, "webhook": mask_url(self.webhook_url), "severity": sorted(self.severities),
                     "match": dict(self.match)}
        if self.channel:
            described["channel"] = self.channel
        if self.threshold:
            described["threshold"] = self.threshold.describe()
        return described


def load_routes(settings: Settings) -> list[Route]:
    """The configured routes, extra ones first, the default last. Raises ConfigError."""
    raw = settings.extra.get("routes", [])
    if not isinstance(raw, list):
        raise ConfigError("config file: `routes` must be an array of tables ([[routes]])")
    routes = [_route(i, r) for i, r in enumerate(raw)]
    names = [r.name for r in routes]
    if len(set(names)) != len(names) or DEFAULT_ROUTE in names:
        raise ConfigError(f"config file: route names must be unique and not {DEFAULT_ROUTE!r}: {names}")
    if settings.slack_webhook_url or (settings.slack_bot_token and settings.slack_channel):
        routes.append(Route(DEFAULT_ROUTE, settings.slack_webhook_url, channel=settings.slack_channel,
                            threshold=default_threshold(settings), oncall=settings.slack_oncall,
                            escalate_to=settings.escalate_to))
    known = {r.name for r in routes}
    for r in routes:
        if r.escalate_to and (r.escalate_to not in known or r.escalate_to == r.name):
            raise ConfigError(f"route {r.name}: `escalate_to` names no other route: {r.escalate_to!r}")
    return routes


def _route(i: int, raw: Any) -> Route:
    where = f"config file: routes[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(raw) - {"name", "webhook_url", "severity", "match", "channel", "oncall", "escalate_to",
                          *THRESHOLD_KEYS}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name, url = raw.get("name", ""), raw.get("webhook_url", "")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: `name` must be 1-64 letters, digits, `_.-`")
    if not isinstance(url, str) or (url and not url.startswith(("https://", "http://"))):
        raise ConfigError(f"{where} ({name}): `webhook_url` must be an http(s) URL")
    severity = raw.get("severity", [])
    if isinstance(severity, str):
        severity = [severity]
    match = raw.get("match", {})
    if not isinstance(severity, list) or not isinstance(match, dict):
        raise ConfigError(f"{where} ({name}): `severity` is a list, `match` a table")
    channel = raw.get("channel", "")
    try:
        channel = slack_channel_id(channel) if isinstance(channel, str) else None
    except ValueError as exc:
        raise ConfigError(f"{where} ({name}): `channel`: {exc}") from None
    if channel is None:
        raise ConfigError(f"{where} ({name}): `channel` must be a string, a Slack channel ID like C0123ABCD")
    if not url and not channel:
        raise ConfigError(f"{where} ({name}): needs a `webhook_url`, or a `channel` for the Slack app's bot")
    oncall, escalate_to = raw.get("oncall", ""), raw.get("escalate_to", "")
    try:
        oncall = slack_handle(oncall) if isinstance(oncall, str) else None
    except ValueError as exc:
        raise ConfigError(f"{where} ({name}): `oncall`: {exc}") from None
    if oncall is None or not isinstance(escalate_to, str):
        raise ConfigError(f"{where} ({name}): `oncall` and `escalate_to` are strings")
    return Route(name, url, frozenset(str(s) for s in severity), {str(k): str(v) for k, v in match.items()},
                 channel, threshold_settings(raw, f"{where} ({name})"), oncall, escalate_to)


def default_threshold(settings: Settings) -> Threshold | None:
    """The default route's threshold: the notify_after / notify_min_alerts / notify_min_severity settings."""
    return threshold_settings({key: getattr(settings, key) for key in THRESHOLD_KEYS}, "settings")


def route_for(routes: Sequence[Route], severity: str, labels: Mapping[str, Any]) -> Route | None:
    """The first route that accepts the change; None when none does (no default configured)."""
    for route in routes:
        if route.accepts(severity, labels):
            return route
    return None
