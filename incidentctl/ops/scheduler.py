"""`incidentctl run`'s engine: run injected jobs every N seconds, one at a time, one log line each.

Jobs share a single worker thread, so no job ever overlaps itself or another (process and
notify never fight over the database); a job that is still running when its next turn comes is
not started twice (max_instances=1), and missed turns are coalesced into one. A stop request
(SIGTERM/SIGINT in `run_until_signalled`) lets the current run finish, then returns.
`cycle_jobs` builds the jobs: process and notify, or process only (with one warning) when no
Slack route is configured. `cron/` holds crontab, systemd and Kubernetes alternatives.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from incidentctl.errors import IncidentctlError

log = logging.getLogger("incidentctl.run")
PURGE_INTERVAL = 86400.0
# Seconds one run may wait on Slack's rate limits: the jobs share one worker (slack_sync.Budget).
SLACK_RUN_BUDGET = 5.0
NOTIFY_COUNTS = ("due", "sent", "retrying", "failed", "suppressed", "unroutable", "outcome_unknown", "waiting",
                 "below_threshold", "held", "in_place")


@dataclass(frozen=True)
class Job:
    """`func` does one run and returns its counts (a mapping; non-scalar values are not logged)."""

    name: str
    interval: float  # seconds
    func: Callable[[], Mapping[str, Any]]


def summary_line(name: str, counts: Mapping[str, Any], seconds: float) -> str:
    """`process: claimed=3 opened=1 (0.12s)`: scalars only, in the job's own order."""
    parts = [f"{k}={v}" for k, v in counts.items() if isinstance(v, (int, float, str, bool)) or v is None]
    return f"{name}: {' '.join(parts) or 'done'} ({seconds:.2f}s)"


class Scheduler:
    """Runs `jobs` on their intervals until `stop()`; the first run of each is immediate."""

    def __init__(self, jobs: Iterable[Job], *, logger: logging.Logger = log):
        self.jobs = list(jobs)
        self.log = logger
        self.runs: dict[str, int] = {job.name: 0 for job in self.jobs}
        self._stopping = threading.Event()
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone=timezone.utc,
        )
        now = datetime.now(timezone.utc)
        for index, job in enumerate(self.jobs):
            if job.interval <= 0:
                raise ValueError(f"{job.name}: interval must be positive, got {job.interval}")
            # Staggered first runs keep the jobs' order (process, then notify) on every tick.
            first = now + timedelta(seconds=0.2 * index)
            self._scheduler.add_job(self._wrap(job), "interval", seconds=job.interval, id=job.name,
                                    name=job.name, next_run_time=first, start_date=first)

    def _wrap(self, job: Job) -> Callable[[], None]:
        def run() -> None:
            if self._stopping.is_set():
                return
            started = time.monotonic()
            try:
                counts = job.func()
            except Exception as exc:  # the edge of a long-running loop: report and keep going
                self.log.error("%s failed: %s: %s (%.2fs)", job.name, type(exc).__name__, exc,
                               time.monotonic() - started, exc_info=not isinstance(exc, IncidentctlError))
            else:
                self.log.info(summary_line(job.name, counts or {}, time.monotonic() - started))
            finally:
                self.runs[job.name] += 1
        return run

    def start(self) -> None:
        names = ", ".join(f"{j.name} every {j.interval:g}s" for j in self.jobs)
        self.log.info("run: starting (%s)", names)
        self._scheduler.start()

    def stop(self) -> None:
        """Stops scheduling and waits for the job that is running, if any."""
        self._stopping.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self.log.info("run: stopped")

    def run_until_signalled(self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> int:
        """Starts, blocks until one of `signals` arrives, stops cleanly; returns the signal number."""
        received: list[int] = []
        wake = threading.Event()

        def handler(signum, _frame):
            received.append(signum)
            wake.set()

        previous = {s: signal.signal(s, handler) for s in signals}
        try:
            self.start()
            while not wake.wait(1.0):
                pass
            self.log.info("run: %s received, finishing the current run", signal.Signals(received[0]).name)
            self.stop()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
        return received[0]



def cycle_jobs(engine, settings, session, clock: Callable[[], datetime]) -> list[Job]:
    """The jobs of `incidentctl run`: process every process_interval, apply people's actions (the
    action inbox) every actions_interval, notify every notify_interval, with a bot token `slack`
    every slack_sync_interval (the bot's messages kept current, thread replies, reminders:
    notify/slack_sync.py), and, when purge_older_than is set, purge the raw archive once a day.
    notify and slack share one Web API client, so one pacer keeps both within Slack's limits (the
    jobs run on one thread). `process` stands by (one `standby=…` line) while another worker
    holds the applier lease.

    With no Slack route configured there is no notify job: it could only count the outbox, and
    settings are read once, so this says so in one warning now instead of a line every run.
    Raises ConfigError for a bad [[routes]] table."""
    from dataclasses import asdict

    from incidentctl.db.lease import Lease
    from incidentctl.errors import ProcessingBusy
    from incidentctl.incidents.model import Rules
    from incidentctl.incidents.processor import process_pending
    from incidentctl.notify.applier import apply_pending
    from incidentctl.notify.delivery import notify_pending, sync
    from incidentctl.notify.intent import AllowList
    from incidentctl.notify.routes import load_routes
    from incidentctl.notify.slack_api import bot_api
    from incidentctl.notify.usergroups import UserGroups
    from incidentctl.ops.retention import purge

    routes = load_routes(settings)
    rules = Rules.configured(settings)
    api = bot_api(settings, session)

    # One worker name for the life of `run`; no waiting: a standby tries again at its next turn.
    lease = Lease(engine, ttl=settings.lease_ttl, wait=0)

    def process() -> Mapping[str, Any]:
        try:
            return process_pending(engine, rules, batch_size=settings.batch_size, clock=clock, lease=lease).as_dict()
        except ProcessingBusy as exc:
            holder = exc.holder
            return {"standby": f"lease held by {holder.owner}" if holder is not None else str(exc)}

    allow = AllowList.configured(settings)
    groups = UserGroups(api, ttl=settings.slack_usergroup_ttl)  # members kept across the batches

    def actions() -> Mapping[str, Any]:
        try:
            return apply_pending(engine, allow=allow, session=session, clock=clock,
                                 timeout=settings.slack_timeout, lease=lease, groups=groups).as_dict()
        except ProcessingBusy as exc:
            holder = exc.holder
            return {"standby": f"lease held by {holder.owner}" if holder is not None else str(exc)}

    def notify() -> Mapping[str, Any]:
        summary = notify_pending(engine, settings, session, clock=clock, routes=routes, api=api,
                                 slack_budget=SLACK_RUN_BUDGET)
        return {k: v for k, v in summary.as_dict().items() if k in NOTIFY_COUNTS}

    def slack() -> Mapping[str, Any]:
        assert api is not None  # scheduled only with a bot token
        return sync(engine, settings, api, routes, clock(), SLACK_RUN_BUDGET).as_dict()

    def purge_old() -> Mapping[str, Any]:
        return asdict(purge(engine, settings.purge_older_than, clock()))

    jobs = [Job("process", settings.process_interval, process), Job("actions", settings.actions_interval, actions)]
    if routes:
        jobs.append(Job("notify", settings.notify_interval, notify))
    else:
        log.warning("Slack is not configured (SLACK_WEBHOOK_URL, SLACK_BOT_TOKEN with SLACK_CHANNEL, or [[routes]] "
                    "in the config file): no notify runs; the outbox stays pending until it is set and `run` restarts")
    if api is not None and any(r.channel for r in routes):
        jobs.append(Job("slack", settings.slack_sync_interval, slack))
    if settings.purge_older_than:
        jobs.append(Job("purge", PURGE_INTERVAL, purge_old))
    return jobs
