"""The scheduler with injected jobs: runs each repeatedly, never two at once, stops cleanly."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest

from incidentctl.errors import DatabaseUnavailable
from incidentctl.ops.scheduler import Job, Scheduler, summary_line


def wait_for(predicate, timeout=10.0):
    """Polls until `predicate()` holds; fails the test after a generous timeout (not a speed test)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.mark.parametrize("counts, line", [
    ({"claimed": 3, "opened": 1}, "process: claimed=3 opened=1 (0.12s)"),  # scalars in order
    ({"sent": 2, "routes": [{"x": 1}]}, "process: sent=2 (0.12s)"),       # lists are not logged
    ({}, "process: done (0.12s)"),                                         # nothing to count
])
def test_summary_line(counts, line):
    assert summary_line("process", counts, 0.1234) == line


def test_jobs_repeat_never_overlap_and_log_one_line_per_run(caplog):
    active, most = [0], [0]
    lock = threading.Lock()

    def work(name):
        def run():
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            time.sleep(0.02)
            with lock:
                active[0] -= 1
            return {"job": name}
        return run

    caplog.set_level(logging.INFO, logger="incidentctl.run")
    sched = Scheduler([Job("process", 0.05, work("p")), Job("notify", 0.05, work("n"))])
    sched.start()
    wait_for(lambda: min(sched.runs.values()) >= 3)
    sched.stop()
    assert most[0] == 1  # one at a time, across jobs too
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(("process:", "notify:"))]
    assert len(lines) == sum(sched.runs.values())
    assert any(line.startswith("notify: job=n (") for line in lines)


def test_failing_job_is_logged_and_the_loop_goes_on(caplog):
    calls = []

    def broken():
        calls.append(1)
        raise DatabaseUnavailable("database x is unavailable: refused")

    sched = Scheduler([Job("process", 0.05, broken)])
    sched.start()
    wait_for(lambda: len(calls) >= 2)
    sched.stop()
    assert "process failed: DatabaseUnavailable: database x is unavailable: refused" in caplog.text


def test_stop_waits_for_the_current_run():
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(5)
        finished.set()
        return {}

    sched = Scheduler([Job("process", 60, slow)])
    sched.start()
    assert started.wait(10)
    stopper = threading.Thread(target=sched.stop)
    stopper.start()
    stopper.join(0.2)
    assert stopper.is_alive() and not finished.is_set()  # still waiting for the run
    release.set()
    stopper.join(10)
    assert finished.is_set() and not stopper.is_alive()


def test_sigterm_stops_after_the_current_run():
    runs = []

    def job():
        runs.append(1)
        return {"n": len(runs)}

    sched = Scheduler([Job("notify", 0.05, job)])
    threading.Thread(target=lambda: (wait_for(lambda: len(runs) >= 2), os.kill(os.getpid(), signal.SIGTERM)),
                     daemon=True).start()
    assert sched.run_until_signalled() == signal.SIGTERM
    count = len(runs)
    time.sleep(0.2)
    assert len(runs) == count  # nothing runs after the stop


def test_bad_interval():
    with pytest.raises(ValueError, match="interval must be positive"):
        Scheduler([Job("process", 0, dict)])


SLACK = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/XXXX"}


def test_cycle_jobs_purge_only_when_configured(tmp_path):
    from incidentctl.config import load_settings
    from incidentctl.ops.scheduler import cycle_jobs

    plain = cycle_jobs(None, load_settings(environ=SLACK), None, time.time)
    assert [(j.name, j.interval) for j in plain] == [("process", 15.0), ("actions", 3.0), ("notify", 30.0)]
    settings = load_settings(environ={**SLACK, "INCIDENTCTL_PURGE_OLDER_THAN": "90d",
                                      "INCIDENTCTL_NOTIFY_INTERVAL": "1m"})
    assert [(j.name, j.interval) for j in cycle_jobs(None, settings, None, time.time)] == [
        ("process", 15.0), ("actions", 3.0), ("notify", 60.0), ("purge", 86400.0)]


def test_cycle_jobs_without_slack_warn_once_and_do_not_notify(caplog):
    from incidentctl.config import load_settings
    from incidentctl.ops.scheduler import cycle_jobs

    with caplog.at_level(logging.INFO, logger="incidentctl.run"):
        jobs = cycle_jobs(None, load_settings(environ={}), None, time.time)
    assert [j.name for j in jobs] == ["process", "actions"]  # the REST door needs no Slack
    assert [(r.levelname, r.getMessage().split(" (")[0]) for r in caplog.records] == [
        ("WARNING", "Slack is not configured")]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="incidentctl.run"):
        cycle_jobs(None, load_settings(environ=SLACK), None, time.time)
    assert caplog.records == []  # configured: nothing to warn about


def test_cycle_jobs_bad_routes_raise_config_error():
    from incidentctl.config import Settings, load_settings
    from incidentctl.errors import ConfigError
    from incidentctl.ops.scheduler import cycle_jobs

    base = load_settings(environ=SLACK)
    with pytest.raises(ConfigError, match="webhook_url"):
        cycle_jobs(None, Settings(base.values, base.sources, {"routes": [{"name": "oncall"}]}), None, time.time)


def test_cycle_jobs_with_a_bot_token_keep_its_messages_current(engine):
    """With a bot token and a channel, `run` has a `slack` job every slack_sync_interval (3 s by
    default); one run of it edits the message an acknowledgement changed."""
    import requests

    from incidentctl.config import load_settings
    from incidentctl.incidents.actions import transition
    from incidentctl.ops.scheduler import cycle_jobs
    from tests.support import T0
    from tests.support.factories import add_incidents_with_changes, outbox_rows
    from tests.support.slack_web_fake import TOKEN, FakeSlackWeb

    with FakeSlackWeb() as fake, requests.Session() as session:
        settings = load_settings(environ={"SLACK_BOT_TOKEN": TOKEN, "SLACK_CHANNEL": "C0ALERTS",
                                          "INCIDENTCTL_SLACK_API_URL": fake.api_url})
        now = [T0]
        jobs = {j.name: j for j in cycle_jobs(engine, settings, session, lambda: now[0])}
        assert [(name, job.interval) for name, job in jobs.items()] == [
            ("process", 15.0), ("actions", 3.0), ("notify", 30.0), ("slack", 3.0)]
        (change,) = add_incidents_with_changes(engine, 1, created_at=T0)
        assert jobs["notify"].func()["sent"] == 1
        transition(engine, "ack", outbox_rows(engine)[change]["incident_id"], by="jo", note=None, now=T0)
        counts = jobs["slack"].func()
        (message,) = fake.messages.values() if len(fake.messages) == 1 else [
            m for m in fake.messages.values() if not m.thread_ts]
        assert (counts["updated"], counts["replies"], message.update_count) == (1, 1, 1)
