"""History on MariaDB: replay a generated month of alert notifications, export it, report on it.

1. Generates a month of history (BENCH_HISTORY_ALERTS alerts, default 1,000,000, in ~570,000 notifications, over the
   last 30 days) as realistic Grafana unified-alerting bodies: firing, repeated every 4 h and
   resolved series from a few hundred rules × clusters × services, 1–3 alerts per body, written
   as our export format (JSON Lines, gzip) so each keeps its receive time.
2. `incidentctl replay --process` of that file into an empty database (each batch processed as
   it is stored), as a child process: wall time, alerts/s and peak RSS (os.wait4), the
   end-to-end figure. Then, into a fresh database, `incidentctl replay` alone and
   `incidentctl process` of the replayed rows (same figures), and the same replay again
   (everything a duplicate).
3. `incidentctl export` of the whole archive to /dev/null (streaming: RSS must not grow).
4. `incidentctl report --since 30d` over the processed month.

Targets (issue 5): replay + process ≤ 2 min end to end, peak RSS ≤ 200 MB, report ≤ 2 s.
Env: BENCH_HISTORY_ALERTS, BENCH_HISTORY_KEEP=1 keeps the database.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import INCIDENTCTL, ROOT, drop_database, machine, scratch_database  # noqa: E402
from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.db.migrations import upgrade  # noqa: E402
from incidentctl.history.export import format_time  # noqa: E402
from incidentctl.history.reports import build_report  # noqa: E402

ALERTS = int(os.environ.get("BENCH_HISTORY_ALERTS", "1000000"))
DAYS = 30
DB = "incidentctl_bench_history"
WORK = ROOT / ".bench"
RULES = ["HighCPU", "HighMemory", "DiskFilling", "PodCrashLooping", "HTTP5xxRate", "LatencyP99High",
         "NodeNotReady", "CertificateExpiring", "QueueBacklog", "ReplicationLag", "TargetDown", "OOMKilled"]
CLUSTERS = ["prod-eu-1", "prod-us-1", "prod-ap-1", "staging"]
SERVICES = ["checkout", "payments", "search", "catalog", "auth", "gateway", "orders", "billing"]
SEVERITIES = ["critical", "warning", "warning", "info"]


def series_pool(rng: random.Random) -> list[dict]:
    """Alert series: labels, a Grafana-style fingerprint and a rule uid."""
    pool = []
    for n in range(1500):
        rule, cluster, service = rng.choice(RULES), rng.choice(CLUSTERS), rng.choice(SERVICES)
        labels = {"alertname": rule, "cluster": cluster, "namespace": service, "service": service,
                  "severity": rng.choice(SEVERITIES), "instance": f"{service}-{n % 7}.{cluster}:9100",
                  "grafana_folder": "platform"}
        pool.append({"labels": labels, "fingerprint": f"{rng.getrandbits(64):016x}", "uid": f"r{n:05d}"})
    return pool


def body(series: list[dict], status: str, starts: datetime, ends: datetime | None) -> bytes:
    alerts = []
    for s in series:
        uid = s["uid"]
        alerts.append({
            "status": status, "labels": s["labels"],
            "annotations": {"summary": f"{s['labels']['alertname']} on {s['labels']['instance']}",
                            "runbook_url": f"https://runbooks.example.com/{s['labels']['alertname']}"},
            "startsAt": starts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endsAt": ends.strftime("%Y-%m-%dT%H:%M:%SZ") if ends else "0001-01-01T00:00:00Z",
            "generatorURL": f"https://grafana.example.com/alerting/grafana/{uid}/view?orgId=1",
            "fingerprint": s["fingerprint"],
            "silenceURL": f"https://grafana.example.com/alerting/silence/new?alertmanager=grafana&matcher=__alert_rule_uid__%3D{uid}&orgId=1",
            "dashboardURL": "https://grafana.example.com/d/abc123?orgId=1",
            "panelURL": "https://grafana.example.com/d/abc123?orgId=1&viewPanel=4",
            "values": {"A": 97.5, "C": 1},
            "valueString": f"[ var='A' labels={{instance={s['labels']['instance']}}} value=97.5 ], "
                           "[ var='C' labels={} value=1 ]",
        })
    common = series[0]["labels"]
    doc = {"receiver": "incidentctl", "status": status, "alerts": alerts,
           "groupLabels": {"alertname": common["alertname"], "grafana_folder": "platform"},
           "commonLabels": {k: common[k] for k in ("alertname", "cluster", "service", "grafana_folder")},
           "commonAnnotations": {}, "externalURL": "https://grafana.example.com/", "version": "1",
           "groupKey": f"{{}}/{{}}:{{alertname=\"{common['alertname']}\"}}", "truncatedAlerts": 0, "orgId": 1,
           "title": f"[{status.upper()}:{len(alerts)}] {common['alertname']}", "state": "alerting", "message": ""}
    # Grafana is written in Go: & < > are escaped as \u0026 \u003c \u003e.
    text = json.dumps(doc, indent=2).replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return text.encode() + b"\n"


def generate(path: Path, count: int, end: datetime) -> int:
    """Writes export records holding `count` alerts (1–3 per notification, 1.75 on average) over
    the DAYS before `end`; returns the number of notifications."""
    rng = random.Random(5)
    pool = series_pool(rng)
    start = end - timedelta(days=DAYS)
    step = (end - start) / int(count / 1.75)
    firing: dict[int, tuple[list[dict], datetime]] = {}
    alerts = n = 0
    with gzip.open(path, "wb", compresslevel=1) as out:
        while alerts < count:
            at = start + step * n + timedelta(microseconds=n % 1000)
            roll = rng.random()
            if firing and roll < 0.35:  # a firing group repeats (repeat_interval)
                key = rng.choice(list(firing)) if len(firing) < 64 else next(iter(firing))
                group, since = firing[key]
                data = body(group, "firing", since, None)
            elif firing and roll < 0.65:  # a firing group resolves
                key = next(iter(firing))
                group, since = firing.pop(key)
                data = body(group, "resolved", since, at)
            else:  # a new group fires
                group = rng.sample(pool, rng.choice((1, 1, 2, 3)))
                firing[n] = (group, at)
                data = body(group, "firing", at, None)
            record = {"id": n + 1, "received_at": format_time(at), "source": "grafana", "remote_addr": "10.1.2.3",
                      "user_agent": "Grafana/11.3.0", "content_type": "application/json",
                      "body_sha256": hashlib.sha256(data).hexdigest(), "body": data.decode()}
            out.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
            alerts += len(group)
            n += 1
    return n


def run_child(args: list[str], env: dict, stdout=subprocess.PIPE) -> tuple[float, float, bytes]:
    """Runs a command; returns (seconds, peak RSS in MB, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=stdout, stderr=subprocess.PIPE)
    out = proc.stdout.read() if stdout == subprocess.PIPE else b""
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, out


def main() -> int:
    print(f"machine: {machine()} (shared with other work while measured)")
    WORK.mkdir(exist_ok=True)
    end = datetime.now(timezone.utc)
    source = WORK / f"history-{ALERTS}.jsonl.gz"
    started = time.perf_counter()
    notifications = generate(source, ALERTS, end)
    print(f"generated {ALERTS:,} alerts in {notifications:,} notifications over {DAYS} days: "
          f"{source.stat().st_size / 2**20:.0f} MiB gzip in {time.perf_counter() - started:.0f} s")

    db_url = scratch_database(DB)
    engine = make_engine(db_url)
    upgrade(engine)
    engine.dispose()
    env = {**os.environ, "INCIDENTCTL_DATABASE_URL": db_url}
    try:
        # The end-to-end figure first, on a server that has no earlier step's work to flush.
        seconds, rss, out = run_child([INCIDENTCTL, "replay", str(source), "--process", "-o", "json"], env)
        inline = json.loads(out)
        print(f"replay --process (fresh database): {inline['stored']:,} stored, "
              f"{inline['processed']['alerts']:,} alerts processed in {seconds:.1f} s end to end = "
              f"{inline['processed']['alerts'] / seconds:,.0f} alerts/s, "
              f"peak RSS {rss:.0f} MB (target for 1,000,000 alerts: ≤ 120 s, RSS ≤ 200 MB)")
        engine = make_engine(scratch_database(DB))
        upgrade(engine)
        engine.dispose()
        seconds, rss, out = run_child([INCIDENTCTL, "replay", str(source), "-o", "json"], env)
        summary = json.loads(out)
        print(f"replay:        {summary['stored']:,} stored in {seconds:.1f} s = "
              f"{summary['stored'] / seconds:,.0f} rows/s, peak RSS {rss:.0f} MB")
        p_seconds, p_rss, out = run_child([INCIDENTCTL, "process", "-o", "json"], env)
        processed = json.loads(out)
        print(f"process:       {processed['rows']:,} rows ({processed['alerts']:,} alerts, {processed['opened']:,} "
              f"incidents opened) in {p_seconds:.1f} s = {processed['alerts'] / p_seconds:,.0f} alerts/s, "
              f"peak RSS {p_rss:.0f} MB")
        total = seconds + p_seconds
        print(f"replay + process: {total:.1f} s end to end, peak RSS {max(rss, p_rss):.0f} MB")
        seconds, rss, out = run_child([INCIDENTCTL, "replay", str(source), "-o", "json"], env)
        again = json.loads(out)
        print(f"replay again:  {again['stored']} stored, {again['duplicates']:,} duplicates in {seconds:.1f} s, "
              f"peak RSS {rss:.0f} MB")
        with open(os.devnull, "wb") as null:
            seconds, rss, _ = run_child([INCIDENTCTL, "export"], env, stdout=null)
        print(f"export:        {summary['stored']:,} rows in {seconds:.1f} s, peak RSS {rss:.0f} MB")
        seconds, rss, out = run_child([INCIDENTCTL, "report", "--since", "30d", "-o", "json"], env)
        report = json.loads(out)
        print(f"report 30d:    {seconds:.2f} s wall incl. interpreter start, peak RSS {rss:.0f} MB "
              f"({report['total']['opened']:,} incidents, "
              f"{sum(d['alerts'] for d in report['volume_per_day']):,} alerts in the volume chart; target ≤ 2 s)")
        seconds, _, _ = run_child([INCIDENTCTL, "--help"], env)
        print(f"               (`incidentctl --help` alone takes {seconds:.2f} s)")
        engine = make_engine(db_url)
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            build_report(engine, since=datetime.now(timezone.utc) - timedelta(days=DAYS),
                         until=datetime.now(timezone.utc))
            timings.append(time.perf_counter() - started)
        engine.dispose()
        print(f"build_report:  {min(timings):.2f} s best of 3 in-process (first {timings[0]:.2f} s)")
    finally:
        if os.environ.get("BENCH_HISTORY_KEEP") != "1":
            drop_database(DB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
