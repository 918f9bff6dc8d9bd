"""lease: one holder at a time, takeover after expiry, fencing of a worker that lost it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import NamedTuple

import pytest
from sqlalchemy import select

from incidentctl.db.lease import APPLIER, Holder, Lease, Step, holder, owner_id, step
from incidentctl.db.schema import deliveries, leases
from incidentctl.errors import LeaseLost, ProcessingBusy
from tests.support import T0

ME, OTHER = "host-a:1:aaaa", "host-b:2:bbbb"


def row(owner: str, expires_in_s: float, epoch: int = 3) -> Holder:
    return Holder(APPLIER, owner, epoch, T0 - timedelta(minutes=1), T0, T0 + timedelta(seconds=expires_in_s))


class Case(NamedTuple):
    current: Holder | None
    step: Step


STEPS = {
    # nobody ever held it: create the row
    "no_row": Case(None, Step.CREATE),
    # another worker's and not expired: wait (a standby)
    "held_by_another": Case(row(OTHER, 5), Step.WAIT),
    # another worker's but expired (it died, or released: expiry = release time): take it over
    "expired": Case(row(OTHER, -0.001), Step.TAKE),
    "expires_exactly_now": Case(row(OTHER, 0), Step.TAKE),
    # our own name on a live row (acquired again after a lost fence): take it, a new epoch
    "ours": Case(row(ME, 5), Step.TAKE),
}


@pytest.mark.parametrize("case", STEPS.values(), ids=STEPS.keys())
def test_step(case):
    assert step(case.current, ME, T0) == case.step


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def lease(engine, clock, owner, **kw) -> Lease:
    kw.setdefault("wait", 0)
    return Lease(engine, clock=clock, owner=owner, ttl=10, heartbeat=False, **kw)


def test_owner_names_host_pid_and_a_random_part():
    host, pid, rand = owner_id().rsplit(":", 2)
    assert host and pid.isdigit() and len(rand) == 8 and owner_id() != owner_id()


def test_one_holder_then_the_other_after_release(engine):
    clock = Clock()
    a, b = lease(engine, clock, ME), lease(engine, clock, OTHER)
    with a:
        assert a.epoch == 1
        with pytest.raises(ProcessingBusy, match=ME) as busy:
            b.acquire()
        assert busy.value.holder.owner == ME
    with b:  # released: no waiting for the expiry
        assert b.epoch == 2 and holder(engine).owner == OTHER


def test_a_standby_takes_over_once_the_lease_expires(engine):
    clock = Clock()
    a, b = lease(engine, clock, ME), lease(engine, clock, OTHER)
    a.acquire()  # and dies: never renews, never releases
    clock.advance(9.9)
    with pytest.raises(ProcessingBusy):
        b.acquire()
    clock.advance(0.2)
    assert b.acquire() == 2
    assert holder(engine).owner == OTHER


def test_a_waiting_standby_polls_until_the_holder_expires(engine):
    clock = Clock()
    a = lease(engine, clock, ME)
    a.acquire()
    slept: list[float] = []

    def sleep(seconds):
        slept.append(seconds)
        clock.advance(seconds)

    b = Lease(engine, clock=clock, owner=OTHER, ttl=10, wait=30, heartbeat=False, sleep=sleep,
              monotonic=lambda: (clock.now - T0).total_seconds())
    assert b.acquire() == 2
    assert 10 <= sum(slept) <= 11 and max(slept) <= 1.0


def test_a_fenced_write_commits_only_under_the_current_epoch(engine):
    clock = Clock()
    a, b = lease(engine, clock, ME), lease(engine, clock, OTHER)
    a.acquire()
    with engine.begin() as conn:  # a's batch while it holds the lease: commits, and renews
        conn.execute(deliveries.insert().values(attempted_at=T0, route="a1", changes=1, outcome="ok"))
        a.fence(conn)
    assert holder(engine).expires_at == T0 + timedelta(seconds=10)
    clock.advance(11)  # a stalls past its expiry; b takes over
    b.acquire()
    with pytest.raises(LeaseLost, match="taken over"), engine.begin() as conn:  # a's next batch: rolled back
        conn.execute(deliveries.insert().values(attempted_at=T0, route="a2", changes=1, outcome="ok"))
        a.fence(conn)
    with engine.connect() as conn:
        assert list(conn.execute(select(deliveries.c.route)).scalars()) == ["a1"]
    assert not a.held and holder(engine).epoch == 2


def test_an_expired_lease_nobody_took_still_fences_fine(engine):
    # The epoch, not the clock, decides: nobody applied anything in between.
    clock = Clock()
    a = lease(engine, clock, ME)
    a.acquire()
    clock.advance(60)
    a.renew()
    assert holder(engine).expires_at == clock.now + timedelta(seconds=10)


def test_two_workers_racing_for_a_free_lease_get_one_epoch_each(engine):
    clock = Clock()
    workers = [lease(engine, clock, f"host:{n}:x", wait=5) for n in range(4)]
    got: list[int] = []
    barrier = threading.Barrier(len(workers))

    def take(w: Lease):
        barrier.wait()
        with w:
            got.append(w.epoch)
            clock.advance(0)  # hold it a moment; the others wait for the release

    threads = [threading.Thread(target=take, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [1, 2, 3, 4]  # one at a time, every acquisition a new epoch


def test_nested_use_holds_once(engine):
    clock = Clock()
    a = lease(engine, clock, ME)
    with a:
        with a:
            assert a.epoch == 1
        assert a.held
    assert not a.held
    with engine.connect() as conn:
        assert conn.execute(select(leases.c.expires_at)).scalar_one() == T0  # released at T0


def test_the_heartbeat_renews_while_held(engine):
    clock = Clock()

    def moving_clock():
        clock.advance(0.5)
        return clock.now

    a = Lease(engine, clock=moving_clock, owner=ME, ttl=0.3, wait=0)
    with a:
        first = holder(engine).renewed_at
        deadline = time.monotonic() + 10  # ttl/3 = 0.1 s: renewed long before, even on a loaded machine
        while holder(engine).renewed_at == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder(engine).renewed_at > first and holder(engine).epoch == 1
    assert not a.held
