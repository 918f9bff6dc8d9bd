"""The digest is pure: changes + world → one message within Slack's limits, alert text escaped."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incidentctl.notify.digest import (
    MAX_BLOCKS,
    MAX_TEXT,
    Change,
    World,
    build_digest,
    entries,
    escape,
    identity,
    limit_violations,
    link,
)
from tests.support import T0
from tests.support.properties import examples

NOW = T0 + timedelta(hours=1)


def change(i: int = 1, kind: str = "opened", **kw) -> Change:
    base = dict(notification_id=i, incident_id=100 + i, change=kind, severity="critical", created_at=T0,
                title=f"HighCPU {i}", cluster="prod", namespace="web", service="api", opened_at=T0,
                alert_count=3, series_count=2, series_firing=1)
    base.update(kw)
    return Change(**base)


def all_text(message: dict) -> str:
    return json.dumps(message, ensure_ascii=False)


def test_nothing_pending_means_no_message():
    assert build_digest([], World(), NOW) is None


@pytest.mark.parametrize("n", [1, 50, 500])
def test_digest_fits_slack_limits(n):
    changes = [change(i, ["opened", "reopened", "escalated", "resolved", "acknowledged"][i % 5],
                      title="T" * 400 + str(i), reason="r" * 300) for i in range(n)]
    message = build_digest(changes, World({"critical": n}), NOW)
    assert limit_violations(message) == []
    assert len(message["blocks"]) <= MAX_BLOCKS and len(message["text"]) <= MAX_TEXT
    if n == 1:
        assert "more" not in all_text(message)  # one change: everything shown, no "and N more"
    if n >= 50:
        more = next(b for b in message["blocks"] if "more —" in b.get("text", {}).get("text", ""))
        assert "incidentctl list" in more["text"]["text"]
        hidden = int(more["text"]["text"].split("and ")[1].split(" more")[0])
        listed = sum(1 for b in message["blocks"] if b["type"] == "section" and b["text"]["text"].startswith(":"))
        assert listed + hidden == n  # every change either listed or counted


@pytest.mark.parametrize("hostile, forbidden", [
    ("<!channel> wake up", "<!channel>"),          # a broadcast mention must not survive
    ("<http://evil.example|click me>", "<http://evil"),  # a link must not survive
    ("Tom & Jerry", "Tom & Jerry"),                 # a bare ampersand is escaped
    ("<@U123>", "<@U123>"),                          # a user mention must not survive
])
def test_alert_text_is_escaped_everywhere(hostile, forbidden):
    message = build_digest([change(title=hostile, cluster=hostile, reason=hostile)],
                           World({"critical": 1}, (101, hostile, T0)), NOW)
    for block in message["blocks"]:
        texts = [block.get("text", {}).get("text", "")] + [e.get("text", "") for e in block.get("elements", [])]
        for text in texts:
            if block["type"] != "header":
                assert forbidden not in text
    assert forbidden not in message["text"]
    assert escape(hostile) in message["text"]


@pytest.mark.parametrize("url, expected", [
    # & escaped
    ("https://grafana.example/d/abc?orgId=1&var=x", "<https://grafana.example/d/abc?orgId=1&amp;var=x|rule>"),
    ("https://g.example/x|<!channel>", "<https://g.example/x%7C&lt;!channel&gt;|rule>"),  # cannot close the link early
    ("javascript:alert(1)", None),  # only http(s)
    ("", None),  # no URL, no link
])
def test_links(url, expected):
    assert link(url, "rule") == expected


def test_change_shows_links_where_and_how_long():
    c = change(links={"rule": "https://g/rule", "dashboard": "https://g/d", "panel": "https://g/p",
                      "silence": "https://g/s"})
    text = build_digest([c], World(), NOW)["blocks"][2]["text"]["text"]
    assert "<https://g/rule|rule>" in text and "<https://g/s|silence>" in text
    assert "prod/web/api" in text and "open 1h" in text and "3 alerts" in text and "1/2 series firing" in text


def test_sections_in_order_and_header_counts():
    message = build_digest([change(1, "resolved"), change(2, "opened"), change(3, "escalated"),
                            change(4, "reopened"), change(5, "acknowledged")], World(), NOW)
    assert message["blocks"][0]["text"]["text"] == ("incidentctl: 1 new · 1 reopened · 1 escalated · "
                                                   "1 acknowledged · 1 resolved")
    headings = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"
                and b["text"]["text"].startswith("*") and "(" in b["text"]["text"]]
    assert headings == ["*New (1)*", "*Reopened (1)*", "*Escalated (1)*", "*Acknowledged (1)*", "*Resolved (1)*"]


def test_footer_state_of_the_world():
    world = World({"warning": 2, "critical": 1}, (7, "DB down", T0))
    footer = build_digest([change()], world, NOW)["blocks"][-1]["elements"][0]["text"]
    assert footer == "Open now: 1 critical, 2 warning · oldest unacknowledged critical: #7 DB down (1h)"


def test_resolved_change_says_how_long_it_lasted():
    c = change(kind="resolved", resolved_at=T0 + timedelta(minutes=42))
    assert "lasted 42m" in build_digest([c], World(), NOW)["blocks"][2]["text"]["text"]


KINDS = st.sampled_from(["opened", "reopened", "escalated", "acknowledged", "resolved"])


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.tuples(KINDS, st.text(max_size=600), st.text(max_size=300), st.text(max_size=80)),
                min_size=1, max_size=80))
def test_any_alert_text_fits_and_cannot_open_a_slack_token(items):
    changes = [change(i, kind, title=title, reason=reason, cluster=cluster, severity=cluster[:10] or "none")
               for i, (kind, title, reason, cluster) in enumerate(items)]
    message = build_digest(changes, World({"critical": 1}, (1, items[0][1], T0)), NOW)
    assert limit_violations(message) == []
    for block in message["blocks"][1:]:
        for text in [block.get("text", {}).get("text", "")] + [e["text"] for e in block.get("elements", [])]:
            assert "<" not in text  # only links we build contain '<', and these changes have none


@pytest.mark.parametrize("kinds, status, section, trail", [
    # never seen, came and went since the last digest: listed once, under Resolved
    (["opened", "resolved"], "resolved", "Resolved", "opened → resolved"),
    # never seen and flapped: still news of a new incident
    (["opened", "resolved", "reopened"], "open", "New", "opened → resolved → reopened"),
    # never seen and escalated: New, at its new severity
    (["opened", "escalated"], "open", "New", "opened → escalated"),
    # never seen but acknowledged before the digest: someone is on it, not New
    (["opened", "acknowledged"], "acknowledged", "Acknowledged", "opened → acknowledged"),
    # acknowledged, then escalated: still someone's
    (["opened", "acknowledged", "escalated"], "acknowledged", "Acknowledged", "opened → acknowledged → escalated"),
    # acknowledged, resolved by hand and fired again (a reopen clears the ack): news again
    (["opened", "acknowledged", "resolved", "reopened"], "open", "New", "acknowledged → resolved → reopened"),
    # the ack is not in this digest (silenced, or past the run's row cap): its status says so
    (["opened"], "acknowledged", "Acknowledged", None),
    # an acknowledgement stamped before the alert's start (the sender's clock ahead of ours)
    (["acknowledged", "opened"], "acknowledged", "Acknowledged", "acknowledged → opened"),
    # known, resolved then fired again: where it stands now
    (["resolved", "reopened"], "open", "Reopened", "resolved → reopened"),
    # known, escalated and then acknowledged by someone
    (["escalated", "acknowledged"], "acknowledged", "Acknowledged", "escalated → acknowledged"),
    # one change: no trail
    (["reopened"], "open", "Reopened", None),
])
def test_an_incident_appears_once_where_it_stands_now(kinds, status, section, trail):
    changes = [change(i, kind, incident_id=7, status=status, created_at=T0 + timedelta(minutes=i))
               for i, kind in enumerate(kinds)]
    changes.append(change(50, "opened", incident_id=8, title="Other"))  # another incident, listed on its own
    message = build_digest(changes, World(), NOW)
    lines = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    mine = [line for line in lines if "#7" in line]
    assert len(mine) == 1
    assert (trail in mine[0]) if trail else ("→" not in mine[0])
    heading = [line for line in lines[:lines.index(mine[0])] if line.startswith("*")][-1]
    assert heading.startswith(f"*{section} (")
    expected_new = 1 + (section == "New")
    assert message["blocks"][0]["text"]["text"].startswith(f"incidentctl: {expected_new} new")
    assert header_counts(message) == heading_counts(message) == listed_counts(message)
    assert sum("(#7)" in line for line in message["text"].splitlines()) == 1


def header_counts(message: dict) -> dict[str, int]:
    """`incidentctl: 2 new · 1 acknowledged` → {"New": 2, "Acknowledged": 1}."""
    summary = message["blocks"][0]["text"]["text"].removeprefix("incidentctl: ")
    return {kind.capitalize(): int(n) for n, kind in (part.split(" ", 1) for part in summary.split(" · "))}


def heading_counts(message: dict) -> dict[str, int]:
    """`*New (2)*` headings → {"New": 2}."""
    found = {}
    for b in message["blocks"]:
        text = b.get("text", {}).get("text", "") if b["type"] == "section" else ""
        if text.startswith("*") and text.endswith(")*"):
            title, n = text[1:-2].rsplit(" (", 1)
            found[title] = int(n)
    return found


def listed_counts(message: dict) -> dict[str, int]:
    """How many incident lines each heading has above the next."""
    found: dict[str, int] = {}
    current = None
    for b in message["blocks"]:
        text = b.get("text", {}).get("text", "") if b["type"] == "section" else ""
        if text.startswith("*") and text.endswith(")*"):
            current = text[1:-2].rsplit(" (", 1)[0]
            found[current] = 0
        elif text.startswith(":") and current:
            found[current] += 1
    return found


@settings(max_examples=examples(80), deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), KINDS, st.sampled_from(["open", "acknowledged", "resolved"])),
                min_size=1, max_size=40))
def test_the_header_counts_what_the_sections_list(items):
    # Any mix of changes over a few incidents (a status per incident, as the claim reads it).
    status = {incident: s for incident, _, s in items}
    changes = [change(i, kind, incident_id=incident, status=status[incident], created_at=T0 + timedelta(minutes=i))
               for i, (incident, kind, _) in enumerate(items)]
    message = build_digest(changes, World(), NOW)
    assert header_counts(message) == heading_counts(message) == listed_counts(message)
    assert sum(header_counts(message).values()) == len(status)
    for e in entries(changes):  # New only for what nobody has acknowledged or resolved yet
        if e.section == "opened":
            assert e.latest.status == "open" and e.latest.change not in ("acknowledged", "resolved")


@pytest.mark.parametrize("place, labels, group_labels, expected", [
    # cluster/namespace/service first, as far as the incident has them
    (("prod", "web", "api"), {"instance": "10.0.0.1:9100"}, {}, "prod/web/api"),
    (("", "web", ""), {}, {}, "web"),
    # without them, instance and job
    (("", "", ""), {"instance": "10.0.0.1:9100", "job": "node", "zone": "a"}, {}, "instance=10.0.0.1:9100, job=node"),
    (("", "", ""), {"instance": "", "job": "node"}, {}, "job=node"),
    # without those, the group_by labels but alertname (a custom group_by)
    (("", "", ""), {"alertname": "Backup", "team": "db", "zone": "a"}, {"alertname": "Backup", "team": "db"},
     "team=db"),
    # group_by fingerprint: its pseudo-label says nothing, the labels do
    (("", "", ""), {"alertname": "A", "host": "db1", "severity": "warning"}, {"fingerprint": "3f2a9c0d1e2b4a5c"},
     "host=db1"),
    # else the first common labels by name, at most three, not alertname or severity
    (("", "", ""), {"alertname": "A", "zone": "a", "app": "x", "region": "r", "tier": "t", "severity": "info"}, {},
     "app=x, region=r, tier=t"),
    # nothing that identifies it: nothing said
    (("", "", ""), {"alertname": "A", "severity": "info"}, {"alertname": "A", "cluster": ""}, ""),
    # label data is escaped like the rest
    (("", "", ""), {"instance": "<!channel>"}, {}, "instance=&lt;!channel&gt;"),
])
def test_identity(place, labels, group_labels, expected):
    cluster, namespace, service = place
    assert identity(change(cluster=cluster, namespace=namespace, service=service, labels=labels,
                           group_labels=group_labels)) == expected


def test_an_incident_without_place_says_which_one_it_is():
    c = change(title="HostDown", cluster=None, namespace=None, service=None,
               labels={"alertname": "HostDown", "instance": "db1:9100", "job": "node"})
    message = build_digest([c, change(2, title="HighCPU (prod/web/api)")], World(), NOW)
    line = next(b["text"]["text"] for b in message["blocks"] if "#101" in b.get("text", {}).get("text", ""))
    assert "instance=db1:9100, job=node" in line.splitlines()[1]
    assert "HostDown — instance=db1:9100, job=node (#101)" in message["text"]
    assert "HighCPU (prod/web/api) (#102)" in message["text"]  # a place already in the title is not repeated


@pytest.mark.parametrize("kind, reason, shown", [
    ("opened", "opened: HighCPU 1 firing", False),  # restates the title
    ("escalated", "severity warning → critical", True),
    ("acknowledged", "acknowledged by alice", True),
    ("resolved", "auto-resolved: all 2 series resolved", True),
    ("reopened", "fired again 5m after resolution (within 30m; flap 1)", True),
])
def test_the_reason_is_shown_when_it_says_something(kind, reason, shown):
    text = build_digest([change(kind=kind, reason=reason)], World(), NOW)["blocks"][2]["text"]["text"]
    assert (reason in text) is shown


def test_an_incident_without_severity_says_so():
    message = build_digest([change(severity="none", title="Quiet")], World({"none": 2, "warning": 1}), NOW)
    assert ":white_circle: *no severity* · *Quiet*" in message["blocks"][2]["text"]["text"]
    assert "opened: [no severity] Quiet" in message["text"]
    assert "Open now: 1 warning, 2 without severity" in message["text"]
    assert "NONE" not in all_text(message) and " none" not in all_text(message)


def test_within_a_section_the_most_severe_come_first():
    severities = ["info", "critical", "none", "P2", "warning", "error"]
    message = build_digest([change(i, severity=s, title=f"T{s}") for i, s in enumerate(severities)],
                           World({"info": 1, "none": 1, "critical": 2, "error": 1}), NOW)
    order = [s for line in message["text"].splitlines() for s in severities if f"] T{s} " in line]
    assert order == ["critical", "error", "warning", "info", "none", "P2"]  # a value that is no severity last
    assert "Open now: 2 critical, 1 error, 1 info, 1 without severity" in message["text"]
