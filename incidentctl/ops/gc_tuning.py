"""How CPython's cyclic garbage collector runs during long batch jobs (replay, process, rebuild,
simulate).

By default the collector sweeps its youngest generation after 700 net new container objects,
and now and then everything alive; a batch job keeps two batches of parsed alerts alive, so a
full sweep walks hundreds of thousands of objects. How often the default sweeps ran in
`replay --process` changed tenfold between builds of the same job (measured with
`gc.callbacks` over 100,000 alerts: 162 or ~1,660 sweeps of the youngest generation, 0.2 s or
1.8 s; over 1,000,000 alerts up to 17.6 s of 119.5 s of CPU) for reasons we did not pin down.
Under `batch_collection` it stays at ~160 sweeps and 0.2–0.3 s in every build. The jobs make no
cyclic garbage per batch (SQL statements with IN lists or table aliases are built once, see
state.py), so sweeping rarely frees the same memory: peak RSS 142–146 MB either way.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

# Youngest generation swept after 100,000 new containers (about 1,700 bodies) instead of 700;
# the older two after 20 sweeps of the one below instead of 10.
BATCH_THRESHOLDS = (100_000, 20, 20)


@contextmanager
def batch_collection() -> Iterator[None]:
    """Runs the block with the collector tuned for a batch job, then restores its settings.
    Objects alive on entry (modules, the schema, the engine) are frozen out of the sweeps: they
    live as long as the command does."""
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    gc.freeze()
    gc.set_threshold(*BATCH_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not frozen:  # objects someone else froze stay frozen
            gc.unfreeze()
