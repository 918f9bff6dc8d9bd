"""How CPython's cyclic garbage collector runs during long batch jobs (replay, process, rebuild,
simulate).

By default the collector sweeps its youngest generation after 700 net new container objects,
and now and then everything alive; a batch job keeps two batches of parsed alerts alive, so a
full sweep walks hundreds of thousands of objects, and how often the default sweeps ran varied
tenfold between builds of the same job (docs/PERFORMANCE.md, History). `batch_collection`
sweeps rarely. That is safe because of one rule the batch code keeps: it makes no cyclic
garbage per batch. A SQL statement built per call (an IN list, a table alias such as an
upsert's `inserted`) leaves SQLAlchemy objects in reference cycles, megabytes a batch; so such
statements are built once (module constants, or cached per set of columns), and
tests/ops/test_gc_tuning.py checks that many batches leave no more cycles than one.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Youngest generation swept after 100,000 new containers (about 1,700 bodies) instead of 700;
# the older two after 20 sweeps of the one below instead of 10.
BATCH_THRESHOLDS = (100_000, 20, 20)


@contextmanager
def batch_collection() -> Iterator[None]:
    """Runs the block with the collector tuned for a batch job, then restores its settings.
    Objects alive on entry (modules, the schema, the engine) are frozen out of the sweeps: they
    live as long as the command does. In a process that froze objects itself (one running commands
    in-process, such as a test session) only the thresholds change: freezing again there would keep
    whatever garbage is alive on entry for good, and the count of frozen objects walks them all."""
    thresholds, freeze = gc.get_threshold(), gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(*BATCH_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if freeze:
            gc.unfreeze()
