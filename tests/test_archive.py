"""The raw archive's insert: ids in order, bodies intact, big batches split under the packet limit."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from incidentctl.archive import STATEMENT_BYTES, insert_raw_alerts, raw_alert
from incidentctl.schema import grafana_alerts

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
