"""seen_signatures: each signature is claimed once across connections, and forgotten once expired."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from incidentctl.db.schema import seen_signatures
from incidentctl.ingest import signatures
from incidentctl.ingest.signatures import CLOCK_MARGIN, claim, forget_expired, signature

NOW = datetime(2026, 5, 4, 3, 2, 1, tzinfo=timezone.utc)


def remembered(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(seen_signatures.c.signature_hash)).scalars())


def test_a_signature_is_claimed_once(engine):
    a, b = signature("grafana-hmac", "aa", NOW), signature("grafana-hmac", "bb", NOW)
    other_scheme = signature("slack-v0", "aa", NOW)
    with engine.begin() as conn:
        assert claim(conn, [a, b, a], NOW) == {a.key, b.key}  # a repeat within the call counts once
        assert claim(conn, [], NOW) == set()
    with engine.begin() as conn:
        assert claim(conn, [b, other_scheme], NOW) == {other_scheme.key}  # same value, other signer: new
    assert remembered(engine) == {a.key, b.key, other_scheme.key}


def test_a_rolled_back_claim_leaves_the_signature_free(engine):
    a = signature("grafana-hmac", "aa", NOW)
    conn = engine.connect()
    with conn.begin() as transaction:
        assert claim(conn, [a], NOW) == {a.key}
        transaction.rollback()  # the webhook's insert failed: its signature must not count as seen
    conn.close()
    with engine.begin() as conn:
        assert claim(conn, [a], NOW) == {a.key}


def test_concurrent_claims_of_one_signature_give_it_to_one(engine):
    # Two receivers take the same replayed request at once: the second waits for the first's
    # transaction on the key, then finds it taken.
    a = signature("grafana-hmac", "aa", NOW)
    first = engine.connect()
    transaction = first.begin()
    assert claim(first, [a], NOW) == {a.key}
    result = {}

    def second() -> None:
        with engine.begin() as conn:
            result["claimed"] = claim(conn, [a], NOW)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(0.3)
    transaction.commit()
    first.close()
    thread.join(15)
    assert result == {"claimed": set()}


def test_expired_signatures_are_forgotten_after_the_clock_margin(engine, monkeypatch):
    monkeypatch.setattr(signatures, "FORGET_BATCH", 2)  # several delete transactions
    old = [signature("s", f"old{i}", NOW - CLOCK_MARGIN - timedelta(seconds=1)) for i in range(5)]
    recent = signature("s", "recent", NOW - CLOCK_MARGIN + timedelta(seconds=1))  # expired, within the margin
    valid = signature("s", "valid", NOW + timedelta(minutes=5))
    with engine.begin() as conn:
        claim(conn, [*old, recent, valid], NOW - timedelta(minutes=10))
    with engine.connect() as conn:
        assert forget_expired(conn, NOW) == 5
        assert forget_expired(conn, NOW) == 0
    assert remembered(engine) == {recent.key, valid.key}


def test_the_receivers_writer_forgets_expired_signatures_once_a_minute(engine):
    from incidentctl.ingest.archive import raw_alert
    from incidentctl.ingest.receiver.writer import FORGET_EVERY, GroupCommitWriter

    clock = [1000.0]
    writer = GroupCommitWriter(engine, monotonic=lambda: clock[0])
    writer.start()
    try:
        def store(value: str, received_at: datetime, expires_at: datetime):
            use = signature("grafana-hmac", value, expires_at)
            row_id = writer.submit(raw_alert(b"{}", received_at=received_at), use).result(10)
            # the writer works in order: once the next row is answered, its work after `use` is done
            writer.submit(raw_alert(b"{}", received_at=received_at)).result(10)
            return row_id, use

        _, expired = store("one", NOW, NOW + timedelta(minutes=5))
        later = NOW + timedelta(minutes=30)  # `expired` has expired by then
        clock[0] += FORGET_EVERY - 1
        _, fresh = store("two", later, later + timedelta(minutes=5))
        assert remembered(engine) == {expired.key, fresh.key}  # not yet a minute since the first
        clock[0] += 2
        store("three", later, later + timedelta(minutes=5))
        assert expired.key not in remembered(engine) and fresh.key in remembered(engine)
    finally:
        writer.stop()
