"""An alert storm (nearly every alert a new series, an incident opening every eight alerts, a fifth
resolving) gives the same rows whatever the batch size: what a batch writes at once (one
multi-row statement per table) is what a batch of one row writes, row by row, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from incidentctl.db.schema import (
    grafana_alerts,
    incident_alerts,
    incident_events,
    incident_labels,
    incidents,
    notifications,
    series_labels,
)
from tests.support.processing import process_all, store
from tests.support.storm_history import storm

ALERTS = 450


@pytest.fixture(scope="module")
def bodies():
    return list(storm(ALERTS, seed=3))


def rows(engine) -> dict[str, list]:
    """Every row processing wrote, in id order; where ids legitimately depend on how rows were
    grouped into statements (a series upserted, a label set rewritten), without the id and sorted."""
    with engine.connect() as conn:
        def all_of(table, *, keep_id=True):
            found = [dict(r._mapping) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]
            if keep_id:
                return found
            return sorted(tuple(sorted((k, repr(v)) for k, v in r.items() if k != "id")) for r in found)

        raw = [(r.id, r.process_error, r.processed_at is not None) for r in conn.execute(
            select(grafana_alerts.c.id, grafana_alerts.c.process_error, grafana_alerts.c.processed_at))]
        return {"raw": raw, "incidents": all_of(incidents), "events": all_of(incident_events),
                "outbox": all_of(notifications), "series": all_of(incident_alerts, keep_id=False),
                "labels": all_of(incident_labels, keep_id=False), "series_labels": all_of(series_labels)}


def test_a_storm_gives_the_same_rows_in_batches_of_1_37_and_1000(second_engine, bodies):
    found = {}
    for size in (1, 37, 1000):
        engine = second_engine(f"b{size}")
        store(engine, bodies)
        summary = process_all(engine, batch_size=size)
        assert summary.rows == len(bodies) and summary.errors == 0
        found[size] = rows(engine)
    first = found[1]
    # The storm is what it should be: mostly new series, many incidents, resolves, outbox rows.
    assert len(first["incidents"]) > ALERTS // 12 and len(first["series"]) > ALERTS * 2 // 3
    assert any(i["status"] == "resolved" for i in first["incidents"]) and first["outbox"] and first["labels"]
    for size in (37, 1000):
        for table, expected in first.items():
            assert found[size][table] == expected, f"{table} differs in batches of {size}"
