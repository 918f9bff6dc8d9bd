"""Benchmark of `incidentctl process` and `incidentctl list` on MariaDB/MySQL.

1. Generates a realistic Alertmanager history (tests/support/synthetic_history.py: ≥ 2,000 series over
   clusters/namespaces/services, repeats every 5 min, flapping series, resolves) straight into
   `grafana_alerts`, twice (a small and a large backlog), and runs the real `incidentctl process`
   on each: alerts/s and the child's peak RSS (flat = the same at both sizes).
2. Fills `incidents` with N synthetic incidents (INSERT … SELECT doubling) and their label
   indexes (common labels; the labels of two series each: the common ones, a pod each and an
   instance each, shared by ~400 incidents) and times the list queries (core call, median of 5)
   with their EXPLAIN plans, plus one `incidentctl list` run.

Sizes (env): BENCH_PROCESS_SMALL=50000, BENCH_PROCESS_LARGE=500000 (alerts),
BENCH_PROCESS_SERIES=2000, BENCH_LIST_INCIDENTS=1000000; BENCH_PROCESS_ONLY=process|list runs
one half; BENCH_EXPLAIN=1 prints the query plans; BENCH_LIST_KEEP=1 keeps the list database
(`bench_process_list_<N>`, filled in ~10 min at 1M) and reuses it in the next run. Server:
INCIDENTCTL_BENCH_MYSQL_URL (default mysql+pymysql://root@127.0.0.1:3306). Targets: ≥ 10,000 alerts/s, RSS ≤ 150 MB and
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

from sqlalchemy import create_engine, text  # noqa: E402

from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.db.migrations import upgrade  # noqa: E402
from incidentctl.db.schema import grafana_alerts  # noqa: E402
from incidentctl.incidents.listing import IncidentFilter, list_incidents  # noqa: E402
from incidentctl.ingest.archive import raw_alert  # noqa: E402
from tests.support.synthetic_history import history  # noqa: E402

SERVER = os.environ.get("INCIDENTCTL_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
SMALL = int(os.environ.get("BENCH_PROCESS_SMALL", "50000"))
LARGE = int(os.environ.get("BENCH_PROCESS_LARGE", "500000"))
SERIES = int(os.environ.get("BENCH_PROCESS_SERIES", "2000"))
LIST_INCIDENTS = int(os.environ.get("BENCH_LIST_INCIDENTS", "1000000"))
KEEP_LIST_DATABASE = os.environ.get("BENCH_LIST_KEEP") == "1"
BIN = Path(sys.executable).parent / "incidentctl"


def fresh_database(label: str, unique: bool = True) -> str:
    name = f"bench_process_{label}_{os.getpid()}" if unique else f"bench_process_{label}"
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
  CONCAT('{"alertname":"', an, '","cluster":"', cl, '","namespace":"', ns, '","service":"', sv,
         '","team":"t', n % 40, '"}'),
  ts, ts + INTERVAL 5 MINUTE, ts + INTERVAL 20 MINUTE, 'incidentctl', 3, 1, 0, 0
FROM (SELECT seq AS n, MD5(seq) AS fp, CONCAT('Alert', seq % 30) AS an, CONCAT('c', seq % 10) AS cl,
        CONCAT('ns', seq % 50) AS ns, CONCAT('svc', seq % 200) AS sv,
        ELT(1 + seq % 5, 'critical', 'error', 'warning', 'info', 'none') AS sev,
        TIMESTAMP('2025-01-01') + INTERVAL (seq * 31) SECOND AS ts
      FROM seq_1_to_{n}) AS g
"""


def bench_list() -> None:
    if KEEP_LIST_DATABASE:
        name = f"bench_process_list_{LIST_INCIDENTS}"
        admin = create_engine(SERVER)
        with admin.connect() as conn:  # filled by an earlier run: the last table filled has rows
            filled = conn.execute(text("SELECT table_rows FROM information_schema.tables WHERE table_schema = "
                                       f"'{name}' AND table_name = 'series_labels'")).scalar()
        admin.dispose()
        if filled:
            url = f"{SERVER}/{name}"
            engine = make_engine(url)
        else:
            url = fresh_database(f"list_{LIST_INCIDENTS}", unique=False)
            engine = make_engine(url)
            fill_list_database(engine)
    else:
        url = fresh_database("l")
        engine = make_engine(url)
        fill_list_database(engine)
    time_list_queries(engine, url)
    engine.dispose()
    if not KEEP_LIST_DATABASE:
        drop_database(url)


def fill_list_database(engine) -> None:
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
        fill_series_labels(conn)
        conn.execute(text("ANALYZE TABLE incidents"))
        conn.execute(text("ANALYZE TABLE incident_labels"))
        conn.execute(text("ANALYZE TABLE series_labels"))
        series_rows = conn.execute(text("SELECT COUNT(*) FROM series_labels")).scalar()
    print(f"list: {LIST_INCIDENTS:,} incidents, {series_rows:,} series_labels rows "
          f"(filled in {time.perf_counter() - t:.1f}s)")


def time_list_queries(engine, url: str) -> None:
    now = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=LIST_INCIDENTS * 31)
    pod_of = LIST_INCIDENTS * 7 // 9  # an old incident's pod
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
        "--series-label pod=P --status all (one incident)": IncidentFilter(
            series_labels=(("pod", f"pod-{pod_of}-1"),), status="all"),
        "--series-label pod=P (one incident, resolved: no match)": IncidentFilter(
            series_labels=(("pod", f"pod-{pod_of}-1"),)),
        "--series-label pod=nobody --status all (no match)": IncidentFilter(
            series_labels=(("pod", "nobody"),), status="all"),
        "--series-label instance=host42:9100": IncidentFilter(series_labels=(("instance", "host42:9100"),)),
        "--series-label instance=host42:9100 --status all": IncidentFilter(
            series_labels=(("instance", "host42:9100"),), status="all"),
        "--series-label instance=host42:9100 --cluster c2 --status all": IncidentFilter(
            series_labels=(("instance", "host42:9100"),), cluster="c2", status="all"),
        "--series-label instance=host42:9100 --cluster c3 --status all (no match)": IncidentFilter(
            series_labels=(("instance", "host42:9100"),), cluster="c3", status="all"),
        "--series-label instance=host42:9100 --label team=t7 --status all (no match)": IncidentFilter(
            series_labels=(("instance", "host42:9100"),), labels=(("team", "t7"),), status="all"),
        "--series-label instance=host42:9100 --series-label pod=P --status all (no match)": IncidentFilter(
            series_labels=(("instance", "host42:9100"), ("pod", f"pod-{pod_of}-1")), status="all"),
        "--series-label cluster=c3": IncidentFilter(series_labels=(("cluster", "c3"),)),
        "--series-label cluster=c3 --status all": IncidentFilter(series_labels=(("cluster", "c3"),), status="all"),
        "--series-label team=t7 --series-label cluster=c3 --status all (no match)": IncidentFilter(
            series_labels=(("team", "t7"), ("cluster", "c3")), status="all"),
        "--series-label team=t7 --cluster c4 --status all (no match)": IncidentFilter(
            series_labels=(("team", "t7"),), cluster="c4", status="all"),
        "--series-label cluster=c3 --severity critical --status all (no match)": IncidentFilter(
            series_labels=(("cluster", "c3"),), severity="critical", status="all"),
    }
    for name, flt in cases.items():
        times = []
        for _ in range(5):
            t = time.perf_counter()
            rows = list_incidents(engine, flt)
            times.append((time.perf_counter() - t) * 1000)
        print(f"  {name:<82} {statistics.median(times):7.1f} ms (median of 5, {len(rows)} rows)")
    if os.environ.get("BENCH_EXPLAIN"):
        explain(engine, cases)
    env = {**os.environ, "INCIDENTCTL_DATABASE_URL": url}
    t = time.perf_counter()
    subprocess.run([str(BIN), "list", "--cluster", "c3", "-o", "json"], env=env, check=True, capture_output=True)
    print(f"  `incidentctl list --cluster c3 -o json` wall time incl. Python start: "
          f"{(time.perf_counter() - t) * 1000:.0f} ms")


# The labels of each incident's two series (series_labels, as `process` keeps it): the common
# labels, pod-<id>-0 and pod-<id>-1, and instances host<id % 5000> and host<(id + 1) % 5000>.
SERIES_LABELS = """
INSERT INTO series_labels (incident_id, name, value, opened_at)
SELECT STRAIGHT_JOIN i.id, n.name, CASE n.name
    WHEN 'alertname' THEN i.alertname WHEN 'cluster' THEN i.cluster WHEN 'namespace' THEN i.namespace
    WHEN 'service' THEN i.service WHEN 'team' THEN JSON_VALUE(i.common_labels, '$.team')
    WHEN 'pod' THEN CONCAT('pod-', i.id, '-', n.k)
    ELSE CONCAT('host', (i.id + n.k) % 5000, '\\:9100') END,  -- text() reads \\: as a colon
  i.opened_at
FROM incidents AS i JOIN (SELECT 'alertname' AS name, 0 AS k UNION ALL SELECT 'cluster', 0 UNION ALL
  SELECT 'instance', 0 UNION ALL SELECT 'instance', 1 UNION ALL SELECT 'namespace', 0 UNION ALL
  SELECT 'pod', 0 UNION ALL SELECT 'pod', 1 UNION ALL SELECT 'service', 0 UNION ALL SELECT 'team', 0) AS n
"""


def fill_series_labels(conn) -> None:
    """series_labels in primary-key order, its pair index built afterwards (far faster than
    keeping it up to date through millions of inserts)."""
    conn.execute(text("SET SESSION foreign_key_checks = 0"))
    conn.execute(text("DROP INDEX ix_series_labels_pair ON series_labels"))
    conn.execute(text(SERIES_LABELS))
    conn.execute(text("CREATE INDEX ix_series_labels_pair ON series_labels (name, value, opened_at, incident_id)"))
    conn.execute(text("SET SESSION foreign_key_checks = 1"))


def explain(engine, cases) -> None:
    """Prints EXPLAIN of each list query (for docs/DATABASE.md)."""
    from incidentctl.incidents import listing as store
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
