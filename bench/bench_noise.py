"""`incidentctl noise --since 30d` over the bench month on MariaDB.

1. The month of bench_history.py (BENCH_HISTORY_ALERTS alerts, default 1,000,000, over the last
   30 days, Grafana unified bodies), replayed with `incidentctl replay --process` into a fresh
   database; a few hundred incidents are then acknowledged by a person, so "acted on" is not
   empty. BENCH_NOISE_REUSE=1 keeps a database an earlier run left (BENCH_NOISE_KEEP=1).
2. `incidentctl noise --since 30d -o json` as a child process (wall time incl. interpreter start,
   peak RSS), then `build_noise` in-process, best of 3.

Target (issue 18): ≤ 10 s.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench_history import ALERTS, DAYS, WORK, generate, run_child  # noqa: E402
from common import INCIDENTCTL, MYSQL_SERVER_URL, drop_database, machine, scratch_database  # noqa: E402
from incidentctl.config import load_settings  # noqa: E402
from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.db.migrations import upgrade  # noqa: E402
from incidentctl.db.schema import grafana_alerts, incidents  # noqa: E402
from incidentctl.incidents.actions import transition  # noqa: E402

DB = "incidentctl_bench_noise"
ACKS = 300


def build(url: str) -> None:
    source = WORK / f"history-{ALERTS}.jsonl.gz"
    end = datetime.now(timezone.utc)
    started = time.perf_counter()
    notifications = generate(source, ALERTS, end)
    print(f"generated {ALERTS:,} alerts in {notifications:,} notifications: {time.perf_counter() - started:.0f} s")
    engine = make_engine(scratch_database(DB))
    upgrade(engine)
    engine.dispose()
    seconds, rss, out = run_child([INCIDENTCTL, "replay", str(source), "--process", "-o", "json"],
                                  {**os.environ, "INCIDENTCTL_DATABASE_URL": url})
    print(f"replay --process: {json.loads(out)['stored']:,} rows in {seconds:.0f} s, peak RSS {rss:.0f} MB")
    engine = make_engine(url)
    with engine.connect() as conn:
        ids = list(conn.scalars(select(incidents.c.id).where(incidents.c.status == "open")
                                .order_by(incidents.c.id).limit(ACKS)))
    now = datetime.now(timezone.utc)
    for incident_id in ids:
        transition(engine, "ack", incident_id, by="bench", note=None, now=now)
    engine.dispose()
    print(f"acknowledged {len(ids)} incidents as a person")


def main() -> int:
    print(f"noise: {machine()} (shared with other work while measured)")
    WORK.mkdir(exist_ok=True)
    url = make_url(MYSQL_SERVER_URL).set(database=DB).render_as_string(hide_password=False)
    reuse = os.environ.get("BENCH_NOISE_REUSE") == "1"
    if reuse:
        engine = make_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(grafana_alerts)).scalar_one()
        engine.dispose()
        print(f"reusing {DB}: {rows:,} raw rows")
    else:
        build(url)
    env = {**os.environ, "INCIDENTCTL_DATABASE_URL": url}
    try:
        from incidentctl.history.noise import build_noise  # noqa: E402

        seconds, rss, out = run_child([INCIDENTCTL, "noise", "--since", f"{DAYS}d", "-o", "json"], env)
        data = json.loads(out)
        suggestions = [s for r in data["rules"] for s in r["suggestions"]]
        print(f"noise --since {DAYS}d: {seconds:.2f} s wall incl. interpreter start, peak RSS {rss:.0f} MB; "
              f"{len(data['rules'])} rules, {data['noisy']} noisy, {len(suggestions)} suggestions "
              f"({sum(s['backtested'] for s in suggestions)} backtested), {data['backtest']['rows']:,} raw rows "
              f"replayed (target ≤ 10 s)")
        seconds, _, _ = run_child([INCIDENTCTL, "--help"], env)
        print(f"               (`incidentctl --help` alone takes {seconds:.2f} s)")
        seconds, rss, out = run_child([INCIDENTCTL, "noise", "--since", f"{DAYS}d", "--replay", "1",
                                       "--replay-rows", "10000000", "-o", "json"], env)
        forced = json.loads(out)["backtest"]
        print(f"noise with one grouping replayed ({', '.join(forced['replayed_rules'])}): {seconds:.2f} s wall, "
              f"{forced['rows']:,} raw rows replayed, peak RSS {rss:.0f} MB")
        engine = make_engine(url)
        settings = load_settings({"INCIDENTCTL_DATABASE_URL": url})
        timings = []
        for _ in range(3):
            now = datetime.now(timezone.utc)
            started = time.perf_counter()
            build_noise(engine, settings, since=now - timedelta(days=DAYS), until=now)
            timings.append(time.perf_counter() - started)
        engine.dispose()
        print(f"build_noise:   {min(timings):.2f} s best of 3 in-process (first {timings[0]:.2f} s)")
    finally:
        if os.environ.get("BENCH_NOISE_KEEP") != "1":
            drop_database(DB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
