"""Fingerprints: Alertmanager's FNV-1a label fingerprint and the incident group key."""

from __future__ import annotations

import json

import pytest

from incidentctl.incidents.fingerprint import alert_fingerprint, group_values, incident_fingerprint, label_fingerprint

GROUP_BY = ("alertname", "cluster", "namespace", "service")


def test_fnv1a_vector_from_prometheus_common():
    assert label_fingerprint({"alertname": "alert1", "lbl1": "val1"}) == "fac0861a85de433a"


def test_empty_label_set_is_the_fnv_offset_basis():
    assert label_fingerprint({}) == "cbf29ce484222325"


@pytest.mark.parametrize("name", [
    "alertmanager/am_v4_k8s_resolved_single_truncatedAlerts.json",
    "alertmanager/am_v4_oncall-example_firing_3alerts_numFiring-added-by-oncall.json",
])
def test_recomputes_the_fingerprints_alertmanager_sent(fixture_bodies, name):
    for alert in json.loads(fixture_bodies[name])["alerts"]:
        assert label_fingerprint(alert["labels"]) == alert["fingerprint"]


def test_payload_fingerprint_is_used_verbatim():
    # Grafana's fingerprint covers hidden labels: it cannot be recomputed, so it is kept.
    assert alert_fingerprint("e6349a25f5ef0e9e", {"alertname": "x"}) == "e6349a25f5ef0e9e"
    assert alert_fingerprint(None, {"alertname": "alert1", "lbl1": "val1"}) == "fac0861a85de433a"
    assert alert_fingerprint("", {"alertname": "alert1", "lbl1": "val1"}) == "fac0861a85de433a"


def test_incident_fingerprint_depends_only_on_group_by_values():
    a = {"alertname": "CPU", "cluster": "eu", "namespace": "db", "service": "pg", "instance": "1"}
    b = dict(a, instance="2", severity="critical")
    assert incident_fingerprint(GROUP_BY, a, "f1") == incident_fingerprint(GROUP_BY, b, "f2")
    assert incident_fingerprint(GROUP_BY, a, "f1") != incident_fingerprint(GROUP_BY, dict(a, cluster="us"), "f1")
    assert len(incident_fingerprint(GROUP_BY, a, "f1")) == 32


def test_incident_fingerprint_is_stable_across_releases():
    # Stored incidents keep their key: a new release must hash the same values to the same key,
    # or alerts after an upgrade would open new incidents. sha256 of "name=value" joined by 0xFF.
    labels = {"alertname": "HighCPU", "cluster": "prod-eu-1 ✓"}
    assert incident_fingerprint(["alertname", "cluster", "fingerprint"], labels, "abc") == \
        "29f62bb4acc20f5fe75f1c3595f95941"
    assert incident_fingerprint(("alertname",), {}, "f") == "56ea9d814b2182187a7829c8d13323e1"


def test_missing_group_labels_count_as_empty():
    assert group_values(GROUP_BY, {"alertname": "X"}, "f") == {"alertname": "X", "cluster": "", "namespace": "",
                                                                 "service": ""}
    assert incident_fingerprint(GROUP_BY, {"alertname": "X"}, "f") == \
        incident_fingerprint(GROUP_BY, {"alertname": "X", "cluster": ""}, "f")


def test_values_cannot_run_into_each_other():
    # "a b" + "" must not equal "a" + " b": names and a separator byte are part of the hash.
    by = ("x", "y")
    assert incident_fingerprint(by, {"x": "ab", "y": ""}, "f") != incident_fingerprint(by, {"x": "a", "y": "b"}, "f")


def test_group_by_fingerprint_means_one_incident_per_series():
    labels = {"alertname": "CPU"}
    assert incident_fingerprint(("fingerprint",), labels, "f1") != incident_fingerprint(("fingerprint",), labels, "f2")
    assert incident_fingerprint(("fingerprint",), labels, "f1") == incident_fingerprint(("fingerprint",), {}, "f1")
