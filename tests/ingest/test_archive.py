"""The raw archive's insert: ids in order, bodies intact, big batches split under the packet limit."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from incidentctl.db.rows import STATEMENT_BYTES
from incidentctl.db.schema import grafana_alerts
from incidentctl.ingest.archive import BodyRoom, body_room, insert_raw_alerts, largest_body_for, raw_alert

NOW = datetime(2026, 1, 2, 3, 4, 5, 600700, tzinfo=timezone.utc)


def test_batch_ids_follow_input_order_and_large_bodies_split_statements(engine):
    big = b'{"alerts": []}' + b" " * (STATEMENT_BYTES // 2)  # three of these exceed one statement
    bodies = [b'{"n": %d}' % i for i in range(5)] + [big, big + b" ", big + b"  "] + [b"not json"]
    with engine.begin() as conn:
        ids = insert_raw_alerts(conn, [raw_alert(b, received_at=NOW) for b in bodies])
    assert ids == sorted(ids) and len(set(ids)) == len(bodies)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(grafana_alerts.c.id, grafana_alerts.c.body)).all())
    assert [stored[i] for i in ids] == bodies


def test_single_insert_and_empty_batch(engine):
    with engine.begin() as conn:
        assert insert_raw_alerts(conn, []) == []
        (only,) = insert_raw_alerts(conn, [raw_alert(b"{}", received_at=NOW, source="replay")])
    with engine.connect() as conn:
        row = conn.execute(select(grafana_alerts).where(grafana_alerts.c.id == only)).one()._mapping
    assert (row["source"], row["received_at"], row["parse_error"]) == (
        "replay", NOW, "JSON object without `alerts` or legacy rule fields (custom template?)")


@pytest.mark.parametrize("packet, sent_ahead, largest", [
    (16 << 20, True, (16 << 20) - (64 << 10)),  # MariaDB's default: a body of 16 MiB less a row's room
    (64 << 20, False, ((64 << 20) - (64 << 10)) // 2),  # MySQL 8's default: the escaped body may double
    (4 << 20, True, (4 << 20) - (64 << 10)),  # an old server's 4 MiB
    (1024, True, 0),  # a packet smaller than a row's other columns holds no body
])
def test_largest_body_for(packet, sent_ahead, largest):
    assert largest_body_for(packet, sent_ahead=sent_ahead) == largest


@pytest.mark.parametrize("room, max_body, problem", [
    (BodyRoom(None), 1 << 30, None),  # SQLite: no packet limit
    (BodyRoom(16_711_680, 16 << 20), 10 << 20, None),  # the defaults fit
    (BodyRoom(16_711_680, 16 << 20), 16_711_680, None),  # exactly the largest fits
    (BodyRoom(16_711_680, 16 << 20), 16_711_681, "max_body_bytes is 16711681 but the database stores bodies of at "
     "most 16711680 bytes (max_allowed_packet = 16777216); raise max_allowed_packet on the server or lower "
     "INCIDENTCTL_MAX_BODY_BYTES"),  # one byte more does not
])
def test_body_room_problem(room, max_body, problem):
    assert room.problem(max_body) == problem


def test_body_room_of_this_database(engine, backend):
    with engine.connect() as conn:
        room = body_room(conn)
        if backend == "sqlite":
            assert room == BodyRoom(None)
        else:
            packet = conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar()
            assert room.packet == packet and room.largest in (packet - (64 << 10), (packet - (64 << 10)) // 2)
