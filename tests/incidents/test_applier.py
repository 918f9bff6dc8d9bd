"""The applier under the lease: conflicts retried and counted, a worker that lost the lease
commits nothing, a standby `run` stands by. On SQLite and MariaDB (the cluster: tests/e2e)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from incidentctl.config import load_settings
from incidentctl.db.lease import Lease, holder
from incidentctl.db.schema import grafana_alerts, incidents
from incidentctl.errors import LeaseLost, ProcessingBusy
from incidentctl.incidents.model import Rules
from incidentctl.incidents.processor import backlog
from incidentctl.ops.scheduler import cycle_jobs
from tests.support import T0
from tests.support.conflicts import conflicting
from tests.support.factories import count_rows
from tests.support.processing import process_all, snapshot, store
from tests.support.synthetic_history import history

RULES = Rules.configured(load_settings({}))


def rows(n: int):
    """The first `n` webhooks of a history whose label sets recur (series fire, resolve, flap)."""
    return list(history(series=30, minutes=120, seed=3))[:n]


def test_a_conflicting_batch_runs_again_and_is_counted(engine, second_engine):
    plain = second_engine()
    store(engine, rows(30))
    store(plain, rows(30))
    with conflicting(engine, "UPDATE grafana_alerts SET processed_at", times=2) as failed:
        summary = process_all(engine, batch_size=10)
    assert len(failed) == 2 and summary.conflicts_retried == 2 and summary.rows == 30
    expected = process_all(plain, batch_size=10)
    assert expected.conflicts_retried == 0
    assert snapshot(engine) == snapshot(plain)
    assert {k: v for k, v in summary.as_dict().items() if k != "conflicts_retried"} == \
        {k: v for k, v in expected.as_dict().items() if k != "conflicts_retried"}


def test_a_worker_that_lost_the_lease_commits_no_batch_after_it(engine):
    store(engine, rows(20))
    now = [datetime.now(timezone.utc)]
    stale = Lease(engine, clock=lambda: now[0], owner="host-a:1:stale", ttl=5, heartbeat=False)
    standby = Lease(engine, clock=lambda: now[0], owner="host-b:2:standby", ttl=5, heartbeat=False, wait=0)
    with stale:
        process_all(engine, batch_size=10, limit=10, lease=stale)  # its first batch commits
        now[0] += timedelta(seconds=6)  # it stalls past its expiry; the standby takes over
        standby.acquire()
        with pytest.raises(LeaseLost):
            process_all(engine, batch_size=10, lease=stale)
    assert backlog(engine) == 10  # the second batch was rolled back
    assert holder(engine).owner == "host-b:2:standby"
    standby.release()  # at the test's clock, 6 s ahead: the next worker runs on that clock, not waiting them out
    assert process_all(engine, lease=Lease(engine, clock=lambda: now[0])).rows == 10


def test_process_waits_for_the_lease_then_gives_up(engine):
    store(engine, rows(3))
    with Lease(engine, owner="host-a:1:holder", heartbeat=False), \
            pytest.raises(ProcessingBusy, match="host-a:1:holder"):
        process_all(engine, lease=Lease(engine, wait=0.2))
    assert backlog(engine) == 3


def test_run_stands_by_while_another_worker_applies(engine):
    store(engine, rows(3))
    settings = load_settings({})
    process = next(job for job in cycle_jobs(engine, settings, None, lambda: T0) if job.name == "process")
    with Lease(engine, owner="host-a:1:holder", heartbeat=False):
        assert process.func() == {"standby": "lease held by host-a:1:holder"}
    assert process.func()["rows"] == 3


def test_the_lease_is_released_after_a_run(engine):
    store(engine, rows(3))
    process_all(engine)
    lease = holder(engine)
    assert lease.expires_at <= datetime.now(timezone.utc) and lease.epoch == 1

    assert count_rows(engine, grafana_alerts) == 3 and count_rows(engine, incidents) >= 1


def test_a_persons_ack_that_conflicts_with_a_batch_is_run_again(engine):
    from incidentctl.incidents.actions import add_note, transition
    from tests.support.factories import add_incident

    incident_id = add_incident(engine)
    with conflicting(engine, "UPDATE incidents SET") as failed:
        assert transition(engine, "ack", incident_id, by="ann", note=None, now=T0) == "acknowledged"
    with conflicting(engine, "INSERT INTO incident_events", code=1205) as failed_note:
        add_note(engine, incident_id, "looking", by="ann", now=T0)
    assert len(failed) == len(failed_note) == 1
