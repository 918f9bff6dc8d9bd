"""Outbox claims as row updates: two notify runs never hold the same row; a conflict is retried."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from incidentctl.db.retry import Conflicts
from incidentctl.db.schema import notifications
from incidentctl.notify import outbox
from tests.support import T0
from tests.support.conflicts import conflicting
from tests.support.factories import add_incidents_with_changes

NOW = T0 + timedelta(minutes=1)
LEASE = timedelta(minutes=2)


def claimed_by(engine) -> dict[int, str | None]:
    with engine.connect() as conn:
        return dict(conn.execute(select(notifications.c.id, notifications.c.claimed_by)).all())


def test_a_claim_names_its_claimer_and_hides_the_rows_until_it_expires(engine):
    ids = add_incidents_with_changes(engine, 3)
    rows = outbox.claim_due(engine, NOW, LEASE, claimer="host-a:1:x")
    assert [r["id"] for r in rows] == ids and {r["claimed_by"] for r in rows} == {"host-a:1:x"}
    assert outbox.claim_due(engine, NOW + LEASE - timedelta(seconds=1), LEASE, claimer="host-b:2:y") == []
    again = outbox.claim_due(engine, NOW + LEASE, LEASE, claimer="host-b:2:y")  # the first run died
    assert [r["id"] for r in again] == ids and set(claimed_by(engine).values()) == {"host-b:2:y"}


def test_a_dry_run_claims_nothing(engine):
    ids = add_incidents_with_changes(engine, 2)
    assert [r["id"] for r in outbox.claim_due(engine, NOW, LEASE, claim=False)] == ids
    assert set(claimed_by(engine).values()) == {None}


def test_concurrent_claimers_split_the_rows(engine):
    ids = add_incidents_with_changes(engine, 40)
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(4)

    def claim(name: str):
        barrier.wait()
        got[name] = [r["id"] for r in outbox.claim_due(engine, NOW, LEASE, claimer=name, limit=15)]

    threads = [threading.Thread(target=claim, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for rows in got.values() for i in rows]
    assert len(everything) == len(set(everything))  # no row twice
    assert set(everything) <= set(ids) and len(everything) >= 15  # a claimer that lost its rows gets none of them


def test_a_conflicting_claim_is_retried_and_counted(engine):
    ids = add_incidents_with_changes(engine, 2)
    counts = Conflicts()
    with conflicting(engine, "UPDATE notifications SET", times=1) as failed:
        rows = outbox.claim_due(engine, NOW, LEASE, claimer="host-a:1:x", conflicts=counts)
    assert [r["id"] for r in rows] == ids and len(failed) == 1 and counts.total == 1
