"""The Slack door of the action inbox under load: wrk sends signed `block_actions` clicks, as
Slack does (form-encoded payload, v0 signature, a fresh timestamp), to `incidentctl serve`'s
`POST /slack/actions` on MariaDB at concurrency 1, 8 and 32.

Target (issue 15, 2-core machine): p99 ≤ 50 ms at 32 concurrent clicks (Slack's limit is 3 s),
every answer 200. Every request is a different click (its own payload and signature), read by
wrk from a file made just before each level, so each is verified and stored; past the end of
the file wrk starts over and the repeats are replays (answered 200, not stored again), which the
report counts. Env: BENCH_SECONDS (default 10) per level.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from sqlalchemy import func, select  # noqa: E402

from common import drop_database, ensure_wrk, free_port, machine, parse_wrk, scratch_database, start_receiver  # noqa: E402
from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.db.migrations import upgrade  # noqa: E402
from incidentctl.db.schema import action_inbox  # noqa: E402
from tests.support.slack_interactions import SlackInteractions, sign  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
DB = "incidentctl_bench_actions"
SECRET = "bench-signing-secret"
CLICKS_PER_SECOND = 3000  # more clicks in the file than wrk sends, so no level runs out

LUA = r"""
local requests = {}
local n = 0
function setup(thread)
  thread:set("id", setup_count or 0)
  setup_count = (setup_count or 0) + 1
end
function init(args)
  local threads = tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if i % threads == id then
      local ts, sig, body = line:match("^(%d+)\t([^\t]+)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", "/slack/actions", {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Slack-Request-Timestamp"] = ts, ["X-Slack-Signature"] = sig}, body)
    end
    i = i + 1
  end
end
function request()
  n = n + 1
  return requests[(n - 1) % #requests + 1]
end
"""


def write_clicks(path: Path, count: int) -> None:
    """`count` different signed clicks, one per line: timestamp, signature, body."""
    now = int(time.time())
    clicks = SlackInteractions(SECRET, clock=time.time)
    with path.open("w") as out:
        for i in range(count):
            incident = 1 + i % 500
            value = ("ic1:ack:{}", "ic1:resolve:{}", "ic1:silence:{}:4h")[i % 3].format(incident)
            payload = clicks.payload(value, value, message_ts=f"{now}.{i:06d}",
                                     response_url=f"https://hooks.slack.com/actions/T0/{i}/x")
            body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))})
            out.write(f"{now}\t{sign(SECRET, now, body)}\t{body}\n")


def stored(db_url: str) -> int:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        count = conn.scalar(select(func.count()).select_from(action_inbox))
    engine.dispose()
    return count


def main() -> int:
    wrk = ensure_wrk()
    db_url = scratch_database(DB)
    engine = make_engine(db_url)
    upgrade(engine)
    engine.dispose()
    print(f"machine: {machine()}")
    print(f"database: MariaDB/MySQL at {db_url.rsplit('@', 1)[-1]}; {SECONDS}s per level\n")
    port = free_port()
    receiver = start_receiver(db_url, port, {"SLACK_SIGNING_SECRET": SECRET})
    results, kept = {}, {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            script, clicks = Path(tmp) / "click.lua", Path(tmp) / "clicks.tsv"
            script.write_text(LUA)
            for conc in (1, 8, 32):
                threads = min(conc, 2)
                write_clicks(clicks, CLICKS_PER_SECOND * SECONDS)
                before = stored(db_url)
                out = subprocess.run(
                    [wrk, f"-t{threads}", f"-c{conc}", f"-d{SECONDS}s", "--latency", "-s", str(script),
                     f"http://127.0.0.1:{port}", "--", str(clicks), str(threads)],
                    check=True, capture_output=True, text=True).stdout
                results[conc] = parse_wrk(out)
                kept[conc] = stored(db_url) - before
    finally:
        receiver.terminate()
        receiver.wait(30)
        drop_database(DB)
    print(f"{'concurrency':>11} {'clicks/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'stored':>8} "
          f"{'replays':>8}")
    for conc, r in results.items():
        print(f"{conc:>11} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['non_2xx']:>8} "
              f"{kept[conc]:>8} {max(0, r['requests'] - kept[conc]):>8}")
    top = results[32]
    checks = [
        ("p99 ≤ 50 ms at 32 concurrent clicks", top["p99_ms"] <= 50),
        ("every click answered 200", all(r["non_2xx"] == 0 and not r["socket_errors"] for r in results.values())),
        # wrk does not count the requests in flight when it stops; they are stored too.
        ("every click stored (none ran out of the file)", all(kept[c] >= r["requests"] for c, r in results.items())),
    ]
    for label, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
