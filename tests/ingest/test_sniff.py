"""Labelling webhook bodies for the archive: which sender, how many alerts, and why a body is not
a known payload. Pure; every real fixture plus the bad-input cases."""

from __future__ import annotations

import json

import pytest

from incidentctl.ingest.sniff import Verdict, label_body
from tests.support import FIXTURES

# (fixture, source, alert_count, status)
FIXTURE_CASES = [
    # docs example, 2 firing alerts
    ("grafana/grafana_docs_webhook-notifier_firing_2alerts_values.json", "grafana", 2, "firing"),
    # Grafana 12 default template output
    ("grafana/grafana12plus_alerting-test_default-payload-template_firing_one_alert_orgId.json",
     "grafana", 1, "firing"),
    # real Grafana 9 firing, then the same alert resolved
    ("grafana/grafana9_zulip_firing_single_valueString.json", "grafana", 1, "firing"),
    ("grafana/grafana9_zulip_resolved_single.json", "grafana", 1, "resolved"),
    # one notification, two rules
    ("grafana/grafana9_zulip_firing_3alerts_2rules.json", "grafana", 3, "firing"),
    ("grafana/grafana10-11_zulip_playgrafana_firing_values_dashboard_panel.json", "grafana", 1, "firing"),
    ("grafana/grafana11_zulip_playgrafana_firing_values_imageURL.json", "grafana", 1, "firing"),
    # contact-point Test notification: top status resolved although state says alerting
    ("grafana/grafana-cloud-2022_zulip_test-notification_resolved_truncated1_quirky.json", "grafana", 1, "resolved"),
    # Alertmanager v4
    ("alertmanager/am_v4_oncall-example_firing_3alerts_numFiring-added-by-oncall.json", "alertmanager", 3, "firing"),
    ("alertmanager/am_v4_k8s_resolved_single_truncatedAlerts.json", "alertmanager", 1, "resolved"),
    # legacy Grafana ≤ 8: one alert per notification, state mapped to a status
    ("grafana-legacy/grafana-legacy-le8_docs_alerting.json", "grafana-legacy", 1, "firing"),
    ("grafana-legacy/grafana-legacy-le8_zulip_ok.json", "grafana-legacy", 1, "resolved"),
    ("grafana-legacy/grafana-legacy-le8_zulip_test-notification_alerting.json", "grafana-legacy", 1, "firing"),
    ("grafana-legacy/grafana-legacy-v7_zulip_nodata_alerting_empty-evalMatches.json", "grafana-legacy", 1, "firing"),
]


@pytest.mark.parametrize("name,source,count,status", FIXTURE_CASES, ids=[c[0].split("/")[-1] for c in FIXTURE_CASES])
def test_real_fixtures_are_known_payloads(name, source, count, status):
    label = label_body((FIXTURES / name).read_bytes())
    assert (label.source, label.verdict, label.alert_count, label.status, label.parse_error) == (
        source, Verdict.KNOWN, count, status, None)


def test_every_fixture_is_covered():
    assert {c[0] for c in FIXTURE_CASES} == {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.json")}


def _alerts(*alerts, **top) -> bytes:
    return json.dumps({"alerts": list(alerts), **top}).encode()


GOOD = {"status": "firing", "labels": {"alertname": "A"}}

# (case, body, user agent, verdict, source, error fragment)
BAD_CASES = [
    # nothing at all
    ("empty", b"", None, Verdict.NOT_JSON, "unknown", "empty body"),
    # whitespace only
    ("whitespace", b" \n\t", None, Verdict.NOT_JSON, "unknown", "empty body"),
    # not JSON
    ("invalid json", b"{alerts: [", None, Verdict.NOT_JSON, "unknown", "invalid JSON"),
    # bytes that are not UTF-8
    ("not utf-8", b'{"a": "\xff\xfe"}', None, Verdict.NOT_JSON, "unknown", "UTF-8"),
    # JSON, but an array
    ("array", b"[1, 2]", None, Verdict.NOT_JSON, "unknown", "JSON array"),
    # JSON, but a scalar
    ("scalar", b"42", None, Verdict.NOT_JSON, "unknown", "JSON number"),
    ("string", b'"hello"', None, Verdict.NOT_JSON, "unknown", "JSON string"),
    # nesting deeper than the parser's recursion limit
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, None, Verdict.NOT_JSON, "unknown", "nested too deeply"),
    # a custom template's object
    ("custom template", b'{"text": "CPU high"}', None, Verdict.UNKNOWN_SHAPE, "unknown", "without `alerts`"),
    # alerts not a list
    ("alerts object", _alerts(version="4")[:0] + b'{"alerts": {}, "version": "4"}', None,
     Verdict.UNKNOWN_SHAPE, "alertmanager", "not an array"),
    # an alert that is not an object
    ("alert scalar", _alerts(5, version="1"), None, Verdict.UNKNOWN_SHAPE, "grafana", "alerts[0]: expected an object"),
    # labels missing
    ("no labels", _alerts({"status": "firing"}, version="4"), None, Verdict.UNKNOWN_SHAPE, "alertmanager", "`labels`"),
    # a label value of the wrong type
    ("label number", _alerts({"status": "firing", "labels": {"severity": 3}}, version="4"), None,
     Verdict.UNKNOWN_SHAPE, "alertmanager", "label 'severity' is a JSON number"),
    # status neither firing nor resolved
    ("bad status", _alerts(GOOD, {"status": "bogus", "labels": {}}, version="4"), None,
     Verdict.UNKNOWN_SHAPE, "alertmanager", "alerts[1]: `status`"),
    # startsAt of the wrong type
    ("startsAt number", _alerts({**GOOD, "startsAt": 12}, version="1"), None, Verdict.UNKNOWN_SHAPE, "grafana",
     "`startsAt` is a JSON number"),
    # annotations of the wrong type
    ("annotations list", _alerts({**GOOD, "annotations": []}, version="1"), None, Verdict.UNKNOWN_SHAPE, "grafana",
     "`annotations`"),
    # legacy shape without a state
    ("legacy no state", b'{"ruleName": "r", "evalMatches": []}', None, Verdict.UNKNOWN_SHAPE, "grafana-legacy",
     "`state`"),
]


@pytest.mark.parametrize("case,body,agent,verdict,source,fragment", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bodies_that_are_not_known_payloads_say_why(case, body, agent, verdict, source, fragment):
    label = label_body(body, agent)
    assert (label.verdict, label.source) == (verdict, source)
    assert fragment in label.parse_error
    assert label.status is None


# (case, body, user agent, source)
SOURCE_CASES = [
    # no version: the user agent decides
    ("alertmanager agent", _alerts(GOOD), "Alertmanager/0.27.0", "alertmanager"),
    ("grafana agent", _alerts(GOOD), "Grafana", "grafana"),
    # no version, no agent, Grafana-only fields
    ("orgId field", _alerts(GOOD, orgId=1), None, "grafana"),
    # anything else with alerts[] is treated as the Alertmanager format others imitate
    ("bare", _alerts(GOOD), "curl/8", "alertmanager"),
    # the version field wins over the agent
    ("version 4 via grafana agent", _alerts(GOOD, version="4"), "Grafana", "alertmanager"),
]


@pytest.mark.parametrize("case,body,agent,source", SOURCE_CASES, ids=[c[0] for c in SOURCE_CASES])
def test_source_detection(case, body, agent, source):
    assert label_body(body, agent).source == source


def test_top_status_is_derived_when_missing_or_odd():
    mixed = _alerts(GOOD, {"status": "resolved", "labels": {}}, status="weird", version="4")
    assert label_body(mixed).status == "firing"
    only_resolved = _alerts({"status": "resolved", "labels": {}}, version="4")
    assert label_body(only_resolved).status == "resolved"
    empty = _alerts(version="4")
    assert (label_body(empty).alert_count, label_body(empty).status) == (0, None)
