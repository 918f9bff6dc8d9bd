"""Parsing every real fixture body into alert events, times normalised to UTC."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentctl.incidents.parsing import AlertEvent, PayloadError, parse_body, parse_go_time

RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# fixture → (source, [(status, alertname, fingerprint, starts_at, ends_at, test)], links of the first alert)
EXPECTED = {
    "alertmanager/am_v4_k8s_resolved_single_truncatedAlerts.json": (
        "alertmanager",
        [("resolved", "Deployment", "fbab788ec4c1018b", utc(2022, 7, 29, 11, 13, 27, 300000),
          utc(2022, 7, 29, 11, 17, 27, 300000), False)],
        {"generator"}),
    "alertmanager/am_v4_oncall-example_firing_3alerts_numFiring-added-by-oncall.json": (
        "alertmanager",
        [("firing", "InstanceDown", fp, utc(2023, 6, 12, 8, 24, 38, 326000), None, False)
         for fp in ("f404ecabc8dd5cd7", "f8f08d4e32c61a9d", "39f38c0611ee7abd")],
        set()),  # generatorURL "" is no link
    "grafana/grafana-cloud-2022_zulip_test-notification_resolved_truncated1_quirky.json": (
        "grafana",
        [("resolved", "TestAlert", "57c6d9296de2ad39", utc(2022, 8, 31, 5, 54, 4, 522893),
          utc(2022, 8, 31, 10, 30, 0, 522884), True)],
        {"silence"}),
    "grafana/grafana10-11_zulip_playgrafana_firing_values_dashboard_panel.json": (
        "grafana",
        [("firing", "Memory (copy)", "e6349a25f5ef0e9e", utc(2024, 3, 1, 2, 9), None, False)],
        {"generator", "silence", "dashboard", "panel"}),
    "grafana/grafana11_zulip_playgrafana_firing_values_imageURL.json": (
        "grafana",
        [("firing", "Memory (copy)", "e6349a25f5ef0e9e", utc(2024, 3, 1, 2, 9), None, False)],
        {"generator", "silence", "dashboard", "panel", "image"}),
    "grafana/grafana12plus_alerting-test_default-payload-template_firing_one_alert_orgId.json": (
        "grafana",
        [("firing", "alert1", "fac0861a85de433a", None, None, False)],  # zero startsAt = not set
        {"generator", "silence"}),
    "grafana/grafana9_zulip_firing_3alerts_2rules.json": (
        "grafana",
        [("firing", "Test alert", "aaafafe0953f0962", utc(2022, 6, 17, 1, 11, 0, 782137), None, False),
         ("firing", "Test alert", "fb31814ac93dbe7d", utc(2022, 6, 17, 1, 11, 0, 782137), None, False),
         ("firing", "Second webhook test", "6f9cd313db421ef1", utc(2022, 6, 17, 1, 3, 0, 782137), None, False)],
        {"generator", "silence"}),
    "grafana/grafana9_zulip_firing_single_valueString.json": (
        "grafana",
        [("firing", "Test alert", "d8a21484c9c25a60", utc(2022, 6, 17, 0, 41, 0, 782137), None, False)],
        {"generator", "silence"}),
    "grafana/grafana9_zulip_resolved_single.json": (
        "grafana",
        [("resolved", "Test alert", "d8a21484c9c25a60", utc(2022, 6, 17, 0, 41, 0, 782137),
          utc(2022, 6, 17, 0, 51, 24, 67337), False)],
        {"generator", "silence"}),
    "grafana/grafana_docs_webhook-notifier_firing_2alerts_values.json": (
        "grafana",
        [("firing", "High memory usage", "c6eadffa33fcdf37", utc(2021, 10, 12, 7, 51, 3, 157076), None, False),
         ("firing", "High CPU usage", "bc97ff14869b13e3", utc(2021, 10, 12, 7, 56, 3, 157076), None, False)],
        {"generator", "silence"}),
    "grafana-legacy/grafana-legacy-le8_docs_alerting.json": (
        "grafana-legacy",
        [("firing", "Panel Title alert", None, RECEIVED, None, False)],
        {"generator", "image"}),
    "grafana-legacy/grafana-legacy-le8_zulip_ok.json": (
        "grafana-legacy",
        [("resolved", "Test rule", None, None, RECEIVED, True)],
        {"generator", "image"}),
    "grafana-legacy/grafana-legacy-le8_zulip_test-notification_alerting.json": (
        "grafana-legacy",
        [("firing", "Test rule", None, RECEIVED, None, True)],
        {"generator", "image"}),
    "grafana-legacy/grafana-legacy-v7_zulip_nodata_alerting_empty-evalMatches.json": (
        "grafana-legacy",
        [("firing", "No Data alert", None, RECEIVED, None, False)],
        {"generator"}),
}


def test_every_fixture_has_an_expectation(fixture_bodies):
    assert set(fixture_bodies) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_events(fixture_bodies, name):
    source, expected, links = EXPECTED[name]
    events = parse_body(fixture_bodies[name], RECEIVED)
    got = [(e.status, e.labels.get("alertname"), e.fingerprint if expected[0][2] else None, e.starts_at, e.ends_at,
            e.test) for e in events]
    assert got == expected
    assert {e.source for e in events} == {source}
    assert set(events[0].links) == links
    for e in events:
        assert e.received_at == RECEIVED
        assert len(e.fingerprint) == 16
        # Events are built without __init__ (parsing.py): each has every field, and only those.
        assert set(vars(e)) == {f.name for f in fields(AlertEvent)}
        assert e == AlertEvent(**vars(e))


def test_legacy_fingerprint_is_fnv_of_its_labels(fixture_bodies):
    [event] = parse_body(fixture_bodies["grafana-legacy/grafana-legacy-le8_docs_alerting.json"], RECEIVED)
    assert event.labels == {"alertname": "Panel Title alert", "tag name": "tag value", "rule_id": "1", "org_id": "1"}
    assert event.annotations["values"] == "Count=1"
    from incidentctl.incidents.fingerprint import label_fingerprint
    assert event.fingerprint == label_fingerprint(event.labels)


def test_replayed_row_is_parsed_by_shape_not_by_source(fixture_bodies):
    # The processor never reads the `source` column; a user agent only breaks ties of shape.
    body = fixture_bodies["grafana/grafana9_zulip_resolved_single.json"]
    assert parse_body(body, RECEIVED, user_agent="incidentctl-replay")[0].status == "resolved"


@pytest.mark.parametrize("state, statuses", [
    ("alerting", ["firing"]), ("no_data", ["firing"]), ("ok", ["resolved"]), ("pending", []), ("paused", []),
])
def test_legacy_states(state, statuses):
    body = f'{{"ruleId": 7, "ruleName": "r", "title": "[x] r", "state": "{state}", "evalMatches": []}}'.encode()
    assert [e.status for e in parse_body(body, RECEIVED)] == statuses


@pytest.mark.parametrize("body, message", [
    (b"", "empty body"),
    (b"not json", "invalid JSON"),
    (b"[1, 2]", "not a webhook payload"),
    (b'{"hello": "world"}', "custom template"),
    (b'{"alerts": [{"labels": {"a": 1}, "status": "firing"}]}', "label 'a'"),
    (b'{"alerts": [{"labels": {}, "status": "weird"}]}', "`status`"),
    (b'{"alerts": [{"labels": {}, "status": "firing", "startsAt": "yesterday"}]}', "not RFC 3339"),
    # valid JSON that cannot be hashed or stored: the row's error, not the batch's
    (b'{"alerts": [{"labels": {"a": "\\ud800"}, "status": "firing"}]}', r"alerts\[0\]: label 'a' is not valid Unicode"),
    (b'{"alerts": [{"labels": {}, "annotations": {"s": "\\udfff"}, "status": "firing"}]}', "annotation 's'"),
    (b'{"alerts": [{"labels": {}, "status": "firing", "fingerprint": "%s"}]}' % (b"f" * 65), "longer than 64"),
    (b'{"alerts": [{"labels": {}, "status": "firing", "startsAt": "9999-12-31T23:59:59-01:00"}]}', "out of range"),
    (b'{"ruleName": "r", "state": "alerting", "tags": [1]}', "`tags` is not a JSON object"),
])
def test_bad_bodies_raise_payload_error_saying_why(body, message):
    with pytest.raises(PayloadError, match=message):
        parse_body(body, RECEIVED)


@pytest.mark.parametrize("text, expected", [
    ("2021-10-12T09:51:03.157076+02:00", utc(2021, 10, 12, 7, 51, 3, 157076)),  # offset → UTC
    ("2022-06-17T01:11:00.782137894Z", utc(2022, 6, 17, 1, 11, 0, 782137)),  # nanoseconds cut to µs
    ("2022-07-29T11:13:27.3Z", utc(2022, 7, 29, 11, 13, 27, 300000)),  # short fraction
    ("2024-03-01T02:09:00Z", utc(2024, 3, 1, 2, 9)),
    ("2024-03-01T02:09:00-05:30", utc(2024, 3, 1, 7, 39)),
    ("0001-01-01T00:00:00Z", None),  # Go's zero time: no end
    (" 0001-01-01T00:00:00Z ", None),
    ("", None),
    (None, None),
    ("2024-03-01T02:09:00z", utc(2024, 3, 1, 2, 9)),  # lower-case z: the long way
    (" 2024-03-01T02:09:00.1234567Z\n", utc(2024, 3, 1, 2, 9, 0, 123456)),  # blanks around
    ("2024-03-01 02:09:00+01:00", utc(2024, 3, 1, 1, 9)),  # a space for the T
    ("2024-03-01T02:09:00", utc(2024, 3, 1, 2, 9)),  # no offset: UTC
])
def test_parse_time(text, expected):
    assert parse_go_time(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2024-03-01T25:00:00Z", "2024-02-30T00:00:00Z", "2024-03-01Tnoon"])
def test_parse_time_rejects_what_is_not_rfc_3339(text):
    with pytest.raises(ValueError, match="not RFC 3339"):
        parse_go_time(text)


@given(moment=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1),
                           timezones=st.just(timezone.utc)),
       nanos=st.integers(0, 999), digits=st.integers(0, 9), offset_minutes=st.integers(-14 * 60, 14 * 60),
       zulu=st.booleans())
def test_parse_time_reads_every_rfc_3339_form_go_writes(moment, nanos, digits, offset_minutes, zulu):
    # Go writes 0–9 fractional digits and `Z` or ±hh:mm; Python keeps microseconds (cut, not rounded).
    local = moment.astimezone(timezone(timedelta(minutes=0 if zulu else offset_minutes)))
    fraction = f"{local.microsecond:06d}{nanos:03d}"[:digits]
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "")
    if zulu:
        text += "Z"
    else:
        sign, minutes = ("-", -offset_minutes) if offset_minutes < 0 else ("+", offset_minutes)
        text += f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    kept = int((fraction + "000000")[:6]) if digits else 0
    assert parse_go_time(text) == moment.replace(microsecond=kept)


def test_fingerprint_limit_is_the_column_width():
    from incidentctl.db.schema import incident_alerts, incident_events
    from incidentctl.incidents.fingerprint import FINGERPRINT_MAX
    assert FINGERPRINT_MAX == incident_alerts.c.alert_fingerprint.type.length == \
        incident_events.c.alert_fingerprint.type.length


def test_a_surrogate_pair_is_valid_text():
    # An escaped emoji (a surrogate pair) is one valid character, not a lone surrogate.
    [event] = parse_body(b'{"alerts": [{"labels": {"a": "\\ud83d\\ude00"}, "status": "firing"}]}', RECEIVED)
    assert event.labels["a"] == "\U0001f600"
