"""The Slack app's messages kept current, on MariaDB, through the fake Web API and its rate limits.

1. Churn, on a simulated clock: 20 digests posted to one channel (10 incidents each), then 1,000
   incident changes (ack, resolve, reopen, ack, resolve of each of the 200) arriving 10 a second,
   while the `slack` job runs every slack_sync_interval (3 s, run's default). Counts the 429s the
   fake answered and those not honoured (a call before Retry-After passed), checks every message
   shows its incidents' final state, and says how long it took (simulated Slack seconds; wall
   seconds of our own work) and how long a change waited for its message's edit.
2. Click to message updated, in real time with `run`'s jobs and defaults (the scheduler,
   process/notify/slack): a person's ack or resolve, then the wait until the fake holds the
   edited message. BENCH_SLACK_CLICKS (default 12).
3. The `slack` job's own cost when nothing changed, over a day of messages.
BENCH_SLACK_PARTS picks parts (default "churn,strict,clicks,quiet").
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
import requests  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from common import drop_database, scratch_database  # noqa: E402
from incidentctl.config import load_settings  # noqa: E402
from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.db.migrations import upgrade  # noqa: E402
from incidentctl.db.schema import incidents, notifications, slack_messages, slack_replies  # noqa: E402
from incidentctl.durations import utc_now  # noqa: E402
from incidentctl.incidents.actions import transition  # noqa: E402
from incidentctl.notify import slack_store  # noqa: E402
from incidentctl.notify.delivery import notify_pending, sync  # noqa: E402
from incidentctl.notify.routes import load_routes  # noqa: E402
from incidentctl.notify.slack_api import SlackApi  # noqa: E402
from incidentctl.notify.slack_blocks import render_current  # noqa: E402
from incidentctl.ops.scheduler import SLACK_RUN_BUDGET, Scheduler, cycle_jobs  # noqa: E402
from tests.support.factories import T0, add_change, add_incident  # noqa: E402
from tests.support.slack_web_fake import TOKEN, FakeSlackWeb, Limit, ManualClock  # noqa: E402

DB = "incidentctl_bench_slack"
CHANNEL = "C0ALERTS"
MESSAGES, PER_MESSAGE = 20, 10
ACTIONS = ("ack", "resolve", "reopen", "ack", "resolve")  # 5 × 200 incidents = 1,000 changes
CHANGE_GAP = 0.1  # simulated seconds between changes
CLICKS = int(os.environ.get("BENCH_SLACK_CLICKS", "12"))


def env(fake) -> dict:
    return {"SLACK_BOT_TOKEN": TOKEN, "SLACK_CHANNEL": CHANNEL, "INCIDENTCTL_SLACK_API_URL": fake.api_url,
            "INCIDENTCTL_REMIND_MAX": "0"}


def post_digests(engine, settings, api, now) -> list[list[int]]:
    shown = []
    for _ in range(MESSAGES):
        ids = [add_incident(engine, title=f"Incident {len(shown)}-{i}", opened_at=now()) for i in range(PER_MESSAGE)]
        for iid in ids:
            add_change(engine, iid, created_at=now())
        assert notify_pending(engine, settings, None, clock=now, api=api).sent == PER_MESSAGE
        shown.append(ids)
    return shown


# A Slack stricter than the pacer's assumptions (half its rates, small bursts): 429s happen.
STRICT = {"chat.update": Limit(0.4, 2), "chat.postMessage": Limit(0.5, 2, per_channel=True)}


def churn(url: str, limits: dict | None = None) -> None:
    engine = make_engine(url)
    upgrade(engine)
    clock = ManualClock(0.0)
    with FakeSlackWeb(clock=clock, limits=limits) as fake, requests.Session() as session:
        settings = load_settings(environ=env(fake))
        routes = load_routes(settings)
        api = SlackApi(session, TOKEN, base_url=fake.api_url, clock=clock, sleep=clock.advance)

        def now():
            return T0 + timedelta(seconds=clock.now)

        incidents = [iid for ids in post_digests(engine, settings, api, now) for iid in ids]
        posted_at = clock.now
        random.Random(7).shuffle(incidents)
        changes = [(posted_at + n * CHANGE_GAP, iid, action)
                   for n, (action, iid) in enumerate((a, i) for a in ACTIONS for i in incidents)]
        applied_at: list[tuple[float, int]] = []
        wall = time.perf_counter()
        next_sync, runs, pending = clock.now, 0, list(changes)
        run_waits: list[float] = []
        while True:
            while pending and pending[0][0] <= clock.now:
                at, iid, action = pending.pop(0)
                transition(engine, action, iid, by="bench", note=None, now=now())
                applied_at.append((clock.now, iid))
            if clock.now >= next_sync:
                run_started = clock.now
                summary = sync(engine, settings, api, routes, now(), SLACK_RUN_BUDGET)
                runs += 1
                run_waits.append(clock.now - run_started)
                next_sync = max(next_sync + settings.slack_sync_interval, clock.now)
                if not pending and not slack_store.stale_messages(engine, now() - timedelta(days=1), now()) \
                        and not summary.replies and not summary.retrying and not summary.deferred:
                    break
            else:
                clock.now = min([next_sync] + ([pending[0][0]] if pending else []))
        wall = time.perf_counter() - wall
        simulated = clock.now - posted_at

        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(slack_messages))]
            replied = dict(conn.execute(select(slack_replies.c.state, func.count()).group_by(slack_replies.c.state))
                           .all())
        states = slack_store.current_states(engine, incidents, now())
        current = 0
        for row in rows:
            lines = {int(k): v for k, v in row["lines"].items()}
            message = fake.messages[(row["channel"], row["ts"])]
            current += message.blocks == render_current(row["base"], lines, states, now())["blocks"]
        message_of = {iid: (row["channel"], row["ts"]) for row in rows for iid in row["lines"].values()}
        waits = []
        for at, iid in applied_at:
            versions = fake.messages[message_of[iid]].versions
            waits.append(next(v["at"] for v in versions if v["at"] >= at and v["via"] == "chat.update") - at)
        updates = len(fake.calls_to("chat.update"))
        replies = sum(1 for m in fake.messages.values() if m.thread_ts)
        print(f"churn{' (a stricter Slack)' if limits else ''}: {len(changes)} changes over {len(rows)} messages "
              f"in one channel, the slack job every "
              f"{settings.slack_sync_interval:g} s ({runs} runs)")
        print(f"  {updates} chat.update, {replies} thread replies carrying {replied.get('sent', 0)} changes "
              f"(pending at the end: {replied.get('pending', 0)}); 429s answered {len(fake.throttled)}, "
              f"not honoured {len(fake.violations)}; messages current at the end {current}/{len(rows)}")
        print(f"  done {simulated:.0f} simulated s after the first change (changes arrive over "
              f"{len(changes) * CHANGE_GAP:.0f} s); our own work {wall:.1f} s wall")
        print(f"  longest wait inside one run of the job {max(run_waits):.1f} s (budget {SLACK_RUN_BUDGET:g} s)")
        print(f"  change → its message edited: p50 {statistics.median(waits):.1f} s, "
              f"p95 {_pct(waits, 95):.1f} s, max {max(waits):.1f} s (Slack's chat.update: 50/min)")
        assert not fake.violations and current == len(rows), "a message is not current, or a 429 was ignored"
        assert replied.get("sent") == len(changes) and not replied.get("pending"), "a change was not replied"
    engine.dispose()


def clicks(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    with FakeSlackWeb() as fake, requests.Session() as session:
        settings = load_settings(environ=env(fake))
        ids = [add_incident(engine, title=f"Click {i}", opened_at=utc_now()) for i in range(CLICKS)]
        for iid in ids:
            add_change(engine, iid, created_at=utc_now())
        scheduler = Scheduler(cycle_jobs(engine, settings, session, utc_now))
        scheduler.start()
        try:
            deadline = time.monotonic() + 60
            while not fake.messages and time.monotonic() < deadline:
                time.sleep(0.05)
            (message,) = fake.messages.values()
            waits = []
            rng = random.Random(3)
            for iid in ids:
                time.sleep(rng.uniform(0, settings.slack_sync_interval))
                before = message.update_count
                transition(engine, rng.choice(["ack", "resolve"]), iid, by="bench", note=None, now=utc_now())
                clicked = time.monotonic()
                while message.update_count == before and time.monotonic() < clicked + 60:
                    time.sleep(0.01)
                waits.append(time.monotonic() - clicked)
        finally:
            scheduler.stop()
        print(f"click → message updated with run's defaults (slack job every {settings.slack_sync_interval:g} s), "
              f"{len(waits)} clicks: p50 {statistics.median(waits):.2f} s, max {max(waits):.2f} s")
        assert max(waits) <= 10, "a click took longer than 10 s to show"
    engine.dispose()


def quiet(url: str) -> None:
    """The slack job's cost when nothing changed, over a day of messages (a digest every 30 s)."""
    engine = make_engine(url)
    upgrade(engine)
    n_messages, per = 2880, 10
    now = T0 + timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(incidents.insert(), [dict(
            fingerprint=f"q{i}", active_key=f"q{i}", status="open", title=f"Quiet {i}", severity="warning",
            group_labels={}, common_labels={}, opened_at=T0, last_alert_at=T0, alert_count=1, series_count=1,
            series_firing=1, reopen_count=0) for i in range(n_messages * per)])
        ids = list(conn.execute(select(incidents.c.id).order_by(incidents.c.id)).scalars())
        conn.execute(notifications.insert(), [dict(incident_id=i, change="opened", severity="warning", created_at=T0,
                                                   state="sent", attempts=1, threaded_at=T0) for i in ids])
        changes = dict(conn.execute(select(notifications.c.incident_id, notifications.c.id)).all())
    for k in range(n_messages):
        shown = ids[k * per:(k + 1) * per]
        slack_store.record_message(engine, route="default", channel=CHANNEL, ts=f"{1700000000 + k}.000100",
                                   posted_at=T0 + timedelta(seconds=30 * k),
                                   base={"text": "x", "blocks": []}, lines=dict(enumerate(shown)),
                                   changes={changes[i]: i for i in shown})
    with FakeSlackWeb() as fake, requests.Session() as session:
        settings = load_settings(environ={**env(fake), "INCIDENTCTL_REMIND_MAX": "3"})
        api = SlackApi(session, TOKEN, base_url=fake.api_url)
        routes = load_routes(settings)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            summary = sync(engine, settings, api, routes, now)
            times.append(time.perf_counter() - start)
        assert not fake.calls and summary.updated == 0
    print(f"quiet slack job over {n_messages} messages ({n_messages * per} incidents shown, posted within "
          f"{settings.slack_update_window / 3600:g} h), nothing changed: "
          f"median {statistics.median(times) * 1000:.0f} ms per run (of 5)")
    engine.dispose()


def _pct(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def main() -> None:
    for name, bench in (("churn", churn), ("strict", lambda url: churn(url, STRICT)), ("clicks", clicks),
                        ("quiet", quiet)):
        if name not in os.environ.get("BENCH_SLACK_PARTS", "churn,strict,clicks,quiet").split(","):
            continue
        url = scratch_database(f"{DB}_{name}")
        try:
            bench(url)
        finally:
            drop_database(f"{DB}_{name}")


if __name__ == "__main__":
    main()
