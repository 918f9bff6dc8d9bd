"""The whole path through the real entry points: fixtures POSTed to a running `incidentctl serve`,
then `incidentctl process`, `list` and `show`, on SQLite and MariaDB."""

from __future__ import annotations

import json

import pytest
import requests

from tests.support import FIXTURES
from tests.support.cli import run_cli
from tests.support.servers import ServeProcess, serve_env

pytestmark = pytest.mark.slow

# Posted in this order (a firing before its resolve, as a sender would).
ORDER = [
    "grafana/grafana9_zulip_firing_single_valueString.json",
    "grafana/grafana9_zulip_resolved_single.json",
    "alertmanager/am_v4_oncall-example_firing_3alerts_numFiring-added-by-oncall.json",
    "grafana/grafana9_zulip_firing_3alerts_2rules.json",
    "grafana/grafana-cloud-2022_zulip_test-notification_resolved_truncated1_quirky.json",
    "grafana-legacy/grafana-legacy-le8_docs_alerting.json",
]


def test_fixtures_through_receiver_process_list_and_show(incidentctl_bin, cli_env, tmp_path):
    with ServeProcess(incidentctl_bin, serve_env(cli_env), tmp_path / "serve.log") as server:
        for name in ORDER:
            r = requests.post(server.url + "/webhook/grafana", data=(FIXTURES / name).read_bytes(),
                              headers={"Content-Type": "application/json"})
            assert r.status_code == 200, (name, r.text)

    summary = json.loads(run_cli("process", "-o", "json", env=cli_env, check=True).stdout)
    assert (summary["rows"], summary["errors"]) == (len(ORDER), 0)
    listed = json.loads(run_cli("list", "--status", "all", "-o", "json", env=cli_env, check=True).stdout)
    incidents = {i["alertname"]: i for i in listed}

    # Grafana 9 "Test alert": fires (00:41), resolves (00:51, same fingerprint → auto-resolve),
    # then two new "Test alert" series fire at 01:11 in the 3-alert notification: same group,
    # 19.6 min after the resolve, inside the 30 min reopen window → the incident reopens (a flap).
    test_alert = incidents["Test alert"]
    assert (test_alert["status"], test_alert["reopen_count"], test_alert["series_count"],
            test_alert["series_firing"]) == ("open", 1, 3, 2)
    shown = json.loads(run_cli("show", str(test_alert["id"]), "-o", "json", env=cli_env, check=True).stdout)
    first = next(s for s in shown["series"] if s["alert_fingerprint"] == "d8a21484c9c25a60")
    assert first["status"] == "resolved"
    assert first["links"]["generator"] == "https://grafana.example.com/alerting/grafana/zTjxv_C7k/view"
    kinds = [e["kind"] for e in shown["events"]]
    assert kinds.index("opened") < kinds.index("resolved") < kinds.index("reopened")
    assert incidents["Second webhook test"]["status"] == "open"  # the other rule: its own incident

    # Alertmanager: three InstanceDown alerts without cluster/namespace/service labels group into
    # one critical incident with three series, each keeping the payload's fingerprint
    down = incidents["InstanceDown"]
    assert (down["status"], down["severity"], down["series_count"], down["series_firing"]) == ("open", "critical", 3, 3)
    am = json.loads((FIXTURES / ORDER[2]).read_bytes())
    shown = json.loads(run_cli("show", str(down["id"]), "-o", "json", env=cli_env, check=True).stdout)
    assert sorted(s["alert_fingerprint"] for s in shown["series"]) == sorted(a["fingerprint"] for a in am["alerts"])

    # the contact-point "Test" notification opens nothing
    quirky = json.loads((FIXTURES / ORDER[4]).read_bytes())
    assert quirky["alerts"][0]["labels"]["alertname"] not in incidents

    # the default list shows only unresolved incidents, newest first
    unresolved = json.loads(run_cli("list", "-o", "json", env=cli_env, check=True).stdout)
    assert {i["alertname"] for i in unresolved} == {"Test alert", "Second webhook test", "InstanceDown",
                                                    json.loads((FIXTURES / ORDER[5]).read_bytes())["ruleName"]}
    assert [i["opened_at"] for i in unresolved] == sorted((i["opened_at"] for i in unresolved), reverse=True)
