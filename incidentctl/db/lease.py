"""Leases: one worker at a time, cluster-wide, on plain replicated rows.

A lease is a row of `leases`: its owner (host:pid:random), an expiry renewed while the owner
works, and an epoch that grows at every acquisition. The applier of incident changes (`process`,
`replay --process`, `rebuild`) holds the APPLIER lease, so batches apply one at a time in queue
order whichever host or Galera node the workers run on. GET_LOCK would not do: on Galera it holds
on one node only. The same code runs on SQLite, a single MariaDB and Galera.

- Acquiring reads the row and, when it is free or expired, takes it by a compare-and-set on the
  epoch. Two workers racing on one server: one UPDATE finds the epoch changed. On two Galera
  nodes: both write the row and certification aborts one (error 1213, retried, then it sees the
  lease taken).
- Fencing: every batch's transaction runs `fence(conn)` before it commits, an UPDATE of the row
  under our owner and epoch that also extends the expiry. A worker whose lease was taken over
  (it stalled past the expiry) finds no row to update, raises LeaseLost and rolls its batch back;
  on Galera the takeover and the fence write the same row, so at most one of them commits.
- While held, a heartbeat thread (its own connection) renews the lease every ttl/3, so a long
  `rebuild` or a quiet stretch between batches does not lose it. A worker that dies stops
  renewing; a standby takes over once the expiry passes. Times come from the workers' clocks:
  they must agree to well within the ttl (NTP).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from incidentctl.db.capabilities import capabilities
from incidentctl.db.engine import short_error
from incidentctl.db.retry import Conflicts, retry_conflicts
from incidentctl.db.schema import LEASE_OWNER_MAX, leases
from incidentctl.durations import utc_now
from incidentctl.errors import DatabaseConflict, LeaseLost, ProcessingBusy

log = logging.getLogger(__name__)

APPLIER = "applier"  # the lease of whoever applies changes to incidents
DEFAULT_TTL = 15.0  # seconds; the lease_ttl setting
DEFAULT_WAIT = 60.0  # seconds; the lease_wait setting


def owner_id() -> str:
    """host:pid:random, unique per worker (a restarted pid on the same host differs by the random)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"[-LEASE_OWNER_MAX:]


@dataclass(frozen=True)
class Holder:
    """A lease row as read."""

    name: str
    owner: str
    epoch: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime

    def live(self, now: datetime) -> bool:
        return self.expires_at > now


class Step(StrEnum):
    CREATE = "create"  # no row yet: insert it
    TAKE = "take"  # free or expired: take it over, epoch + 1
    WAIT = "wait"  # another owner's, not expired


def step(current: Holder | None, owner: str, now: datetime) -> Step:
    """What a worker named `owner` does about the lease `current` at `now`."""
    if current is None:
        return Step.CREATE
    if current.live(now) and current.owner != owner:
        return Step.WAIT
    return Step.TAKE


def read(conn: Connection, name: str = APPLIER) -> Holder | None:
    row = conn.execute(select(leases).where(leases.c.name == name)).first()
    return Holder(**row._mapping) if row is not None else None


def holder(engine: Engine, name: str = APPLIER) -> Holder | None:
    """The lease as it is (live or not), or None when no worker ever took it."""
    with engine.connect() as conn:
        return read(conn, name)


@contextmanager
def applier_connection(engine: Engine) -> Iterator[Connection]:
    """A connection that applies changes to incidents: READ COMMITTED on MySQL, which takes no
    gap locks, so the receiver's INSERTs into the queue never wait for a batch (the lease
    already orders the batches)."""
    with engine.connect() as conn:
        if capabilities(conn).row_locks:
            conn.execution_options(isolation_level="READ COMMITTED")
        yield conn


class Lease:
    """The lease `name` for one worker. `with lease:` acquires it (waiting up to `wait` seconds
    while another worker holds it: ProcessingBusy after), renews it in the background and releases
    it at the end; nested `with` blocks on the same Lease hold it once. `fence(conn)` goes in every
    transaction that writes under it. `clock` is wall time shared by every worker (not a batch's
    clock, which may replay other times)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now, name: str = APPLIER,
                 ttl: float = DEFAULT_TTL, wait: float = DEFAULT_WAIT, owner: str | None = None,
                 heartbeat: bool = True, conflicts: Conflicts | None = None,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic):
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")
        self.engine, self.clock, self.name = engine, clock, name
        self.ttl, self.wait = timedelta(seconds=ttl), wait
        self.owner = owner or owner_id()
        self.conflicts = conflicts if conflicts is not None else Conflicts()
        self.epoch: int | None = None  # set while held
        self._heartbeat = heartbeat
        self._sleep, self._monotonic = sleep, monotonic
        self._depth = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- holding ----------------------------------------------------------------------------------

    def __enter__(self) -> Lease:
        if self._depth == 0:
            self.acquire()
            if self._heartbeat:
                self._start_heartbeat()
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._stop_heartbeat()
            self.release()

    @property
    def held(self) -> bool:
        return self.epoch is not None

    def acquire(self) -> int:
        """Takes the lease, waiting while another worker holds it; returns the epoch. Raises
        ProcessingBusy after `wait` seconds (at once with wait 0), naming the holder."""
        deadline = self._monotonic() + self.wait
        while True:
            got, current = retry_conflicts(self._try_acquire, counts=self.conflicts)
            if got is not None:
                return got
            if current is None:  # lost a race for the row: read it again at once
                continue
            if self._monotonic() >= deadline:
                raise ProcessingBusy(
                    f"another worker holds the {self.name} lease: {current.owner} since "
                    f"{current.acquired_at:%Y-%m-%d %H:%M:%S}Z, until {current.expires_at:%H:%M:%S}Z unless renewed",
                    holder=current)
            self._sleep(self._poll(current))

    def _poll(self, current: Holder) -> float:
        """Until the holder's expiry (it may release earlier), at most a second and at least 50 ms."""
        left = (current.expires_at - self.clock()).total_seconds()
        return min(1.0, max(0.05, left))

    def _try_acquire(self) -> tuple[int | None, Holder | None]:
        """One transaction: (the new epoch, None) when it took the lease; (None, the live holder),
        or (None, None) when another worker wrote the row between our read and our write."""
        now = self.clock()
        values = {"owner": self.owner, "acquired_at": now, "renewed_at": now, "expires_at": now + self.ttl}
        with self.engine.begin() as conn:
            current = read(conn, self.name)
            todo = step(current, self.owner, now)
            if todo is Step.WAIT:
                return None, current
            if todo is Step.CREATE:
                try:
                    with conn.begin_nested():
                        conn.execute(leases.insert().values(name=self.name, epoch=1, **values))
                except IntegrityError:  # another worker created it first
                    return None, None
                epoch = 1
            else:
                assert current is not None  # step() takes only an existing row
                epoch = current.epoch + 1
                taken = conn.execute(update(leases).where(leases.c.name == self.name,
                                                          leases.c.epoch == current.epoch)
                                     .values(epoch=epoch, **values)).rowcount
                if taken != 1:  # another worker took it between our read and our write
                    return None, None
        self.epoch = epoch
        return epoch, None

    def fence(self, conn: Connection) -> None:
        """In the caller's transaction: proves this worker still holds the lease under its epoch,
        and extends it. Raises LeaseLost when another worker took it over; the caller's transaction
        must then roll back (raising does, in a `with conn.begin()` block)."""
        if self.epoch is None:
            raise LeaseLost(f"the {self.name} lease is not held")
        now = self.clock()
        kept = conn.execute(update(leases).where(leases.c.name == self.name, leases.c.owner == self.owner,
                                                 leases.c.epoch == self.epoch)
                            .values(renewed_at=now, expires_at=now + self.ttl)).rowcount
        if kept != 1:
            lost, self.epoch = self.epoch, None
            raise LeaseLost(f"the {self.name} lease (epoch {lost}) was taken over by another worker; "
                            "this worker's last batch was rolled back")

    def renew(self) -> None:
        """Extends the lease in a transaction of its own. Raises LeaseLost."""
        def once() -> None:
            with self.engine.begin() as conn:
                self.fence(conn)
        retry_conflicts(once, counts=self.conflicts)

    def release(self) -> None:
        """Lets the lease go (expiry = now), so a standby need not wait for it to run out. Best
        effort: when the database cannot be reached the lease simply expires."""
        epoch, self.epoch = self.epoch, None
        if epoch is None:
            return
        def once() -> None:
            with self.engine.begin() as conn:
                conn.execute(update(leases).where(leases.c.name == self.name, leases.c.owner == self.owner,
                                                  leases.c.epoch == epoch).values(expires_at=self.clock()))
        try:
            retry_conflicts(once, counts=self.conflicts)
        except (SQLAlchemyError, DatabaseConflict) as exc:
            log.warning("could not release the %s lease (it expires by itself): %s", self.name, short_error(exc))

    # -- heartbeat --------------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.name}", daemon=True)
        self._thread.start()

    def _stop_heartbeat(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _beat(self) -> None:
        every = self.ttl.total_seconds() / 3
        while not self._stop.wait(every):
            try:
                self.renew()
            except LeaseLost as exc:  # the next fence says so to the worker
                log.warning("%s", exc)
                return
            except (SQLAlchemyError, DatabaseConflict) as exc:  # e.g. SQLite busy under a long rebuild
                log.warning("could not renew the %s lease: %s", self.name, short_error(exc))
