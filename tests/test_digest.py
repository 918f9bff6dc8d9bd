"""The digest is pure: changes + world → one message within Slack's limits, alert text escaped."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from incidentctl.digest import (MAX_BLOCKS, MAX_TEXT, Change, World, build_digest, escape, limit_violations,
                                link)
from tests.factories import T0

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
    ("https://grafana.example/d/abc?orgId=1&var=x", "<https://grafana.example/d/abc?orgId=1&amp;var=x|rule>"),  # & escaped
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


from hypothesis import given, settings, strategies as st  # noqa: E402

KINDS = st.sampled_from(["opened", "reopened", "escalated", "acknowledged", "resolved"])


@settings(max_examples=60, deadline=None)
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


@pytest.mark.parametrize("kinds, section, trail", [
    # never seen, came and went since the last digest: listed once, under Resolved
    (["opened", "resolved"], "Resolved", "opened → resolved"),
    # never seen and flapped: still news of a new incident
    (["opened", "resolved", "reopened"], "New", "opened → resolved → reopened"),
    # never seen and escalated: New, at its new severity
    (["opened", "escalated"], "New", "opened → escalated"),
    # known, resolved then fired again: where it stands now
    (["resolved", "reopened"], "Reopened", "resolved → reopened"),
    # known, escalated and then acknowledged by someone
    (["escalated", "acknowledged"], "Acknowledged", "escalated → acknowledged"),
    # one change: no trail
    (["reopened"], "Reopened", None),
])
def test_an_incident_appears_once_where_it_stands_now(kinds, section, trail):
    changes = [change(i, kind, incident_id=7, created_at=T0 + timedelta(minutes=i)) for i, kind in enumerate(kinds)]
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
    assert sum("(#7)" in line for line in message["text"].splitlines()) == 1
