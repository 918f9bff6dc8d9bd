"""Exactly once: overlapping `process` runs (one applies while the other waits for the applier
lease) and a SIGKILL mid-run give one uninterrupted run's result.

The reference is the same pure decision run in memory over the same rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from incidentctl.config import load_settings
from incidentctl.db.lease import holder
from incidentctl.incidents.processor import backlog
from tests.support.processing import database_incidents, expected_incidents, process_all, store
from tests.support.synthetic_history import history

SETTINGS = load_settings({})


def _reference(rows):
    return expected_incidents(rows, SETTINGS.group_by, SETTINGS.reopen_window)


@pytest.mark.backends("mysql")
@pytest.mark.slow
def test_two_processes_over_20000_rows_equal_one_run(engine, cli_env, incidentctl_bin):
    rows = list(history(series=100, minutes=4700, seed=3))[:20_000]
    assert len(rows) == 20_000
    store(engine, rows)
    # The second waits for the applier lease while the first applies (a loaded machine may take
    # longer than the default minute), then finds what is left, if anything.
    env = {**cli_env, "INCIDENTCTL_LEASE_WAIT": "240"}
    procs = [subprocess.Popen([incidentctl_bin, "process", "--output", "json", "--batch-size", "250"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    summaries = [json.loads(out) for out, _ in results]
    assert sum(s["rows"] for s in summaries) == 20_000  # every row processed once, by one of them
    assert holder(engine).epoch == 2  # one after the other: each held the lease once
    assert backlog(engine) == 0
    expected = _reference(rows)
    assert sum(s["opened"] for s in summaries) == len(expected)
    assert database_incidents(engine) == expected  # no twins, no double counts


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_equals_one_run(engine, cli_env, incidentctl_bin):
    rows = list(history(series=60, minutes=1500, seed=5))
    store(engine, rows)
    total = backlog(engine)
    proc = subprocess.Popen([incidentctl_bin, "process", "--batch-size", "10"], env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while backlog(engine) > total * 0.7 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = backlog(engine)
    assert 0 < left < total, "the kill must land mid-run"
    rerun = subprocess.run([incidentctl_bin, "process", "--output", "json"], env=cli_env, capture_output=True,
                           text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["rows"] == left
    assert database_incidents(engine) == _reference(rows)


@pytest.mark.backends("mysql")
def test_receiver_inserts_do_not_wait_for_a_processing_batch(engine, db_url, fixture_bodies):
    # Under REPEATABLE READ the claim's gap lock made the receiver's INSERT wait for the batch
    # (a 503 at write_timeout); processing runs READ COMMITTED. The insert happens mid-batch,
    # once the batch has written its timeline.
    from datetime import datetime, timezone

    from sqlalchemy import event

    from incidentctl.db.engine import make_engine
    from incidentctl.ingest.archive import insert_raw_alerts, raw_alert

    body = fixture_bodies["grafana/grafana9_zulip_firing_single_valueString.json"]
    store(engine, [(datetime(2026, 1, 1, tzinfo=timezone.utc), body)])
    receiver = make_engine(db_url)
    inserted = []

    def receive_after_the_timeline(conn, cursor, statement, *args):
        if inserted or not statement.startswith("INSERT INTO incident_events"):
            return
        with receiver.connect() as other:
            other.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 2")
            other.commit()
            with other.begin():
                inserted.extend(insert_raw_alerts(other, [raw_alert(body, received_at=datetime.now(timezone.utc))]))

    event.listen(engine, "after_cursor_execute", receive_after_the_timeline)
    try:
        # the steady state: the backlog is smaller than a batch, so the claim reads to the queue's end
        assert process_all(engine).rows == 2  # the received row is taken by the next batch
    finally:
        event.remove(engine, "after_cursor_execute", receive_after_the_timeline)
        receiver.dispose()
    assert len(inserted) == 1 and backlog(engine) == 0
