"""An alert storm (nearly every alert a new series, an incident opening every eight alerts, a fifth
resolving) gives the same rows whatever the batch size: what a batch writes at once (one
multi-row statement per table) is what a batch of one row writes, row by row, on both databases."""

from __future__ import annotations

import pytest

from tests.support.processing import process_all, store, written_rows
from tests.support.storm_history import storm

ALERTS = 450


@pytest.fixture(scope="module")
def bodies():
    return list(storm(ALERTS, seed=3))


def test_a_storm_gives_the_same_rows_in_batches_of_1_37_and_1000(second_engine, bodies):
    found = {}
    for size in (1, 37, 1000):
        engine = second_engine(f"b{size}")
        store(engine, bodies)
        summary = process_all(engine, batch_size=size)
        assert summary.rows == len(bodies) and summary.errors == 0
        found[size] = written_rows(engine)
    first = found[1]
    # The storm is what it should be: mostly new series, many incidents, resolves, outbox rows.
    assert len(first["incidents"]) > ALERTS // 12 and len(first["series"]) > ALERTS * 2 // 3
    assert any(i["status"] == "resolved" for i in first["incidents"]) and first["outbox"] and first["series_labels"]
    for size in (37, 1000):
        for table, expected in first.items():
            assert found[size][table] == expected, f"{table} differs in batches of {size}"
