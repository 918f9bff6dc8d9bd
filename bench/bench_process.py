"""Benchmark of `incidentctl process` and `incidentctl list` on MariaDB/MySQL.

1. Generates a realistic Alertmanager history (tests/history.py: ≥ 2,000 series over
   clusters/namespaces/services, repeats every 5 min, flapping series, resolves) straight into
   `grafana_alerts`, twice (a small and a large backlog), and runs the real `incidentctl process`
   on each: alerts/s and the child's peak RSS (flat = the same at both sizes).
2. Fills `incidents` with N synthetic incidents (INSERT … SELECT doubling) and times the list
   queries (core call, median of 5) with their EXPLAIN plans, plus one `incidentctl list` run.

Sizes (env): BENCH_PROCESS_SMALL=50000, BENCH_PROCESS_LARGE=500000 (alerts),
BENCH_PROCESS_SERIES=2000, BENCH_LIST_INCIDENTS=1000000; BENCH_PROCESS_ONLY=process|list runs
one half; BENCH_EXPLAIN=1 prints the query plans. Server: INCIDENTCTL_BENCH_MYSQL_URL
(default mysql+pymysql://root@127.0.0.1:3306). Targets: ≥ 10,000 alerts/s, RSS ≤ 150 MB and
flat, list ≤ 100 ms.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import create_engine, text  # noqa: E402

from history import history  # noqa: E402
from incidentctl.archive import raw_alert  # noqa: E402
from incidentctl.database import make_engine  # noqa: E402
from incidentctl.incidents import IncidentFilter, list_incidents  # noqa: E402
from incidentctl.migrations import upgrade  # noqa: E402
from incidentctl.schema import grafana_alerts  # noqa: E402

SERVER = os.environ.get("INCIDENTCTL_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
SMALL = int(os.environ.get("BENCH_PROCESS_SMALL", "50000"))
LARGE = int(os.environ.get("BENCH_PROCESS_LARGE", "500000"))
SERIES = int(os.environ.get("BENCH_PROCESS_SERIES", "2000"))
LIST_INCIDENTS = int(os.environ.get("BENCH_LIST_INCIDENTS", "1000000"))
BIN = Path(sys.executable).parent / "incidentctl"


def fresh_database(label: str) -> str:
    name = f"bench_process_{label}_{os.getpid()}"
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    admin.dispose()
    url = f"{SERVER}/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def drop_database(url: str) -> None:
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{url.rsplit('/', 1)[1]}`"))
    admin.dispose()


def fill_history(url: str, alerts: int) -> tuple[int, int]:
    """Inserts history rows until `alerts` alerts are stored; returns (rows, alerts)."""
    engine = make_engine(url)
    rows = stored = 0
    chunk: list[dict] = []
    with engine.begin() as conn:
        for received_at, body in history(series=SERIES, minutes=10**6, seed=11):
            chunk.append(raw_alert(body, received_at=received_at, user_agent="Alertmanager/0.27").row())
            stored += chunk[-1]["alert_count"]
            if len(chunk) == 1000 or stored >= alerts:
                conn.execute(grafana_alerts.insert(), chunk)
                rows += len(chunk)
                chunk = []
            if stored >= alerts:
                break
    engine.dispose()
    return rows, stored


def run_process(url: str) -> tuple[float, int, str]:
    """Runs `incidentctl process`; returns (seconds, peak RSS in KiB, its summary line)."""
    env = {**os.environ, "INCIDENTCTL_DATABASE_URL": url}
    start = time.perf_counter()
    proc = subprocess.Popen([str(BIN), "process"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    out = proc.stdout.read().decode().strip()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"process failed: {proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss, out


def bench_process() -> None:
    print(f"process: {SERIES} series, backlogs of {SMALL:,} and {LARGE:,} alerts (MariaDB at {SERVER})")
    for alerts in (SMALL, LARGE):
        url = fresh_database("p")
        t = time.perf_counter()
        rows, stored = fill_history(url, alerts)
        fill = time.perf_counter() - t
        seconds, rss_kib, line = run_process(url)
        print(f"  backlog {stored:>9,} alerts in {rows:>7,} rows (filled in {fill:.1f}s): "
              f"process {seconds:6.1f}s = {stored / seconds:8,.0f} alerts/s, peak RSS {rss_kib / 1024:5.1f} MB")
        print(f"    {line}")
        drop_database(url)


SEED_INCIDENTS = """
INSERT INTO incidents (fingerprint, active_key, status, resolution, title, severity, alertname, cluster, namespace,
  service, group_labels, common_labels, opened_at, last_alert_at, resolved_at, resolved_by, alert_count, series_count,
  series_firing, reopen_count)
SELECT fp, NULL, 'resolved', 'auto', CONCAT(an, ' (', cl, '/', ns, '/', sv, ')'), sev, an, cl, ns, sv,
  CONCAT('{"alertname":"', an, '","cluster":"', cl, '","namespace":"', ns, '","service":"', sv, '"}'),
  CONCAT('{"alertname":"', an, '","cluster":"', cl, '","namespace":"', ns, '","service":"', sv, '","team":"t', n % 40, '"}'),
  ts, ts + INTERVAL 5 MINUTE, ts + INTERVAL 20 MINUTE, 'incidentctl', 3, 1, 0, 0
FROM (SELECT seq AS n, MD5(seq) AS fp, CONCAT('Alert', seq % 30) AS an, CONCAT('c', seq % 10) AS cl,
        CONCAT('ns', seq % 50) AS ns, CONCAT('svc', seq % 200) AS sv,
        ELT(1 + seq % 5, 'critical', 'error', 'warning', 'info', 'none') AS sev,
        TIMESTAMP('2025-01-01') + INTERVAL (seq * 31) SECOND AS ts
      FROM seq_1_to_{n}) AS g
"""


def bench_list() -> None:
    url = fresh_database("l")
    engine = make_engine(url)
    t = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(SEED_INCIDENTS.replace("{n}", str(LIST_INCIDENTS))))  # MariaDB's sequence engine
        # A few hundred unresolved, as in a real history: the newest ones and a scattering of old ones.
        conn.execute(text("UPDATE incidents SET status = IF(id % 3 = 0, 'acknowledged', 'open'), active_key = "
                          "fingerprint, resolution = NULL, resolved_at = NULL, resolved_by = NULL, series_firing = 1 "
                          f"WHERE id > {LIST_INCIDENTS - 200} OR id % 4999 = 0"))
        # The label index `process` keeps (incident_labels), filled the same way.
        for name, value in (("alertname", "alertname"), ("cluster", "cluster"), ("namespace", "namespace"),
                            ("service", "service"), ("team", "JSON_VALUE(common_labels, '$.team')")):
            conn.execute(text(f"INSERT INTO incident_labels (incident_id, name, value, opened_at) "
                              f"SELECT id, '{name}', {value}, opened_at FROM incidents"))
        conn.execute(text("ANALYZE TABLE incidents"))
        conn.execute(text("ANALYZE TABLE incident_labels"))
    print(f"list: {LIST_INCIDENTS:,} incidents (filled in {time.perf_counter() - t:.1f}s)")
    now = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=LIST_INCIDENTS * 31)
    cases = {
        "default (unresolved)": IncidentFilter(),
        "--status all": IncidentFilter(status="all"),
        "--severity critical": IncidentFilter(severity="critical"),
        "--cluster c3 --namespace ns13": IncidentFilter(cluster="c3", namespace="ns13"),
        "--cluster c3 --namespace ns13 --status all": IncidentFilter(cluster="c3", namespace="ns13", status="all"),
        "--cluster c4 --namespace ns13 --status all (no match)": IncidentFilter(cluster="c4", namespace="ns13",
                                                                               status="all"),
        "--service svc42 --status all": IncidentFilter(service="svc42", status="all"),
        "--alertname Alert7 --status resolved": IncidentFilter(alertname="Alert7", status="resolved"),
        "--label team=t7": IncidentFilter(labels=(("team", "t7"),)),
        "--label team=t7 --status all": IncidentFilter(labels=(("team", "t7"),), status="all"),
        "--label team=nobody --status all (no match)": IncidentFilter(labels=(("team", "nobody"),), status="all"),
        "--label team=t7 --label cluster=c7 --status all": IncidentFilter(labels=(("team", "t7"), ("cluster", "c7")),
                                                                         status="all"),
        "--label team=t7 --label cluster=c3 --status all (no match)": IncidentFilter(
            labels=(("team", "t7"), ("cluster", "c3")), status="all"),
        "--label cluster=c3 --label team=t7 --status all (no match)": IncidentFilter(
            labels=(("cluster", "c3"), ("team", "t7")), status="all"),
        "--label team=t7 --label cluster=c3 --status resolved (no match)": IncidentFilter(
            labels=(("team", "t7"), ("cluster", "c3")), status="resolved"),
        "--label team=t7 --label cluster=c3 (no match)": IncidentFilter(labels=(("team", "t7"), ("cluster", "c3"))),
        "--label team=t7 --label cluster=c3 --since 7d --status all (no match)": IncidentFilter(
            labels=(("team", "t7"), ("cluster", "c3")), since=now - timedelta(days=7), status="all"),
        "--label team=t7 --cluster c7 --status all": IncidentFilter(labels=(("team", "t7"),), cluster="c7",
                                                                   status="all"),
        "--label team=t7 --cluster c4 --status all (no match)": IncidentFilter(labels=(("team", "t7"),), cluster="c4",
                                                                              status="all"),
        "--label team=t7 --cluster c4 (no match)": IncidentFilter(labels=(("team", "t7"),), cluster="c4"),
        "--label team=t7 --severity critical --status all (no match)": IncidentFilter(
            labels=(("team", "t7"),), severity="critical", status="all"),
        "--label team=t7 --service svc42 --status all (no match)": IncidentFilter(
            labels=(("team", "t7"),), service="svc42", status="all"),
        "--label team=t7 --cluster c3 --namespace ns13 --status all (no match)": IncidentFilter(
            labels=(("team", "t7"),), cluster="c3", namespace="ns13", status="all"),
        "--label cluster=c3 --severity critical --status all (no match)": IncidentFilter(
            labels=(("cluster", "c3"),), severity="critical", status="all"),
        "--since 7d --status all": IncidentFilter(since=now - timedelta(days=7), status="all"),
    }
    for name, flt in cases.items():
        times = []
        for _ in range(5):
            t = time.perf_counter()
            rows = list_incidents(engine, flt)
            times.append((time.perf_counter() - t) * 1000)
        print(f"  {name:<72} {statistics.median(times):7.1f} ms (median of 5, {len(rows)} rows)")
    if os.environ.get("BENCH_EXPLAIN"):
        explain(engine, cases)
    env = {**os.environ, "INCIDENTCTL_DATABASE_URL": url}
    t = time.perf_counter()
    subprocess.run([str(BIN), "list", "--cluster", "c3", "-o", "json"], env=env, check=True, capture_output=True)
    print(f"  `incidentctl list --cluster c3 -o json` wall time incl. Python start: "
          f"{(time.perf_counter() - t) * 1000:.0f} ms")
    engine.dispose()
    drop_database(url)


def explain(engine, cases) -> None:
    """Prints EXPLAIN of each list query (for docs/DATABASE.md)."""
    from incidentctl import incidents as store
    for name, flt in cases.items():
        query = store.list_query(flt)
        sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as conn:
            plan = conn.execute(text("EXPLAIN " + sql)).mappings().all()
        print(f"\n  EXPLAIN {name}")
        for row in plan:
            print(f"    table={row['table']} type={row['type']} key={row['key']} rows={row['rows']} "
                  f"extra={row['Extra']}")


if __name__ == "__main__":
    only = os.environ.get("BENCH_PROCESS_ONLY", "")  # "process" or "list" for a partial run
    if only in ("", "process"):
        bench_process()
    if only in ("", "list"):
        bench_list()
