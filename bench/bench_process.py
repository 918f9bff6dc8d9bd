"""Benchmark of `incidentctl process` and `incidentctl list` on MariaDB/MySQL.

1. `process` over two scenarios, each at a small and a large backlog, generated straight into
   `grafana_alerts` (a template database per backlog, copied server-side for each run):
   - steady: a realistic Alertmanager history (tests/support/synthetic_history.py: ≥ 2,000
     series over clusters/namespaces/services, repeats every 5 min, flapping series, resolves),
     where most alerts repeat a series an incident already has;
   - storm: an alert storm (tests/support/storm_history.py: bodies of a few alerts, nearly every
     alert a new series, one in eight opening an incident, a fifth resolving);
   - wide: the same storm into a few wide incidents (5,000 to 20,000 pods each, three storming at
     once), where a decision must not cost in proportion to its incident's series.
   Each run is the real `incidentctl process` (start-up included): alerts/s, rows/s written
   (incidents, series, timeline, outbox and label rows), the child's peak RSS (flat = the same
   at both sizes), its CPU and, when the server runs on this machine, the server's CPU over
   the run (on a VM whose speed drifts, the two CPU figures tell a change from the noise). For
   the small backlog, bench/process_split.py then shows where a batch's time goes (parse,
   load, decide, write, the rest) and the statements a batch sends.
   BENCH_PROCESS_COMPARE=<another checkout's bin/incidentctl> runs that code too, alternately
   with this one (other, this, this, other, … BENCH_PROCESS_ROUNDS pairs), on copies of the
   same backlog: old and new code measured back to back on a machine whose speed drifts.
2. Fills `incidents` with N synthetic incidents (INSERT … SELECT doubling) and their label
   indexes (common labels; the labels of two series each: the common ones, a pod each and an
   instance each, shared by ~400 incidents) and times the list queries (core call, median of 5)
   with their EXPLAIN plans, plus one `incidentctl list` run.

Sizes (env): BENCH_PROCESS_SMALL=50000, BENCH_PROCESS_LARGE=500000 (alerts),
BENCH_PROCESS_SERIES=2000 (steady), BENCH_PROCESS_SCENARIOS=steady,storm,wide, BENCH_PROCESS_ROUNDS=1,
BENCH_LIST_INCIDENTS=1000000; BENCH_PROCESS_ONLY=process|list runs one half;
BENCH_PROCESS_KEEP=1 keeps the filled backlogs (`bench_process_tpl_<scenario>_<alerts>`) for the
next run; BENCH_EXPLAIN=1 prints the query plans; BENCH_LIST_KEEP=1 keeps the list database
(`bench_process_list_<N>`, filled in ~10 min at 1M) and reuses it in the next run. Server:
INCIDENTCTL_BENCH_MYSQL_URL (default mysql+pymysql://root@127.0.0.1:3306). Targets: ≥ 10,000
alerts/s in both scenarios, RSS ≤ 150 MB and flat, list ≤ 100 ms.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, inspect, select, text  # noqa: E402

from common import byte_compiled  # noqa: E402
from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.db.migrations import upgrade  # noqa: E402
from incidentctl.db.schema import grafana_alerts  # noqa: E402
from incidentctl.incidents.listing import IncidentFilter, list_incidents  # noqa: E402
from incidentctl.ingest.archive import raw_alert  # noqa: E402
from tests.support.storm_history import storm  # noqa: E402
from tests.support.synthetic_history import history  # noqa: E402

SERVER = os.environ.get("INCIDENTCTL_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
SMALL = int(os.environ.get("BENCH_PROCESS_SMALL", "50000"))
LARGE = int(os.environ.get("BENCH_PROCESS_LARGE", "500000"))
SERIES = int(os.environ.get("BENCH_PROCESS_SERIES", "2000"))
LIST_INCIDENTS = int(os.environ.get("BENCH_LIST_INCIDENTS", "1000000"))
KEEP_LIST_DATABASE = os.environ.get("BENCH_LIST_KEEP") == "1"
KEEP_PROCESS_DATABASES = os.environ.get("BENCH_PROCESS_KEEP") == "1"
SCENARIOS = [s for s in os.environ.get("BENCH_PROCESS_SCENARIOS", "steady,storm,wide").split(",") if s]
ROUNDS = int(os.environ.get("BENCH_PROCESS_ROUNDS", "1"))
COMPARE = os.environ.get("BENCH_PROCESS_COMPARE", "")
BIN = Path(sys.executable).parent / "incidentctl"


def fresh_database(label: str, unique: bool = True, binary: Path = BIN) -> str:
    """An empty database at the schema of `binary`'s code (another version's code may not run
    on this one's newer schema)."""
    name = f"bench_process_{label}_{os.getpid()}" if unique else f"bench_process_{label}"
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    admin.dispose()
    url = f"{SERVER}/{name}"
    upgrade_with(url, binary)
    return url


def upgrade_with(url: str, binary: Path) -> None:
    if binary == BIN:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
    else:
        subprocess.run([str(binary), "db", "upgrade"], env={**os.environ, "INCIDENTCTL_DATABASE_URL": url},
                       check=True, capture_output=True)


def drop_database(url: str) -> None:
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{url.rsplit('/', 1)[1]}`"))
    admin.dispose()


def fill_history(url: str, alerts: int, bodies: Iterable[tuple[datetime, bytes]]) -> tuple[int, int]:
    """Inserts history rows until `alerts` alerts are stored, in one transaction; returns (rows, alerts)."""
    engine = make_engine(url)
    rows = stored = 0
    chunk: list[dict] = []
    with engine.begin() as conn:
        for received_at, body in bodies:
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


def scenario_bodies(scenario: str) -> Iterable[tuple[datetime, bytes]]:
    if scenario == "steady":
        return history(series=SERIES, minutes=10**6, seed=11)
    if scenario == "wide":
        return storm(alerts=10**9, seed=19, pods=(5_000, 20_000), storming_at_once=3)
    if scenario == "storm":
        return storm(alerts=10**9, seed=17)
    raise SystemExit(f"unknown scenario {scenario!r} (BENCH_PROCESS_SCENARIOS: steady, storm, wide)")


def backlog_template(scenario: str, alerts: int) -> tuple[str, int, int]:
    """A database holding the scenario's backlog of `alerts` (kept and reused with
    BENCH_PROCESS_KEEP=1); returns (its name, rows, alerts)."""
    name = f"tpl_{scenario}_{alerts}"
    url = f"{SERVER}/bench_process_{name}"
    if KEEP_PROCESS_DATABASES:
        engine = make_engine(url) if database_exists(f"bench_process_{name}") else None
        if engine is not None:
            with engine.connect() as conn:
                found = conn.execute(text("SELECT COUNT(*), COALESCE(SUM(alert_count), 0) FROM grafana_alerts")).one()
            engine.dispose()
            if found[0]:
                return f"bench_process_{name}", found[0], int(found[1])
    url = fresh_database(name, unique=False)
    t = time.perf_counter()
    rows, stored = fill_history(url, alerts, scenario_bodies(scenario))
    print(f"  {scenario}: filled {stored:,} alerts in {rows:,} rows in {time.perf_counter() - t:.1f}s")
    return url.rsplit("/", 1)[1], rows, stored


def database_exists(name: str) -> bool:
    admin = create_engine(SERVER)
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :n"), {"n": name})
        exists = found.first() is not None
    admin.dispose()
    return exists


def copy_of(template: str, binary: Path = BIN) -> str:
    """A fresh database at `binary`'s schema with the template's raw rows, none processed."""
    url = fresh_database("p", binary=binary)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO grafana_alerts SELECT * FROM `{template}`.grafana_alerts"))
    engine.dispose()
    return url


def sqlite_copy(template: str, path: Path, binary: Path = BIN) -> str:
    """A SQLite database at `path`, at `binary`'s schema, with the template's raw rows, none processed."""
    url = f"sqlite+pysqlite:///{path}"
    upgrade_with(url, binary)
    source, target = make_engine(f"{SERVER}/{template}"), make_engine(url)
    with source.connect() as read, target.begin() as write:
        rows = read.execution_options(stream_results=True).execute(select(grafana_alerts).order_by(grafana_alerts.c.id))
        for chunk in rows.mappings().partitions(1000):
            write.execute(grafana_alerts.insert(), [dict(row) for row in chunk])
    source.dispose()
    target.dispose()
    return url


# incident_labels: what code before schema version 10 also wrote (its common-label index).
WRITTEN = ("incidents", "incident_alerts", "incident_events", "notifications", "incident_labels", "series_labels")


def rows_written(url: str) -> int:
    """The rows a run inserted (it started from a database without any)."""
    engine = make_engine(url)
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
        total = sum(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar() for table in WRITTEN
                    if table in present)
    engine.dispose()
    return total


def run_process(url: str, binary: Path = BIN) -> tuple[float, int, str, float]:
    """Runs `incidentctl process`; returns (seconds, peak RSS in KiB, its summary line, its CPU
    seconds: user + system, which other work on the machine changes less than the wall time)."""
    env = {**os.environ, "INCIDENTCTL_DATABASE_URL": url}
    start = time.perf_counter()
    proc = subprocess.Popen([str(binary), "process"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    out = proc.stdout.read().decode().strip()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"process failed: {proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss, out, usage.ru_utime + usage.ru_stime


def compared(other: list[float], this: list[float]) -> str:
    """Old and new code's rates, run alternately in pairs: the medians, and in how many pairs
    this code was the faster (on a VM whose speed drifts, one pair tells little)."""
    faster = sum(new > old for old, new in zip(other, this, strict=True))
    return (f"median {statistics.median(other):,.0f} (other) → {statistics.median(this):,.0f} alerts/s (this); "
            f"this faster in {faster} of {len(this)} pairs")


def server_cpu() -> float | None:
    """CPU seconds the MariaDB server has used (user + system), when it runs on this machine:
    with the client's, what a run cost whatever else the VM did meanwhile. None elsewhere."""
    try:
        engine = create_engine(SERVER)
        with engine.connect() as conn:
            pid_file = conn.execute(text("SELECT @@pid_file")).scalar()
        engine.dispose()
        pid = Path(pid_file).read_text().split()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, ValueError, IndexError, TypeError):
        return None


def split(url: str, binary: Path) -> dict:
    """bench/process_split.py run by the interpreter beside `binary` (the code under test)."""
    python = binary.parent / "python"
    out = subprocess.run([str(python), str(ROOT / "bench" / "process_split.py"), url], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_process() -> None:
    codes = [("this", BIN)]
    if COMPARE:
        codes = [("other", Path(COMPARE)), ("this", BIN)]
    for _, binary in codes:
        byte_compiled(binary)
    print(f"process: scenarios {', '.join(SCENARIOS)}; backlogs of {SMALL:,} and {LARGE:,} alerts; "
          f"MariaDB at {SERVER}; code: " + ", ".join(f"{name} = {path}" for name, path in codes)
          + f"; load average {os.getloadavg()[0]:.1f}")
    missed = []
    for scenario in SCENARIOS:
        rss: dict[str, list[float]] = {}
        for alerts in (SMALL, LARGE):
            template, rows, stored = backlog_template(scenario, alerts)
            rates: dict[str, list[float]] = {}
            for round_ in range(ROUNDS):
                # Which code runs first alternates by round: a VM slowing down (or speeding up)
                # through the series then weighs on both alike, not on the one run second.
                for name, binary in (codes if round_ % 2 == 0 else codes[::-1]):
                    url = copy_of(template, binary)
                    before = server_cpu()
                    seconds, rss_kib, line, cpu = run_process(url, binary)
                    after = server_cpu()
                    served = f", server CPU {after - before:5.1f}s" if before is not None and after is not None else ""
                    written = rows_written(url)
                    drop_database(url)
                    rate, mb = stored / seconds, rss_kib / 1024
                    rss.setdefault(name, []).append(mb)
                    rates.setdefault(name, []).append(rate)
                    print(f"  {scenario:<6} {name:<5} {stored:>9,} alerts in {rows:>7,} rows: "
                          f"process {seconds:6.1f}s = "
                          f"{rate:8,.0f} alerts/s, {written / seconds:8,.0f} rows/s written ({written:,}), "
                          f"peak RSS {mb:5.1f} MB, CPU {cpu:5.1f}s{served}; load {os.getloadavg()[0]:.1f}")
                    print(f"      {line}")
                    if name == "this" and rate < 10_000:
                        missed.append(f"{scenario} {stored:,} alerts: {rate:,.0f} alerts/s < 10,000")
                    if name == "this" and mb > 150:
                        missed.append(f"{scenario} {stored:,} alerts: peak RSS {mb:.1f} MB > 150 MB")
            if COMPARE:
                print(f"  {scenario:<6} {stored:,} alerts: {compared(rates['other'], rates['this'])}")
            if alerts == SMALL:
                for name, binary in codes:
                    url = copy_of(template, binary)
                    found = split(url, binary)
                    drop_database(url)
                    ms = found["ms_per_batch"]
                    print(f"  {scenario:<6} {name:<5} in-process, batches of 1,000: {found['seconds']:.1f}s; a batch: "
                          + ", ".join(f"{step} {value:.1f} ms" for step, value in ms.items())
                          + f"; {found['statements_per_batch']} statements "
                          f"({found['questions_per_batch']} server questions)"
                          + (f"; decided ahead: {found['decided_ahead']}" if found.get("decided_ahead") else ""))
                    print(f"      statements: {found['statements']}")
                for name, binary in codes:  # the same backlog on SQLite (target: within 2x of MariaDB)
                    with tempfile.TemporaryDirectory(prefix="bench_process_") as tmp:
                        url = sqlite_copy(template, Path(tmp) / "process.db", binary)
                        seconds, rss_kib, line, cpu = run_process(url, binary)
                    print(f"  {scenario:<6} {name:<5} SQLite {stored:>9,} alerts: process {seconds:6.1f}s = "
                          f"{stored / seconds:8,.0f} alerts/s, peak RSS {rss_kib / 1024:5.1f} MB, CPU {cpu:5.1f}s; "
                          f"load {os.getloadavg()[0]:.1f}")
            if not KEEP_PROCESS_DATABASES:
                drop_database(f"{SERVER}/{template}")
        mine = rss.get("this", [])
        if mine and max(mine) - min(mine) > 0.1 * min(mine):
            missed.append(f"{scenario}: peak RSS not flat ({min(mine):.1f}–{max(mine):.1f} MB)")
    print("  targets (≥ 10,000 alerts/s, peak RSS ≤ 150 MB and flat): " + ("met" if not missed else
                                                                        "MISSED: " + "; ".join(missed)))


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
        fill_series_labels(conn)
        conn.execute(text("ANALYZE TABLE incidents"))
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
