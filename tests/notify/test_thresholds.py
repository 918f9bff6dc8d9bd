"""Notify thresholds: the pure gate, table-driven, and how a route's threshold is configured."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from incidentctl.config import ConfigError, load_settings
from incidentctl.notify.routes import load_routes
from incidentctl.notify.thresholds import (
    ANNOUNCE,
    NEVER,
    WAIT,
    ChangeRecord,
    Threshold,
    episodes,
    gate,
    make_threshold,
    verdicts,
)

T = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
M = timedelta(minutes=1)
AFTER_5M = Threshold(after=5 * M)


def c(n, change, minute, severity="warning", gone_out=False, known=None):
    return ChangeRecord(n, change, T + minute * M, severity, gone_out, None if known is None else T + known * M)


OPENED = c(1, "opened", 0)
FIRING = [OPENED]
SHORT = [OPENED, c(2, "resolved", 3)]


@pytest.mark.parametrize("threshold, changes, fired, now_min, expected", [
    # no threshold: announced at once
    (None, FIRING, [], 0, (ANNOUNCE, 0, None)),
    # firing 2m of 5m: held until the 5th minute
    (AFTER_5M, FIRING, [], 2, (WAIT, None, 5)),
    # firing 6m: announced as of the 5th minute
    (AFTER_5M, FIRING, [], 6, (ANNOUNCE, 5, None)),
    # resolved after 3m: never announced, whenever notify looks
    (AFTER_5M, SHORT, [], 60, (NEVER, None, None)),
    # resolved at 3m, but the resolve arrived at 6m: it fired 5m as far as incidentctl knew
    (AFTER_5M, [OPENED, c(2, "resolved", 3, known=6)], [], 60, (ANNOUNCE, 5, None)),
    # exactly 5m is enough
    (AFTER_5M, [OPENED, c(2, "resolved", 5)], [], 60, (ANNOUNCE, 5, None)),
    # severity: escalated to critical at 1m releases it then
    (Threshold(min_severity="critical"), [OPENED, c(2, "escalated", 1, "critical")], [], 2, (ANNOUNCE, 1, None)),
    # severity: error is below critical; nothing to wait for but an alert
    (Threshold(min_severity="critical"), [OPENED, c(2, "escalated", 1, "error")], [], 2, (WAIT, None, None)),
    # severity: a higher one counts too
    (Threshold(min_severity="error"), [c(1, "opened", 0, "critical")], [], 0, (ANNOUNCE, 0, None)),
    # alerts: the third distinct alert fired at 2m
    (Threshold(min_alerts=3), FIRING, [T - M, T, T + 2 * M], 3, (ANNOUNCE, 2, None)),
    # alerts: two of three
    (Threshold(min_alerts=3), FIRING, [T, T + M], 3, (WAIT, None, None)),
    # alerts: the third came after the resolve was known — too late
    (Threshold(min_alerts=3), [OPENED, c(2, "resolved", 3)], [T, T, T + 4 * M], 9, (NEVER, None, None)),
    # any of: a critical opening does not wait the 10 minutes
    (Threshold(after=10 * M, min_severity="critical"), [c(1, "opened", 0, "critical")], [], 0, (ANNOUNCE, 0, None)),
    # any of: 10 minutes pass before it ever gets critical
    (Threshold(after=10 * M, min_severity="critical"), FIRING, [], 11, (ANNOUNCE, 10, None)),
    # something of the episode went out already: its resolve is never held or dropped
    (AFTER_5M, [c(1, "opened", 0, gone_out=True), c(2, "resolved", 1)], [], 2, (ANNOUNCE, None, None)),
])
def test_gate(threshold, changes, fired, now_min, expected):
    (episode,) = episodes(changes)
    verdict = gate(threshold, episode, fired, T + now_min * M)
    action, at_min, until_min = expected
    assert verdict.action == action, verdict.reason
    assert verdict.at == (None if at_min is None else T + at_min * M)
    assert verdict.until == (None if until_min is None else T + until_min * M)


def test_episodes_follow_openings_and_resolves():
    changes = [c(5, "reopened", 20), c(1, "opened", 0), c(2, "escalated", 1, "critical"), c(3, "acknowledged", 2),
               c(4, "resolved", 3, known=4), c(6, "resolved", 30)]
    first, second = episodes(changes)
    assert [x.id for x in first.changes] == [1, 2, 3, 4] and (first.start, first.end) == (T, T + 4 * M)
    assert [x.id for x in second.changes] == [5, 6] and (second.start, second.end) == (T + 20 * M, T + 30 * M)


def test_each_episode_of_a_flapping_incident_is_gated_alone():
    # opened 0–2 (short), reopened 10 and still firing at 16: the first never, the second announced
    changes = [c(1, "opened", 0), c(2, "resolved", 2), c(3, "reopened", 10)]
    decided = verdicts(AFTER_5M, changes, [], T + 16 * M)
    assert [decided[i].action for i in (1, 2, 3)] == [NEVER, NEVER, ANNOUNCE]
    assert decided[3].at == T + 15 * M


@pytest.mark.parametrize("after, alerts, severity, expected", [
    ("5m", None, None, Threshold(after=5 * M)),          # a duration as people type it
    (300, None, None, Threshold(after=5 * M)),           # seconds, as the settings hold it
    (0.0, 0, "", None),                                  # all off: no threshold
    (None, 3, None, Threshold(min_alerts=3)),
    (None, "2", "CRITICAL", Threshold(min_alerts=2, min_severity="critical")),  # case does not matter
])
def test_make_threshold(after, alerts, severity, expected):
    assert make_threshold(after, alerts, severity) == expected


@pytest.mark.parametrize("after, alerts, severity, message", [
    ("soon", None, None, "notify_after"),
    (None, "three", None, "notify_min_alerts"),
    (None, -1, None, "notify_min_alerts"),
    (None, None, "P1", "notify_min_severity"),
])
def test_make_threshold_refuses(after, alerts, severity, message):
    with pytest.raises(ConfigError, match=message):
        make_threshold(after, alerts, severity, "routes[0]")


def test_route_and_default_thresholds_from_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('notify_after = "2m"\n\n[[routes]]\nname = "team"\nwebhook_url = "https://hooks.example/1"\n'
                    'notify_after = "10m"\nnotify_min_severity = "critical"\n\n'
                    '[[routes]]\nname = "oncall"\nwebhook_url = "https://hooks.example/2"\n')
    settings = load_settings(environ={"SLACK_WEBHOOK_URL": "https://hooks.example/0"}, config_file=path)
    team, oncall, default = load_routes(settings)
    assert team.threshold == Threshold(after=10 * M, min_severity="critical")
    assert team.describe()["threshold"] == "fired 10m, or severity critical"
    assert oncall.threshold is None and "threshold" not in oncall.describe()
    assert default.threshold == Threshold(after=2 * M)
    path.write_text('[[routes]]\nname = "team"\nwebhook_url = "https://hooks.example/1"\nnotify_min_alerts = "x"\n')
    with pytest.raises(ConfigError, match=r"routes\[0\] \(team\): notify_min_alerts"):
        load_routes(load_settings(environ={}, config_file=path))
    with pytest.raises(ConfigError, match="notify_min_severity"):
        load_settings(environ={"INCIDENTCTL_NOTIFY_MIN_SEVERITY": "P1"})
