"""Dashboard queries on MariaDB: every panel's SQL, expanded as Grafana would for the last 7 days,
timed on a database with a year of data. Env: BENCH_DASH_ROWS raw rows (default 100000),
BENCH_DASH_INCIDENTS (default 10000)."""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from common import drop_database, machine, scratch_database  # noqa: E402
from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.db.migrations import upgrade  # noqa: E402
from incidentctl.db.schema import grafana_alerts, incidents, notifications  # noqa: E402
from incidentctl.ops import grafana
from tests.support.grafana_mysql import expand, variable_values  # noqa: E402

ROWS = int(os.environ.get("BENCH_DASH_ROWS", "100000"))
INCIDENTS = int(os.environ.get("BENCH_DASH_INCIDENTS", "10000"))
DB = "incidentctl_bench_dashboard"
YEAR = timedelta(days=365)


def seed(engine, now, rng) -> None:
    body = b'{"receiver": "bench", "status": "firing", "alerts": []}'
    sha = hashlib.sha256(body).hexdigest()
    for start in range(0, ROWS, 5000):
        rows = []
        for _ in range(min(5000, ROWS - start)):
            at = now - YEAR * rng.random()
            rows.append({"received_at": at, "source": rng.choice(["grafana", "alertmanager"]), "body": body,
                         "body_sha256": sha, "body_size": len(body), "alert_count": rng.randint(1, 5),
                         "processed_at": at, "parse_error": "bad" if rng.random() < 0.01 else None})
        with engine.begin() as conn:
            conn.execute(grafana_alerts.insert(), rows)
    with engine.begin() as conn:
        rows, notes = [], []
        for i in range(INCIDENTS):
            opened = now - YEAR * rng.random()
            resolved = opened + timedelta(minutes=rng.randint(1, 600)) if rng.random() < 0.98 else None
            rows.append({"fingerprint": f"fp{rng.randint(0, 300)}", "active_key": None if resolved else f"a{i}",
                         "status": "resolved" if resolved else "open", "title": "bench",
                         "severity": rng.choice(["critical", "error", "warning", "info"]), "opened_at": opened,
                         "last_alert_at": opened, "acknowledged_at": opened + timedelta(minutes=rng.randint(1, 60)),
                         "resolved_at": resolved, "alert_count": rng.randint(1, 50), "reopen_count": rng.randint(0, 2)})
        conn.execute(incidents.insert(), rows)
        ids = [r for r in conn.execute(incidents.select().with_only_columns(incidents.c.id, incidents.c.opened_at))]
        for incident_id, opened in ids:
            notes.append({"incident_id": incident_id, "change": "opened", "severity": "warning", "created_at": opened,
                          "state": rng.choice(["sent"] * 20 + ["failed"]), "attempts": 1})
        conn.execute(notifications.insert(), notes)


def main() -> None:
    url = scratch_database(DB)
    engine = make_engine(url)
    rng = random.Random(7)
    try:
        upgrade(engine)
        now = datetime.now(timezone.utc)
        seed(engine, now, rng)
        print(f"{machine()}; {ROWS} raw rows, {INCIDENTS} incidents over a year; range = last 7 days, interval 1h")
        board = grafana.dashboard()
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                cursor.execute("SET time_zone = '+00:00'")
                for panel in board["panels"]:
                    for target in panel["targets"]:
                        sql = expand(target["rawSql"], now - timedelta(days=7), now, "1h", variable_values(board))
                        t0 = time.perf_counter()
                        cursor.execute(sql)
                        n = len(cursor.fetchall())
                        print(f"  {(time.perf_counter() - t0) * 1000:7.1f} ms  {n:4d} rows  "
                              f"{panel['title']} / {target['refId']}")
        finally:
            raw.close()
    finally:
        engine.dispose()
        drop_database(DB)


if __name__ == "__main__":
    main()
