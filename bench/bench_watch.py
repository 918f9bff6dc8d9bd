"""Benchmark of one `incidentctl watch` refresh over 1M incidents on MariaDB/MySQL.

Uses the list database of bench/bench_process.py (N incidents, a few hundred unresolved, their
label indexes): with BENCH_LIST_KEEP=1 an existing `bench_process_list_<N>` is reused (and a new
one kept), otherwise a scratch one is filled and dropped. Times the refresh's one statement
(incidents/overview.py, the core call, median and p95 of 20) with the `list` filters, and one
`incidentctl watch --count 1` run. Target: a refresh ≤ 100 ms. BENCH_EXPLAIN=1 prints the plan.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.bench_process import (  # noqa: E402
    BIN,
    KEEP_LIST_DATABASE,
    LIST_INCIDENTS,
    SERVER,
    drop_database,
    fill_list_database,
    fresh_database,
)
from bench.common import machine  # noqa: E402
from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.incidents.listing import IncidentFilter  # noqa: E402
from incidentctl.incidents.overview import overview, overview_query  # noqa: E402

CASES = {
    "default (open + acknowledged)": IncidentFilter(),
    "--status open": IncidentFilter(status="open"),
    "--severity critical": IncidentFilter(severity="critical"),
    "--cluster c3 --namespace ns13": IncidentFilter(cluster="c3", namespace="ns13"),
    "--label team=t7": IncidentFilter(labels=(("team", "t7"),)),
    "--limit 500": IncidentFilter(limit=500),
}


def database() -> tuple[str, bool]:
    """(url, filled here and to drop)."""
    name = f"bench_process_list_{LIST_INCIDENTS}"
    if KEEP_LIST_DATABASE:
        admin = create_engine(SERVER)
        with admin.connect() as conn:
            filled = conn.execute(text("SELECT table_rows FROM information_schema.tables WHERE table_schema = "
                                       f"'{name}' AND table_name = 'series_labels'")).scalar()
        admin.dispose()
        if filled:
            return f"{SERVER}/{name}", False
        url = fresh_database(f"list_{LIST_INCIDENTS}", unique=False)
    else:
        url = fresh_database("w")
    engine = make_engine(url)
    fill_list_database(engine)
    engine.dispose()
    return url, not KEEP_LIST_DATABASE


def main() -> None:
    print(machine())
    url, drop = database()
    engine = make_engine(url)
    with engine.connect() as conn:
        total, unresolved = conn.execute(text("SELECT COUNT(*), SUM(status <> 'resolved') FROM incidents")).one()
    print(f"watch refresh: {total:,} incidents, {int(unresolved):,} unresolved (MariaDB at {SERVER})")
    for name, flt in CASES.items():
        times = []
        for _ in range(20):
            t = time.perf_counter()
            ov = overview(engine, flt)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(f"  {name:<34} median {statistics.median(times):6.1f} ms, p95 {times[18]:6.1f} ms "
              f"({len(ov.rows)} rows shown of {ov.total})")
        if os.environ.get("BENCH_EXPLAIN"):
            sql = str(overview_query(flt).compile(engine, compile_kwargs={"literal_binds": True}))
            with engine.connect() as conn:
                for row in conn.execute(text("EXPLAIN " + sql)).mappings():
                    print(f"    table={row['table']} type={row['type']} key={row['key']} rows={row['rows']} "
                          f"extra={row['Extra']}")
    env = {**os.environ, "INCIDENTCTL_DATABASE_URL": url}
    t = time.perf_counter()
    subprocess.run([str(BIN), "watch", "--count", "1"], env=env, check=True, capture_output=True)
    print(f"  `incidentctl watch --count 1` wall time incl. Python start: {(time.perf_counter() - t) * 1000:.0f} ms")
    engine.dispose()
    if drop:
        drop_database(url)


if __name__ == "__main__":
    main()
