"""A real sender: Prometheus Alertmanager (Debian's package) → `incidentctl serve`, with auth.

amtool pushes alerts to Alertmanager, which groups them and calls the receiver's webhook exactly
as in production: firing, then resolved. CI installs the package (.ci/run) and requires it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from incidentctl.db.schema import grafana_alerts
from incidentctl.incidents.fingerprint import label_fingerprint
from tests.support.cli import run_cli
from tests.support.servers import AlertmanagerProcess, ServeProcess, serve_env

pytestmark = pytest.mark.slow

ALERTMANAGER = next(filter(None, map(shutil.which, AlertmanagerProcess.BINARY_NAMES)), None)
AMTOOL = shutil.which("amtool")
if not (ALERTMANAGER and AMTOOL):
    if os.environ.get("INCIDENTCTL_TEST_REQUIRE_TOOLS") == "1":
        raise RuntimeError("prometheus-alertmanager/amtool are required (apt-get install prometheus-alertmanager)")
    pytest.skip("prometheus-alertmanager not installed (apt-get install prometheus-alertmanager)",
                allow_module_level=True)

LABELS = {"alertname": "DiskAlmostFull", "cluster": "prod-eu", "namespace": "db", "service": "mysql",
          "severity": "critical", "instance": "db-1:9100"}


def amtool_add(am: AlertmanagerProcess, end: datetime | None = None) -> None:
    args = [AMTOOL, f"--alertmanager.url={am.url}", "alert", "add", *(f"{k}={v}" for k, v in LABELS.items()),
            "--annotation=summary=/var/lib/mysql is 93% full"]
    if end is not None:
        args.append(f"--end={end.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def wait_for_rows(engine, predicate, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(grafana_alerts).order_by(grafana_alerts.c.id))]
        if predicate(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_alertmanager_firing_then_resolved_with_bearer_auth(incidentctl_bin, cli_env, tmp_path, engine):
    env = serve_env(cli_env, INCIDENTCTL_AUTH_BEARER_TOKEN="am-token")
    with ServeProcess(incidentctl_bin, env, tmp_path / "serve.log") as server, AlertmanagerProcess(
            ALERTMANAGER, tmp_path, server.url + "/webhook/alertmanager",
            "        http_config:\n          authorization:\n            credentials: am-token") as am:
        amtool_add(am)
        rows = wait_for_rows(engine, lambda rs: any(r["status"] == "firing" for r in rs))
        assert rows and rows[0]["status"] == "firing", am.log()
        amtool_add(am, end=datetime.now(timezone.utc) - timedelta(seconds=1))
        rows = wait_for_rows(engine, lambda rs: any(r["status"] == "resolved" for r in rs))
    firing = next(r for r in rows if r["status"] == "firing")
    resolved = next(r for r in rows if r["status"] == "resolved")
    for row in (firing, resolved):
        assert row["source"] == "alertmanager" and row["user_agent"].startswith("Alertmanager/")
        assert row["body"].endswith(b"\n")  # stored exactly as sent, Go's trailing newline included
        doc = json.loads(row["body"])
        assert doc["version"] == "4" and doc["alerts"][0]["labels"] == LABELS
    # Alertmanager's fingerprint is stable across firing and resolved, and is our FNV-1a of the labels
    fingerprint = json.loads(firing["body"])["alerts"][0]["fingerprint"]
    assert json.loads(resolved["body"])["alerts"][0]["fingerprint"] == fingerprint == label_fingerprint(LABELS)

    # process through the real entry point: one incident, opened then auto-resolved
    summary = json.loads(run_cli("process", "-o", "json", env=cli_env, check=True).stdout)
    assert (summary["rows"], summary["opened"], summary["resolved"], summary["errors"]) == (len(rows), 1, 1, 0)
    (incident,) = json.loads(run_cli("list", "--status", "all", "-o", "json", env=cli_env, check=True).stdout)
    assert (incident["status"], incident["resolution"], incident["severity"], incident["alertname"]) == (
        "resolved", "auto", "critical", "DiskAlmostFull")
    assert json.loads(run_cli("list", "-o", "json", env=cli_env, check=True).stdout) == []  # nothing unresolved
    shown = json.loads(run_cli("show", str(incident["id"]), "-o", "json", env=cli_env, check=True).stdout)
    assert [s["alert_fingerprint"] for s in shown["series"]] == [fingerprint]
    assert shown["series"][0]["status"] == "resolved"
    assert [e["kind"] for e in shown["events"]][0] == "opened"
    assert "resolved" in [e["kind"] for e in shown["events"]]


def test_alertmanager_basic_auth_wrong_password_is_refused_and_nothing_stored(incidentctl_bin, cli_env, tmp_path,
                                                                                engine):
    env = serve_env(cli_env, INCIDENTCTL_AUTH_BASIC_USER="am", INCIDENTCTL_AUTH_BASIC_PASSWORD="right")
    with ServeProcess(incidentctl_bin, env, tmp_path / "serve.log") as server:
        for password, expect_rows in (("wrong", 0), ("right", 1)):
            workdir = tmp_path / password
            workdir.mkdir()
            with AlertmanagerProcess(ALERTMANAGER, workdir, server.url + "/webhook/alertmanager",
                                     f"        http_config:\n          basic_auth:\n            username: am\n"
                                     f"            password: {password}") as am:
                amtool_add(am)
                rows = wait_for_rows(engine, lambda rs: len(rs) >= 1, timeout=6 if not expect_rows else 20)
                if not expect_rows:
                    assert rows == []
                    assert "401" in am.log()
        assert len(rows) == 1 and rows[0]["source"] == "alertmanager"


def test_alertmanager_resolve_with_an_end_before_the_start_closes_the_incident(incidentctl_bin, cli_env, tmp_path,
                                                                               engine):
    # A person resolves the alert with an end time before the start of the firing Alertmanager
    # already sent: Alertmanager sends it resolved with startsAt = endsAt = that end, once.
    with ServeProcess(incidentctl_bin, serve_env(cli_env), tmp_path / "serve.log") as server, AlertmanagerProcess(
            ALERTMANAGER, tmp_path, server.url + "/webhook/alertmanager") as am:
        amtool_add(am)
        rows = wait_for_rows(engine, lambda rs: any(r["status"] == "firing" for r in rs))
        assert rows, am.log()
        amtool_add(am, end=datetime.now(timezone.utc) - timedelta(minutes=10))
        rows = wait_for_rows(engine, lambda rs: any(r["status"] == "resolved" for r in rs))
    (firing,) = [json.loads(r["body"])["alerts"][0] for r in rows if r["status"] == "firing"]
    (resolved,) = [json.loads(r["body"])["alerts"][0] for r in rows if r["status"] == "resolved"]
    assert resolved["startsAt"] == resolved["endsAt"] < firing["startsAt"]  # the shape this is about

    summary = json.loads(run_cli("process", "-o", "json", env=cli_env, check=True).stdout)
    assert (summary["opened"], summary["resolved"], summary["ignored"], summary["errors"]) == (1, 1, 0, 0)
    (incident,) = json.loads(run_cli("list", "--status", "all", "-o", "json", env=cli_env, check=True).stdout)
    assert (incident["status"], incident["resolution"]) == ("resolved", "auto")
    shown = json.loads(run_cli("show", str(incident["id"]), "-o", "json", env=cli_env, check=True).stdout)
    (resolve,) = [e for e in shown["events"] if e["kind"] == "alert_resolved"]
    assert "the sender resolved the firing episode" in resolve["detail"]["reason"]
