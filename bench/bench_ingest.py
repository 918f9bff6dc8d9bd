"""Receiver throughput on MariaDB: wrk at concurrency 1, 8 and 32 against `incidentctl serve`,
with real Grafana/Alertmanager bodies, beside the direct rate of single-row INSERT+COMMIT from
Python into the same table.

Targets (issue 2, 2-core machine): ≥ 1,500 requests/s at concurrency 32 with p99 ≤ 50 ms, and
≥ 0.8 × the direct commit rate. Env: BENCH_SECONDS (default 10) per level.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import FIXTURES, drop_database, ensure_wrk, free_port, machine, parse_wrk, scratch_database, start_receiver  # noqa: E402
from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.db.migrations import upgrade  # noqa: E402
from incidentctl.ingest.archive import insert_raw_alerts, raw_alert  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
DB = "incidentctl_bench_ingest"
BODIES = [
    "grafana/grafana9_zulip_firing_3alerts_2rules.json",
    "grafana/grafana10-11_zulip_playgrafana_firing_values_dashboard_panel.json",
    "grafana/grafana9_zulip_resolved_single.json",
    "alertmanager/am_v4_oncall-example_firing_3alerts_numFiring-added-by-oncall.json",
]


def lua_script(path: Path) -> None:
    """wrk script cycling through real bodies, one per request."""
    bodies = ",\n".join("[==[" + (FIXTURES / b).read_text() + "]==]" for b in BODIES)
    path.write_text(f"""
local bodies = {{ {bodies} }}
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/webhook/grafana", {{["Content-Type"] = "application/json", ["User-Agent"] = "Grafana"}},
                    bodies[(n % #bodies) + 1])
end
""")


def direct_commit_rate(db_url: str, seconds: float) -> float:
    """Single-row INSERT + COMMIT per row, one connection, as fast as Python can."""
    engine = make_engine(db_url)
    body = (FIXTURES / BODIES[0]).read_bytes()
    n = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        with engine.begin() as conn:
            insert_raw_alerts(conn, [raw_alert(body, received_at=datetime.now(timezone.utc))])
        n += 1
    elapsed = time.perf_counter() - started
    engine.dispose()
    return n / elapsed


def main() -> int:
    wrk = ensure_wrk()
    db_url = scratch_database(DB)
    engine = make_engine(db_url)
    upgrade(engine)
    engine.dispose()
    print(f"machine: {machine()}")
    print(f"database: MariaDB/MySQL at {db_url.rsplit('@', 1)[-1]}; {SECONDS}s per level\n")
    direct = direct_commit_rate(db_url, min(SECONDS, 5))
    port = free_port()
    receiver = start_receiver(db_url, port)
    results = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "post.lua"
            lua_script(script)
            subprocess.run([wrk, "-t1", "-c4", "-d2s", "-s", str(script), f"http://127.0.0.1:{port}"],
                           check=True, capture_output=True)  # warm-up
            for conc in (1, 8, 32):
                out = subprocess.run(
                    [wrk, f"-t{min(conc, 2)}", f"-c{conc}", f"-d{SECONDS}s", "--latency", "-s", str(script),
                     f"http://127.0.0.1:{port}"], check=True, capture_output=True, text=True).stdout
                results[conc] = parse_wrk(out)
    finally:
        receiver.terminate()
        receiver.wait(30)
        drop_database(DB)
    print(f"{'concurrency':>11} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for conc, r in results.items():
        print(f"{conc:>11} {r['rps']:>11.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['non_2xx']:>8}")
    top = results[32]
    ratio = top["rps"] / direct
    print(f"\ndirect single-row INSERT+COMMIT from Python: {direct:.0f} rows/s")
    print(f"receiver at concurrency 32 / direct commit rate: {ratio:.2f}x")
    checks = [
        ("≥ 1,500 requests/s at concurrency 32", top["rps"] >= 1500),
        ("p99 ≤ 50 ms at concurrency 32", top["p99_ms"] <= 50),
        ("≥ 0.8 × direct commit rate", ratio >= 0.8),
        ("no non-2xx answers", all(r["non_2xx"] == 0 for r in results.values())),
    ]
    for label, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
