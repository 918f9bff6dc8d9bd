"""An alert storm (nearly every alert a new series, an incident opening every eight alerts, a fifth
resolving) gives the same rows whatever the batch size: what a batch writes at once (one
multi-row statement per table) is what a batch of one row writes, row by row, on both databases.
So does a storm into a few wide incidents, whose series a batch's decisions change in place."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.processing import process_all, store, written_rows
from tests.support.storm_history import storm

ALERTS = 450


@pytest.fixture(scope="module")
def bodies():
    return list(storm(ALERTS, seed=3))


@pytest.fixture(scope="module")
def wide_bodies():
    return list(storm(ALERTS, seed=4, pods=(150, 300), storming_at_once=2))


def test_a_storm_gives_the_same_rows_in_batches_of_1_37_and_1000(second_engine, bodies):
    found = _processed_in_batches(second_engine, bodies)
    first = found[1]
    # The storm is what it should be: mostly new series, many incidents, resolves, outbox rows.
    assert len(first["incidents"]) > ALERTS // 12 and len(first["series"]) > ALERTS * 2 // 3
    assert any(i["status"] == "resolved" for i in first["incidents"]) and first["outbox"] and first["series_labels"]
    _same_in_every_batch_size(found)


def test_a_storm_into_few_wide_incidents_gives_the_same_rows_in_batches_of_1_37_and_1000(second_engine,
                                                                                          wide_bodies):
    found = _processed_in_batches(second_engine, wide_bodies)
    first = found[1]
    assert len(first["incidents"]) <= 3 and len(first["series"]) > ALERTS * 2 // 3
    # The firing count each decision kept equals the series' own statuses.
    firing = Counter(dict(s)["incident_id"] for s in first["series"] if dict(s)["status"] == repr("firing"))
    assert {repr(i["id"]): i["series_firing"] for i in first["incidents"]} == \
        {repr(i["id"]): firing[repr(i["id"])] for i in first["incidents"]}
    assert max(i["series_firing"] for i in first["incidents"]) > 100
    _same_in_every_batch_size(found)


def _processed_in_batches(second_engine, bodies) -> dict[int, dict]:
    found = {}
    for size in (1, 37, 1000):
        engine = second_engine(f"b{size}")
        store(engine, bodies)
        summary = process_all(engine, batch_size=size)
        assert summary.rows == len(bodies) and summary.errors == 0
        found[size] = written_rows(engine)
    return found


def _same_in_every_batch_size(found: dict[int, dict]) -> None:
    for size in (37, 1000):
        for table, expected in found[1].items():
            assert found[size][table] == expected, f"{table} differs in batches of {size}"
