"""The collector settings of batch jobs, and the cyclic garbage those jobs leave (none per batch)."""

from __future__ import annotations

import gc
from datetime import datetime, timezone

import pytest

from incidentctl.config import load_settings
from incidentctl.db.engine import make_engine
from incidentctl.db.migrations import upgrade
from incidentctl.history.export import export_to_file
from incidentctl.history.replay import replay
from incidentctl.incidents.model import Rules
from incidentctl.ops.gc_tuning import BATCH_THRESHOLDS, batch_collection
from tests.support import INTERPRETER_GC_THRESHOLDS

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def command_collector():
    """The collector as a command finds it, with the interpreter's thresholds: the suite runs with
    batch_collection's (tests/conftest.py), so these tests set the interpreter's first and the
    suite's again after."""
    suite = gc.get_threshold()
    gc.set_threshold(*INTERPRETER_GC_THRESHOLDS)
    yield
    gc.set_threshold(*suite)


def test_batch_collection_tunes_the_collector_and_restores_it():
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with batch_collection():
        assert gc.get_threshold() == BATCH_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what was alive on entry
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_batch_collection_restores_the_collector_when_the_job_fails():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), batch_collection():
        raise RuntimeError("the database went away")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_batch_collection_leaves_objects_frozen_by_others_frozen():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        made_since = [[] for _ in range(1000)]  # what a second freeze would take too
        with batch_collection():
            assert gc.get_threshold() == BATCH_THRESHOLDS
            assert gc.get_freeze_count() <= frozen  # the host's objects only (a few may have died since)
        assert 0 < gc.get_freeze_count() <= frozen
        del made_since
    finally:
        gc.unfreeze()


def _cyclic_garbage(run) -> list:
    """Objects that only the cyclic collector could free, made by `run()`."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run()
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.mark.slow  # a replay of a synthetic history, twice
def test_replay_with_processing_leaves_no_cyclic_garbage_per_batch(engine, second_engine, tmp_path):
    # The collector runs rarely in batch jobs (batch_collection), so garbage in reference cycles
    # made per batch would pile up: SQL statements built per call with IN lists of thousands of
    # values did, megabytes a batch. A run of many batches may leave no more than a run of one.
    from tests.support.processing import store
    from tests.support.synthetic_history import history

    rules = Rules.configured(load_settings({}))
    source = make_engine(f"sqlite+pysqlite:///{tmp_path / 'source.db'}")
    upgrade(source)
    rows = list(history(series=40, minutes=120, seed=3))
    store(source, rows)
    export_to_file(source, tmp_path / "history.jsonl")
    source.dispose()
    other = second_engine("many")
    path = str(tmp_path / "history.jsonl")
    one = _cyclic_garbage(lambda: replay(engine, [path], clock=lambda: NOW, batch_size=len(rows), process_with=rules))
    batches = 40
    many = _cyclic_garbage(lambda: replay(other, [path], clock=lambda: NOW, batch_size=len(rows) // batches,
                                            process_with=rules))
    assert len(many) - len(one) < batches, f"{len(many) - len(one)} more objects in cycles over {batches} batches"
