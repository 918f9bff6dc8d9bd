"""Slack digest and notify figures on MariaDB: building a digest of 500 changes (pure), and one
notify run delivering N pending changes to a local fake Slack (claim, silences, digest, POST,
mark). Env: BENCH_NOTIFY_ROWS (default 2000).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
import requests  # noqa: E402

from common import drop_database, scratch_database  # noqa: E402
from incidentctl.config import load_settings  # noqa: E402
from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.db.migrations import upgrade  # noqa: E402
from incidentctl.db.schema import incident_alerts, incidents, notifications  # noqa: E402
from incidentctl.notify.delivery import notify_pending  # noqa: E402
from incidentctl.notify.digest import Change, World, build_digest  # noqa: E402
from tests.support.factories import T0  # noqa: E402
from tests.support.slack_fake import FakeSlack  # noqa: E402

ROWS = int(os.environ.get("BENCH_NOTIFY_ROWS", "2000"))
DB = "incidentctl_bench_notify"


def bench_digest() -> None:
    changes = [Change(i, i, "opened", "critical", T0, f"Incident {i} " + "x" * 80, cluster="prod",
                      namespace="web", service="api", opened_at=T0, alert_count=3,
                      links={"rule": "https://grafana.example/alerting/grafana/abc/view"}) for i in range(500)]
    rounds = 200
    start = time.perf_counter()
    for _ in range(rounds):
        build_digest(changes, World({"critical": 500}), T0 + timedelta(hours=1))
    per = (time.perf_counter() - start) / rounds
    print(f"build_digest, 500 changes: {per * 1000:.2f} ms per digest")


def seed(engine, n: int) -> None:
    incident_rows = [dict(fingerprint=f"fp{i}", active_key=f"fp{i}", status="open", title=f"Incident {i}",
                          severity="critical" if i % 5 == 0 else "warning", alertname="A", cluster="prod",
                          namespace="web", service=f"s{i % 50}", group_labels={},
                          common_labels={"service": f"s{i % 50}"},
                          opened_at=T0, last_alert_at=T0, alert_count=1, series_count=1, series_firing=1,
                          reopen_count=0) for i in range(n)]
    with engine.begin() as conn:
        conn.execute(incidents.insert(), incident_rows)
        ids = [r.id for r in conn.execute(incidents.select().order_by(incidents.c.id))]
        conn.execute(incident_alerts.insert(), [dict(
            incident_id=i, alert_fingerprint="a", status="firing", severity="critical", labels={}, annotations={},
            generator_url="https://grafana.example/rule", last_event_at=T0, first_seen_at=T0, last_seen_at=T0,
            times_seen=1) for i in ids])
        conn.execute(notifications.insert(), [dict(incident_id=i, change="opened", severity="critical",
                                                   created_at=T0, state="pending", attempts=0) for i in ids])


def bench_notify() -> None:
    url = scratch_database(DB)
    engine = make_engine(url)
    try:
        upgrade(engine)
        seed(engine, ROWS)
        with FakeSlack() as slack, requests.Session() as session:
            settings = load_settings(environ={"SLACK_WEBHOOK_URL": slack.url("ok")})
            start = time.perf_counter()
            summary = notify_pending(engine, settings, session, clock=lambda: T0 + timedelta(minutes=1))
            took = time.perf_counter() - start
        print(f"notify on MariaDB, {ROWS} pending changes → {summary.sent} sent in one digest: "
              f"{took * 1000:.0f} ms ({ROWS / took:,.0f} changes/s)")
    finally:
        engine.dispose()
        drop_database(DB)


if __name__ == "__main__":
    print(f"cpus: {os.cpu_count()} (machine shared with other sessions; figures are indicative)")
    bench_digest()
    bench_notify()
