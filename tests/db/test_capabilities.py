"""capabilities: what each database answers, and that what it says it can do, it does."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects import mysql

from incidentctl.db.capabilities import Capabilities, capabilities
from incidentctl.db.schema import deliveries, seen_signatures

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)

SQLITE = Capabilities(bulk_insert=False, returning=True, returning_many=True, on_duplicate_key=False,
                      row_locks=False, delete_limit=False,
                      packet_limit=False, server_process=False, alter_columns=False, live_auto_increment=False)
MARIADB = Capabilities(bulk_insert=True, returning=True, returning_many=True, on_duplicate_key=True,
                       row_locks=True, delete_limit=True,
                       packet_limit=True, server_process=True, alter_columns=True, live_auto_increment=True)
MYSQL8 = Capabilities(bulk_insert=False, returning=False, returning_many=False, on_duplicate_key=True,
                      row_locks=True, delete_limit=True,
                      packet_limit=True, server_process=True, alter_columns=True, live_auto_increment=False)


def test_each_backend_answers_as_expected(engine, backend):
    with engine.connect() as conn:
        caps = capabilities(conn)
        expected = SQLITE if backend == "sqlite" else MARIADB if conn.dialect.is_mariadb else MYSQL8
        assert caps == expected
        assert capabilities(conn) is caps  # asked once per dialect


def test_what_it_says_it_can_do_works(engine):
    with engine.connect() as conn:
        caps = capabilities(conn)
        with conn.begin():
            conn.execute(deliveries.insert(), [{"attempted_at": NOW, "route": f"r{i}", "changes": 1, "outcome": "ok"}
                                               for i in range(3)])
        if caps.returning:
            with conn.begin():
                returned = conn.execute(deliveries.insert().returning(deliveries.c.route),
                                        {"attempted_at": NOW, "route": "back", "changes": 1, "outcome": "ok"}).scalars()
                assert list(returned) == ["back"]
        if caps.row_locks:
            with conn.begin():
                query = select(deliveries.c.id).order_by(deliveries.c.id)
                assert len(conn.execute(query.with_for_update()).all()) >= 3
        if caps.delete_limit:
            with conn.begin():
                assert conn.execute(delete(deliveries).with_dialect_options(mysql_limit=2)).rowcount == 2
        if caps.on_duplicate_key:
            row = {"signature_hash": "a" * 64, "seen_at": NOW, "expires_at": NOW}
            with conn.begin():
                conn.execute(seen_signatures.insert(), row)
                upsert = mysql.insert(seen_signatures)
                conn.execute(upsert.on_duplicate_key_update(expires_at=upsert.inserted.expires_at), row)
                assert conn.scalar(select(func.count()).select_from(seen_signatures)) == 1
        if caps.packet_limit:
            assert int(conn.scalar(text("SELECT @@max_allowed_packet"))) > 0
        if caps.live_auto_increment:  # the counter as it is now: past a deleted row, past a rolled-back one
            conn.rollback()  # the reads above began a transaction
            with conn.begin():
                newest = conn.scalar(select(func.max(deliveries.c.id)))
                conn.execute(delete(deliveries).where(deliveries.c.id == newest))
            with conn.begin() as rolled_back:
                conn.execute(deliveries.insert(), {"id": newest + 5, "attempted_at": NOW, "route": "r", "changes": 1,
                                                   "outcome": "ok"})
                rolled_back.rollback()
            assert conn.scalar(text("SELECT auto_increment FROM information_schema.tables WHERE table_schema = "
                                    "DATABASE() AND table_name = 'deliveries'")) == newest + 6
