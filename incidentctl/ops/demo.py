"""`make demo`: the main job end to end, on a throwaway embedded database.

Starts the real receiver (`incidentctl serve`) on the embedded SQLite default, posts a short
story of alerts to it over HTTP — Grafana and Alertmanager bodies, a repeat, an escalation, a
flap, a resolve and a body no parser knows — and shows what was archived.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
from sqlalchemy import Engine, select

from incidentctl.db.schema import grafana_alerts

ZERO_TIME = "0001-01-01T00:00:00Z"
GRAFANA_URL = "https://grafana.example.com"


@dataclass(frozen=True)
class Sample:
    name: str
    body: bytes
    user_agent: str


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _alert(status: str, labels: dict, summary: str, starts: datetime, ends: datetime | None, *,
           grafana: bool) -> dict:
    fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
    alert = {
        "status": status, "labels": labels, "annotations": {"summary": summary},
        "startsAt": _iso(starts), "endsAt": _iso(ends) if ends else ZERO_TIME,
        "generatorURL": f"{GRAFANA_URL}/alerting/grafana/{labels['alertname'].lower()}/view" if grafana else "",
        "fingerprint": fingerprint,
    }
    if grafana:
        alert.update({
            "silenceURL": f"{GRAFANA_URL}/alerting/silence/new?matcher=alertname%3D{labels['alertname']}",
            "dashboardURL": f"{GRAFANA_URL}/d/shop-overview", "panelURL": f"{GRAFANA_URL}/d/shop-overview?viewPanel=4",
        })
    return alert


def _envelope(alerts: list[dict], *, grafana: bool) -> bytes:
    firing = [a for a in alerts if a["status"] == "firing"]
    common = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)}
    doc = {
        "receiver": "incidentctl", "status": "firing" if firing else "resolved", "alerts": alerts,
        "groupLabels": {"alertname": common.get("alertname", "")}, "commonLabels": common,
        "commonAnnotations": {}, "externalURL": GRAFANA_URL if grafana else "http://alertmanager:9093",
        "version": "1" if grafana else "4", "groupKey": f'{{}}:{{alertname="{common.get("alertname", "")}"}}',
        "truncatedAlerts": 0,
    }
    if grafana:
        doc.update({"orgId": 1, "title": f"[{'FIRING' if firing else 'RESOLVED'}:{len(alerts)}]",
                    "state": "alerting" if firing else "ok", "message": ""})
    return (json.dumps(doc, indent=2) + "\n").encode()


def demo_story(now: datetime) -> list[Sample]:
    """The alerts `make demo` sends, oldest first, with times relative to `now`."""
    m = lambda minutes: now - timedelta(minutes=minutes)  # noqa: E731
    shop = {"cluster": "prod-eu", "namespace": "shop", "service": "checkout"}
    latency = [dict(alertname="HighLatency", severity="warning", pod=f"checkout-{p}", **shop) for p in "ab"]
    escalated = dict(alertname="HighLatency", severity="critical", pod="checkout-c", **shop)
    disk = {"alertname": "DiskAlmostFull", "severity": "critical", "cluster": "prod-eu", "namespace": "db",
            "service": "mysql", "instance": "db-1:9100"}
    crash = {"alertname": "KubePodCrashLooping", "severity": "warning", "cluster": "prod-us",
             "namespace": "payments", "service": "ledger", "pod": "ledger-7d9f"}
    g = dict(grafana=True)
    story = [
        ("grafana: HighLatency on checkout, 2 pods", _envelope(
            [_alert("firing", labels, "p99 latency above 800ms", m(42), None, **g) for labels in latency], **g),
         "Grafana"),
        ("alertmanager: DiskAlmostFull on mysql", _envelope(
            [_alert("firing", disk, "/var/lib/mysql 93% full", m(38), None, grafana=False)], grafana=False),
         "Alertmanager/0.27.0"),
        ("grafana: KubePodCrashLooping on ledger", _envelope(
            [_alert("firing", crash, "ledger restarting", m(50), None, **g)], **g), "Grafana"),
        ("grafana: KubePodCrashLooping resolved", _envelope(
            [_alert("resolved", crash, "ledger restarting", m(50), m(45), **g)], **g), "Grafana"),
        ("grafana: HighLatency repeat (repeat_interval)", _envelope(
            [_alert("firing", labels, "p99 latency above 800ms", m(42), None, **g) for labels in latency], **g),
         "Grafana"),
        ("grafana: HighLatency escalates, a third pod is critical", _envelope(
            [_alert("firing", labels, "p99 latency above 800ms", m(42), None, **g) for labels in latency]
            + [_alert("firing", escalated, "p99 latency above 2s", m(20), None, **g)], **g), "Grafana"),
        ("grafana: KubePodCrashLooping fires again (a flap)", _envelope(
            [_alert("firing", crash, "ledger restarting", m(25), None, **g)], **g), "Grafana"),
        ("alertmanager: DiskAlmostFull resolved", _envelope(
            [_alert("resolved", disk, "/var/lib/mysql 93% full", m(38), m(11), grafana=False)], grafana=False),
         "Alertmanager/0.27.0"),
        ("a custom template body no parser knows", b'{"text": "disk almost full on db-1"}', "Grafana"),
    ]
    return [Sample(name, body, agent) for name, body, agent in story]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DemoReceiver:
    """`incidentctl serve` in a child process on a free port, for the demo's own database."""

    def __init__(self, sqlite_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("INCIDENTCTL_", "DB_", "SLACK_"))}
        env.update(INCIDENTCTL_SQLITE_PATH=str(sqlite_path), INCIDENTCTL_LOG_LEVEL="WARNING")
        self.proc = subprocess.Popen([sys.executable, "-m", "incidentctl", "serve", "--port", str(self.port)], env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the demo receiver did not start")

    def post(self, sample: Sample) -> requests.Response:
        return requests.post(self.url + "/webhook/grafana", data=sample.body, timeout=10,
                             headers={"Content-Type": "application/json", "User-Agent": sample.user_agent})

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def archived_rows(engine: Engine) -> list[dict]:
    columns = [c for c in grafana_alerts.c if c.name != "body"]
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(*columns).order_by(grafana_alerts.c.id))]


def demo_database_path() -> Path:
    return Path(".demo") / "incidentctl.db"
