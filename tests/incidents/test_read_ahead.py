"""The next batch's rows, read, parsed and decided while the current batch is written
(processor.ReadAhead): they are exactly the rows the next batch would claim, a batch that fails
after reading ahead runs again on its own rows, not on the ones read ahead for the batch behind
it, and a decision made ahead is used only when the incidents it was made on are still as they
were when its batch begins (a person's ack in between makes the batch decide again)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from incidentctl.db.capabilities import capabilities
from incidentctl.db.lease import Lease
from incidentctl.db.schema import grafana_alerts, incidents
from incidentctl.incidents.actions import transition_many
from incidentctl.incidents.processor import ReadAhead
from tests.support import T0
from tests.support.processing import process_all, snapshot, store, written_rows
from tests.support.storm_history import storm


@pytest.fixture(scope="module")
def bodies():
    return list(storm(120, seed=5))


def test_the_rows_read_ahead_are_the_oldest_queued_but_the_current_batchs(engine, bodies):
    ids = store(engine, bodies[:8])
    with engine.begin() as conn:  # an older row still queued behind processed ones
        conn.execute(update(grafana_alerts).where(grafana_alerts.c.id.in_(ids[:2] + ids[3:4]))
                     .values(processed_at=bodies[0][0]))
    ahead = ReadAhead(engine, 3)
    ahead.keep(ahead.read([ids[4], ids[6]]))  # the current batch: not necessarily the lowest ids
    claimed = ahead.take(3)
    assert claimed is not None and claimed.ids == [ids[2], ids[5], ids[7]]
    assert [position for position, _ in claimed.parsed] == [0, 1, 2] and claimed.failed == {}
    assert ahead.take(3) is None  # taken once


def test_rows_read_ahead_for_a_bigger_batch_or_none_at_all_are_not_used(engine, bodies):
    ids = store(engine, bodies[:4])
    ahead = ReadAhead(engine, 3)
    ahead.keep(ahead.read([]))
    assert ahead.take(2) is None  # `process --limit` asks for fewer: the batch claims them itself
    ahead.keep(ahead.read(ids))
    assert ahead.take(3) is None  # nothing queued behind: the batch claims, as rows may have come


def test_a_body_read_ahead_that_does_not_parse_carries_its_error(engine, bodies):
    ids = store(engine, [bodies[0], (bodies[1][0], b"{not json")])
    ahead = ReadAhead(engine, 5)
    ahead.keep(ahead.read([]))
    claimed = ahead.take(5)
    assert claimed is not None and claimed.ids == ids
    assert [p for p, _ in claimed.parsed] == [0] and "invalid JSON" in claimed.failed[1]


class FailsOnce(Lease):
    """Fails the `on_batch`-th batch once, where it has written and read ahead but not committed,
    as a person's reopen racing the batch does (the processor runs such a batch again)."""

    def __init__(self, engine, on_batch: int):
        super().__init__(engine, heartbeat=False)
        self.fenced = 0
        self.on_batch = on_batch

    def fence(self, conn):
        self.fenced += 1
        if self.fenced == self.on_batch:
            raise IntegrityError("INSERT INTO incidents …", {}, Exception("1062 Duplicate entry"))
        super().fence(conn)


def test_a_batch_run_again_takes_its_own_rows_not_the_ones_read_ahead(second_engine, bodies):
    expected_engine, engine = second_engine("straight"), second_engine("retried")
    for target in (expected_engine, engine):
        store(target, bodies)
    process_all(expected_engine, batch_size=7)
    lease = FailsOnce(engine, on_batch=3)
    summary = process_all(engine, batch_size=7, lease=lease)
    assert lease.fenced > 4  # it failed once and went on
    assert summary.rows == len(bodies) and summary.errors == 0
    # The same rows in the same order (by content: MariaDB spends the ids a rolled-back batch took).
    assert snapshot(engine) == snapshot(expected_engine)
    assert written_rows(engine)["raw"] == written_rows(expected_engine)["raw"]


class NoGuess(ReadAhead):
    """Reads ahead but never decides ahead: every batch decides when it begins."""

    def guess(self, after, rules, cache):
        pass


def pipelines(engine) -> bool:
    """Whether the batch's statements run on behind it (MariaDB), the time a guess is made in."""
    with engine.connect() as conn:
        caps = capabilities(conn)
    return caps.bulk_insert and caps.server_process


def test_each_batch_uses_the_decision_made_ahead_when_nobody_acts_between_batches(second_engine, bodies):
    guessed, plain = second_engine("guessed"), second_engine("plain")
    for target in (guessed, plain):
        store(target, bodies)
    ahead = ReadAhead(guessed, 7)
    summary = process_all(guessed, batch_size=7, ahead=ahead)
    process_all(plain, batch_size=7, ahead=NoGuess(plain, 7))
    batches = -(-len(bodies) // 7)
    assert summary.rows == len(bodies)
    # Every batch but the first is guessed where statements run on behind the batch; elsewhere
    # nothing runs meanwhile and no batch is guessed.
    assert (ahead.guesses, ahead.held) == ((batches - 1, batches - 1) if pipelines(guessed) else (0, 0))
    assert written_rows(guessed) == written_rows(plain)


def test_a_person_acting_between_batches_makes_the_next_batch_decide_again(second_engine, bodies):
    """Three batches of the same seven bodies: the first opens incidents, which a person acks; the
    guess for the second (its repeats) was made before the acks, so the second reads them under
    its locks and decides again, and the acks stay; the third's guess, made after them, holds.
    The same rows as without guesses."""
    results = {}
    for name, reader_kind in (("guessed", ReadAhead), ("plain", NoGuess)):
        engine = second_engine(name)
        store(engine, bodies[:7] * 3)
        ahead = reader_kind(engine, 7)
        acked = []

        def ack_open_incidents(done, total, engine=engine, acked=acked):
            if done != 7:
                return
            with engine.connect() as conn:
                ids = list(conn.scalars(select(incidents.c.id).where(incidents.c.status == "open")))
            acked.extend(r.id for r in transition_many(engine, "ack", ids, by="alice", note=None, now=T0)
                         if r.ok)

        process_all(engine, batch_size=7, ahead=ahead, progress=ack_open_incidents)
        assert acked
        results[name] = (written_rows(engine), ahead, pipelines(engine))
    (guessed_rows, ahead, pipelined), (plain_rows, _, _) = results["guessed"], results["plain"]
    assert guessed_rows == plain_rows
    if pipelined:
        assert (ahead.guesses, ahead.held) == (2, 1)
    acks = [e for e in guessed_rows["events"] if e["kind"] == "acknowledged"]
    assert len(acks) == len(acked) and all(e["actor"] == "alice" for e in acks)
