"""Retention on MariaDB: `purge` of old raw rows in batches, while a writer keeps inserting.

Prints the purge rate, the slowest batch (the longest any delete transaction held its row
locks) and the slowest concurrent single-row INSERT+COMMIT, which shows whether the purge
blocked the receiver's writes. Env: BENCH_PURGE_ROWS (default 50000), BENCH_PURGE_BATCH (1000).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import FIXTURES, drop_database, machine, scratch_database  # noqa: E402
from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.db.migrations import upgrade  # noqa: E402
from incidentctl.db.schema import grafana_alerts, incident_events, incidents  # noqa: E402
from incidentctl.ingest.archive import insert_raw_alerts, raw_alert  # noqa: E402
from incidentctl.ops.retention import purge  # noqa: E402

ROWS = int(os.environ.get("BENCH_PURGE_ROWS", "50000"))
BATCH = int(os.environ.get("BENCH_PURGE_BATCH", "1000"))
DB = "incidentctl_bench_retention"


def seed(engine, now) -> None:
    body = (FIXTURES / "grafana" / "grafana9_zulip_firing_3alerts_2rules.json").read_bytes()
    old = now - timedelta(days=200)
    done = 0
    while done < ROWS:
        n = min(2000, ROWS - done)
        with engine.begin() as conn:
            ids = insert_raw_alerts(conn, [raw_alert(body, received_at=old + timedelta(seconds=done + i))
                                           for i in range(n)])
            conn.execute(grafana_alerts.update().where(grafana_alerts.c.id.in_(ids)).values(processed_at=now))
            # One open incident per 2,000 rows names one of them: kept.
            incident_id = conn.execute(incidents.insert(), {
                "fingerprint": f"fp{done}", "active_key": f"fp{done}", "status": "open", "title": "bench",
                "severity": "warning", "opened_at": old, "last_alert_at": old}).inserted_primary_key[0]
            conn.execute(incident_events.insert(), {"incident_id": incident_id, "kind": "opened", "at": old,
                                                    "actor": "incidentctl", "raw_alert_id": ids[0]})
        done += n


def main() -> None:
    url = scratch_database(DB)
    engine = make_engine(url, pool_size=4)
    try:
        upgrade(engine)
        now = datetime.now(timezone.utc)
        started = time.perf_counter()
        seed(engine, now)
        print(f"{machine()}; seeded {ROWS} old processed rows in {time.perf_counter() - started:.1f} s")
        body = b'{"status": "firing"}'
        stop, latencies = threading.Event(), []

        def writer():
            while not stop.is_set():
                t0 = time.perf_counter()
                with engine.begin() as conn:
                    insert_raw_alerts(conn, [raw_alert(body, received_at=datetime.now(timezone.utc))])
                latencies.append(time.perf_counter() - t0)

        thread = threading.Thread(target=writer)
        thread.start()
        marks = [time.perf_counter()]
        started = time.perf_counter()
        summary = purge(engine, timedelta(days=90), now, batch=BATCH,
                        progress=lambda done, total: marks.append(time.perf_counter()))
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join()
        batches = [b - a for a, b in zip(marks, marks[1:], strict=False)]
        print(f"purge: {summary.deleted} rows ({summary.bytes / 1e6:.1f} MB) in {elapsed:.2f} s = "
              f"{summary.deleted / elapsed:,.0f} rows/s; {summary.batches} batches of {BATCH}, "
              f"slowest {max(batches) * 1000:.0f} ms, median {sorted(batches)[len(batches) // 2] * 1000:.0f} ms; "
              f"kept {summary.kept_open} of open incidents")
        latencies.sort()
        print(f"concurrent INSERT+COMMIT during purge: {len(latencies)} writes, "
              f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
              f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
    finally:
        engine.dispose()
        drop_database(DB)


if __name__ == "__main__":
    main()
