"""incidentctl on a 3-node MariaDB Galera cluster on loopback (bench/galera/cluster.py), beside the
single MariaDB server: ingest with receivers on 3 nodes vs 1 node at the same total concurrency,
`process` throughput on a cluster node vs the single server, and the applier lease's takeover
time after `kill -9` of the worker holding it. Runs are alternated (A B A B) on a shared machine.

Skips (exit 0) when the cluster cannot run here (no mariadbd/galera-4/rsync). Env: BENCH_SECONDS
(wrk seconds per run, default 8), BENCH_GALERA_ALERTS (process backlog, default 20,000 alerts),
BENCH_GALERA_TAKEOVERS (default 3), BENCH_GALERA_TTL (lease ttl for the takeover, default 5 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from bench_ingest import lua_script  # noqa: E402
from common import (  # noqa: E402
    INCIDENTCTL,
    drop_database,
    ensure_wrk,
    free_port,
    machine,
    parse_wrk,
    scratch_database,
    start_receiver,
)
from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.db.lease import holder  # noqa: E402
from incidentctl.db.migrations import upgrade  # noqa: E402
from incidentctl.db.schema import grafana_alerts  # noqa: E402
from incidentctl.ingest.archive import raw_alert  # noqa: E402
from tests.support.galera import galera, missing_tools, reserve_base_port  # noqa: E402
from tests.support.synthetic_history import history  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
ALERTS = int(os.environ.get("BENCH_GALERA_ALERTS", "20000"))
TAKEOVERS = int(os.environ.get("BENCH_GALERA_TAKEOVERS", "3"))
TTL = float(os.environ.get("BENCH_GALERA_TTL", "5"))
CONCURRENCY = 24
DB = "incidentctl_bench_galera"


def cluster_database(cluster, name: str) -> dict[int, str]:
    admin = create_engine(cluster.node(1).url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    admin.dispose()
    urls = {n: f"{cluster.node(n).url}/{name}?charset=utf8mb4" for n in (1, 2, 3)}
    engine = make_engine(urls[1])
    upgrade(engine)
    engine.dispose()
    return urls


def wrk_runs(wrk: str, script: Path, ports: list[int]) -> tuple[float, float, int]:
    """wrk against each port at once, CONCURRENCY split evenly; (total requests/s, worst p99, non-2xx)."""
    each = CONCURRENCY // len(ports)
    procs = [subprocess.Popen([wrk, "-t1", f"-c{each}", f"-d{SECONDS}s", "--latency", "-s", str(script),
                               f"http://127.0.0.1:{port}"], stdout=subprocess.PIPE, text=True) for port in ports]
    results = [parse_wrk(p.communicate()[0]) for p in procs]
    return sum(r["rps"] for r in results), max(r["p99_ms"] for r in results), sum(r["non_2xx"] for r in results)


def bench_ingest(wrk: str, urls: dict[int, str]) -> None:
    print(f"ingest: wrk, {CONCURRENCY} connections in all, {SECONDS}s per run, runs alternated")
    ports = {n: free_port() for n in (1, 2, 3)}
    receivers = {n: start_receiver(urls[n], ports[n]) for n in (1, 2, 3)}
    figures: dict[str, list[tuple[float, float, int]]] = {"1 node": [], "3 nodes": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "post.lua"
            lua_script(script)
            wrk_runs(wrk, script, [ports[1]])  # warm-up
            for _ in range(2):
                figures["1 node"].append(wrk_runs(wrk, script, [ports[1]]))
                figures["3 nodes"].append(wrk_runs(wrk, script, [ports[1], ports[2], ports[3]]))
    finally:
        for r in receivers.values():
            r.terminate()
            r.wait(30)
    for label, runs in figures.items():
        rates = ", ".join(f"{rps:,.0f}/s (p99 {p99:.0f} ms, non-2xx {bad})" for rps, p99, bad in runs)
        print(f"  receivers on {label:>7}: {rates}")
    one = sum(r[0] for r in figures["1 node"]) / 2
    three = sum(r[0] for r in figures["3 nodes"]) / 2
    print(f"  3 nodes / 1 node: {three / one:.2f}x")


def fill(url: str, alerts: int) -> int:
    engine = make_engine(url)
    stored, chunk = 0, []
    with engine.begin() as conn:
        for received_at, body in history(series=500, minutes=10**6, seed=11):
            chunk.append(raw_alert(body, received_at=received_at, user_agent="Alertmanager/0.27").row())
            stored += chunk[-1]["alert_count"]
            if len(chunk) == 500 or stored >= alerts:
                conn.execute(grafana_alerts.insert(), chunk)
                chunk = []
            if stored >= alerts:
                break
    engine.dispose()
    return stored


def timed_process(url: str) -> float:
    env = {**os.environ, "INCIDENTCTL_DATABASE_URL": url}
    started = time.perf_counter()
    subprocess.run([INCIDENTCTL, "process"], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def bench_process(cluster) -> None:
    print(f"process: a backlog of {ALERTS:,} alerts (500 series), `incidentctl process`, runs alternated")
    rates: dict[str, list[float]] = {"single server": [], "cluster node 1": []}
    for round_ in range(2):
        for label in rates:
            name = f"{DB}_p{round_}"
            url = scratch_database(name) if label == "single server" else cluster_database(cluster, name)[1]
            if label == "single server":
                engine = make_engine(url)
                upgrade(engine)
                engine.dispose()
            stored = fill(url, ALERTS)
            rates[label].append(stored / timed_process(url))
            if label == "single server":
                drop_database(name)
            else:
                admin = create_engine(cluster.node(1).url, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f"DROP DATABASE `{name}`"))
                admin.dispose()
    for label, runs in rates.items():
        print(f"  {label:>14}: " + ", ".join(f"{r:,.0f} alerts/s" for r in runs))
    single = sum(rates["single server"]) / 2
    node = sum(rates["cluster node 1"]) / 2
    print(f"  cluster node / single server: {node / single:.2f}x")


def bench_takeover(cluster) -> None:
    print(f"lease takeover: two `run` workers on nodes 1 and 2 (lease ttl {TTL:g}s, process every 1s), "
          f"the holder killed with SIGKILL; {TAKEOVERS} times")
    urls = cluster_database(cluster, f"{DB}_lease")
    watch = make_engine(urls[3])
    fill(urls[1], 3 * ALERTS)  # a backlog the workers do not finish meanwhile
    times = []
    workers: dict[int, subprocess.Popen] = {}
    try:
        def start(n: int) -> None:
            env = {**os.environ, "INCIDENTCTL_DATABASE_URL": urls[n], "INCIDENTCTL_LEASE_TTL": str(TTL),
                   "INCIDENTCTL_PROCESS_INTERVAL": "1", "INCIDENTCTL_BATCH_SIZE": "50",
                   "INCIDENTCTL_LOG_LEVEL": "WARNING"}
            workers[n] = subprocess.Popen([INCIDENTCTL, "run"], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)

        start(1)
        start(2)
        for _ in range(TAKEOVERS):
            deadline = time.monotonic() + 60
            while True:
                lease = holder(watch)
                if lease is not None and lease.live(datetime.now(timezone.utc)):
                    pids = {p.pid: n for n, p in workers.items()}
                    if int(lease.owner.split(":")[1]) in pids:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("no worker took the lease")
                time.sleep(0.05)
            victim = pids[int(lease.owner.split(":")[1])]
            workers[victim].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            workers[victim].wait()
            while (now := holder(watch)) is None or now.owner == lease.owner:
                time.sleep(0.02)
            times.append(time.monotonic() - killed)
            start(victim)  # the standby of the next round
    finally:
        for p in workers.values():
            p.kill()
            p.wait()
        watch.dispose()
    print("  takeover after kill -9: " + ", ".join(f"{t:.1f}s" for t in times)
          + f" (ttl {TTL:g}s + up to one process turn, 1s)")


def main() -> int:
    reason = missing_tools()
    if reason:
        print(f"skipped: {reason}")
        return 0
    wrk = ensure_wrk()
    base, lock = reserve_base_port()
    cluster = galera.Cluster(tempfile.mkdtemp(prefix="incidentctl-galera-bench-"), base)
    print(f"machine: {machine()}")
    print("shared machine (other jobs running): cluster figures are noisy; compare within one run only")
    started = time.monotonic()
    try:
        cluster.up()
        print(f"cluster: 3 nodes on 127.0.0.1:{base}-{base + 2}, up in {time.monotonic() - started:.0f}s\n")
        urls = cluster_database(cluster, DB)
        bench_ingest(wrk, urls)
        with make_engine(urls[1]).connect() as conn:
            print(f"  rows stored: {conn.scalar(select(func.count()).select_from(grafana_alerts)):,}\n")
        bench_process(cluster)
        print()
        bench_takeover(cluster)
    finally:
        cluster.down()
        lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
