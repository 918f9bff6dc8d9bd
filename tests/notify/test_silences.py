"""Silences: matchers, windows, expiry, and the outbox rows they suppress."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from incidentctl.config import load_settings
from incidentctl.errors import InvalidSilence, InvalidTransition, NotFound
from incidentctl.notify.delivery import notify_pending
from incidentctl.notify.silences import (
    Matcher,
    add_silence,
    expire_silence,
    list_silences,
    matches_all,
    parse_matcher,
    silenced_incidents,
    state_of,
)
from tests.support import T0
from tests.support.factories import add_change, add_incident, outbox_rows
from tests.support.slack_fake import FakeSlack

H = timedelta(hours=1)
LABELS = {"alertname": "HighCPU", "cluster": "prod", "namespace": "web"}


@pytest.mark.parametrize("text, expected", [
    ("cluster=prod", Matcher("cluster", "prod", "=")),      # equality
    ("cluster!=prod", Matcher("cluster", "prod", "!=")),    # inequality
    ("alertname=~High.*", Matcher("alertname", "High.*", "=~")),  # regex
    ("alertname!~Low.*", Matcher("alertname", "Low.*", "!~")),
    ("team=a=b", Matcher("team", "a=b", "=")),              # value may contain '='
    ("empty=", Matcher("empty", "", "=")),                  # empty value matches a missing label
])
def test_parse_matcher(text, expected):
    assert parse_matcher(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=x", "1abc=x", "a=~(", " =x"])
def test_parse_matcher_rejects(text):
    with pytest.raises(InvalidSilence):
        parse_matcher(text)


@pytest.mark.parametrize("matchers, hit", [
    (["cluster=prod"], True),                       # one label
    (["cluster=prod", "namespace=web"], True),       # all must hold
    (["cluster=prod", "namespace=db"], False),       # one fails → no match
    (["cluster!=staging"], True),
    (["alertname=~High.*"], True),
    (["alertname=~CPU"], False),                      # regex is anchored (full match)
    (["team=ops"], False),                            # missing label is ""
    ([], False),                                      # no matchers silence nothing
])
def test_matches_all(matchers, hit):
    assert matches_all([parse_matcher(m) for m in matchers], LABELS) is hit


def test_add_list_expire(engine):
    s = add_silence(engine, [parse_matcher("cluster=prod")], starts_at=T0, ends_at=T0 + 2 * H,
                    comment="upgrade", created_by="ana", now=T0)
    assert (s["state"], s["matchers"], s["created_by"]) == ("active", "cluster=prod", "ana")
    future = add_silence(engine, [parse_matcher("cluster=dev")], starts_at=T0 + H, ends_at=T0 + 2 * H,
                         comment="later", created_by="bo", now=T0)
    assert future["state"] == "pending"
    assert [x["id"] for x in list_silences(engine, T0)] == [future["id"], s["id"]]
    expired = expire_silence(engine, s["id"], T0 + timedelta(minutes=10))
    assert expired["state"] == "expired" and expired["ends_at"] == T0 + timedelta(minutes=10)
    assert [x["id"] for x in list_silences(engine, T0 + timedelta(minutes=11))] == [future["id"]]
    assert len(list_silences(engine, T0 + timedelta(minutes=11), include_expired=True)) == 2
    with pytest.raises(InvalidTransition):
        expire_silence(engine, s["id"], T0 + H)  # already over: changes nothing
    with pytest.raises(NotFound):
        expire_silence(engine, 999999, T0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(matchers=[]), "at least one --match"),
    (dict(comment="  "), "--comment"),
    (dict(ends_at=T0 - H), "not in the future"),
])
def test_add_silence_rejects(engine, kwargs, message):
    args = dict(matchers=[parse_matcher("a=b")], starts_at=T0, ends_at=T0 + H, comment="x", created_by="me", now=T0)
    args.update(kwargs)
    matchers = args.pop("matchers")
    with pytest.raises(InvalidSilence, match=message):
        add_silence(engine, matchers, **args)
    assert list_silences(engine, T0, include_expired=True) == []  # nothing stored


def test_state_of():
    row = {"starts_at": T0, "ends_at": T0 + H, "expired_at": None}
    assert [state_of(row, t) for t in (T0 - H, T0, T0 + H)] == ["pending", "active", "expired"]


def test_silenced_incidents_now(engine):
    prod = add_incident(engine, labels={"cluster": "prod"})
    dev = add_incident(engine, labels={"cluster": "dev"})
    s = add_silence(engine, [parse_matcher("cluster=prod")], starts_at=T0, ends_at=T0 + H, comment="x",
                    created_by="me", now=T0)
    assert silenced_incidents(engine, [prod, dev], T0 + timedelta(minutes=1)) == {prod: s["id"]}
    assert silenced_incidents(engine, [prod, dev], T0 + 2 * H) == {}


def test_suppressed_rows_are_never_sent_after_expiry(engine):
    """Silencing is decided at the change's time: inside the window → suppressed for good."""
    s = add_silence(engine, [parse_matcher("cluster=prod")], starts_at=T0, ends_at=T0 + H, comment="maint",
                    created_by="me", now=T0)
    inside = add_change(engine, add_incident(engine, labels={"cluster": "prod"}), created_at=T0 + timedelta(minutes=5))
    other = add_change(engine, add_incident(engine, labels={"cluster": "dev"}), created_at=T0 + timedelta(minutes=5))
    after = add_change(engine, add_incident(engine, labels={"cluster": "prod"}), created_at=T0 + 2 * H)
    with FakeSlack() as slack, requests.Session() as session:
        settings = load_settings(environ={"SLACK_WEBHOOK_URL": slack.url("ok")})
        # notify runs only after the silence is over: the change inside the window stays quiet
        summary = notify_pending(engine, settings, session, clock=lambda: T0 + 3 * H)
        assert (summary.suppressed, summary.sent) == (1, 2)
        rows = outbox_rows(engine)
        assert (rows[inside]["state"], rows[inside]["silence_id"]) == ("suppressed", s["id"])
        assert rows[other]["state"] == rows[after]["state"] == "sent"
        summary = notify_pending(engine, settings, session, clock=lambda: T0 + 4 * H)
        assert summary.due == 0 and len(slack.bodies("ok")) == 1
        assert f"(#{rows[inside]['incident_id']})" not in slack.bodies("ok")[0]["text"]  # not listed as a change


def test_expired_early_silence_stops_at_expiry(engine):
    s = add_silence(engine, [parse_matcher("cluster=prod")], starts_at=T0, ends_at=T0 + 5 * H, comment="x",
                    created_by="me", now=T0)
    expire_silence(engine, s["id"], T0 + H)
    before = add_change(engine, add_incident(engine), created_at=T0 + timedelta(minutes=30))
    later = add_change(engine, add_incident(engine), created_at=T0 + 2 * H)
    with FakeSlack() as slack, requests.Session() as session:
        settings = load_settings(environ={"SLACK_WEBHOOK_URL": slack.url("ok")})
        notify_pending(engine, settings, session, clock=lambda: T0 + 3 * H)
    rows = outbox_rows(engine)
    assert (rows[before]["state"], rows[later]["state"]) == ("suppressed", "sent")


def test_processed_alerts_in_a_window_are_suppressed(engine, fixture_bodies):
    """Through the real processor: the outbox rows it writes are silenced by event time."""
    from datetime import datetime, timezone

    from incidentctl.ingest.archive import insert_raw_alerts, raw_alert
    from tests.support.processing import process_all

    start = datetime(2022, 6, 17, 0, 0, tzinfo=timezone.utc)  # the fixture's alerts fire at 01:03 and 01:11
    s = add_silence(engine, [parse_matcher("alertname=Test alert")], starts_at=start, ends_at=start + 24 * H,
                    comment="maint", created_by="me", now=start)
    body = fixture_bodies["grafana/grafana9_zulip_firing_3alerts_2rules.json"]
    with engine.begin() as conn:
        insert_raw_alerts(conn, [raw_alert(body, received_at=start + 2 * H)])
    process_all(engine)
    with FakeSlack() as slack, requests.Session() as session:
        settings = load_settings(environ={"SLACK_WEBHOOK_URL": slack.url("ok")})
        summary = notify_pending(engine, settings, session, clock=lambda: start + 3 * H)
        assert (summary.suppressed, summary.sent) == (1, 1)
        text = slack.bodies("ok")[0]["text"]
    assert "Second webhook test" in text and "Test alert (#" not in text
    suppressed = [r for r in outbox_rows(engine).values() if r["state"] == "suppressed"]
    assert [r["silence_id"] for r in suppressed] == [s["id"]]
    assert silenced_incidents(engine, [suppressed[0]["incident_id"]], start + 3 * H) == {
        suppressed[0]["incident_id"]: s["id"]}
