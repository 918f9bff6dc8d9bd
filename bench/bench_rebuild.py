"""Benchmark of `incidentctl rebuild` on MariaDB/MySQL.

Fills `grafana_alerts` with a realistic Alertmanager history (tests/support/synthetic_history.py, as
bench_process.py does), processes it with the real `incidentctl process`, acknowledges a
thousand incidents, then times the real `incidentctl rebuild` as a child process (wall time,
alerts/s, peak RSS from os.wait4): once under the configured rules (every row rewritten as it
was) and once under coarser rules (`--group-by alertname,cluster`). `--dry-run` is timed too.

Env: BENCH_REBUILD_ALERTS (default 300000), BENCH_REBUILD_SERIES (2000), server
INCIDENTCTL_BENCH_MYSQL_URL. No target is set by an issue; the figures go to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

ALERTS = int(os.environ.get("BENCH_REBUILD_ALERTS", "300000"))
os.environ.setdefault("BENCH_PROCESS_SERIES", os.environ.get("BENCH_REBUILD_SERIES", "2000"))
sys.path.insert(0, str(Path(__file__).parent))
from sqlalchemy import select  # noqa: E402

from bench_history import run_child  # noqa: E402
from bench_process import drop_database, fill_history, fresh_database  # noqa: E402
from common import INCIDENTCTL, machine  # noqa: E402
from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.db.schema import incidents  # noqa: E402
from incidentctl.incidents.actions import transition  # noqa: E402


def acknowledge(url: str, count: int) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        ids = list(conn.scalars(select(incidents.c.id).where(incidents.c.status == "open")
                                .order_by(incidents.c.id).limit(count)))
    now = datetime.now(timezone.utc)
    for incident_id in ids:
        transition(engine, "ack", incident_id, by="bench", note=None, now=now)
    engine.dispose()
    return len(ids)


def main() -> int:
    print(f"rebuild: {ALERTS:,} alerts on MariaDB ({machine()})")
    url = fresh_database("rebuild")
    env = {**os.environ, "INCIDENTCTL_DATABASE_URL": url}
    try:
        rows, stored = fill_history(url, ALERTS)
        seconds, rss, _ = run_child([INCIDENTCTL, "process", "-o", "json"], env)
        print(f"  setup: {rows:,} rows, {stored:,} alerts, processed in {seconds:.1f}s; "
              f"acknowledged {acknowledge(url, 1000)} incidents")
        for label, args in (("dry run, coarser rules", ["--group-by", "alertname,cluster", "--dry-run"]),
                            ("configured rules", []),
                            ("coarser rules", ["--group-by", "alertname,cluster"])):
            seconds, rss, out = run_child([INCIDENTCTL, "rebuild", "--yes", "-o", "json", *args], env)
            s = json.loads(out)
            print(f"  {label:<24} {seconds:6.1f}s = {s['alerts'] / seconds:7,.0f} alerts/s, peak RSS {rss:5.1f} MB; "
                  f"incidents {s['incidents_before']:,} → {s['incidents_after']:,}, ids kept {s['ids_kept']:,}, "
                  f"actions carried {s['actions_carried']}/{s['actions']}")
    finally:
        drop_database(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
