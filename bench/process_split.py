"""Where a `process` batch's time goes: runs `process_pending` in-process over a filled database
and prints one line of JSON: per batch, the milliseconds spent parsing bodies, loading incident
state, deciding, writing, and the rest (claiming and marking rows, commits), plus the statements
the batches sent (counted as SQLAlchemy hands them to the driver, by verb and table), the
server's own count (SHOW SESSION STATUS 'Questions' on the processing connection) and how many
batches used the decision made for them while the batch before was written.

Run by bench_process.py with the interpreter of the code under test, so that old and new code
can be compared: `python bench/process_split.py DATABASE_URL [BATCH_SIZE]`. It imports
`incidentctl` from that interpreter's installation, not from this tree.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
import time
from collections import Counter
from datetime import datetime, timezone

from sqlalchemy import event

from incidentctl.config import load_settings
from incidentctl.db.engine import make_engine
from incidentctl.incidents import processor
from incidentctl.incidents.model import Rules
from incidentctl.ops.gc_tuning import batch_collection

STEPS = {"parse_body": "parse", "load_states": "load", "decide_batch": "decide", "write_batch": "write"}
_VERB = re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|SHOW|SET|BEGIN|COMMIT)\s*[`\"]?(\w*)", re.I)


def main(url: str, batch_size: int) -> None:
    spent: Counter = Counter()
    for name, step in STEPS.items():
        original = getattr(processor, name)
        setattr(processor, name, _timed(original, step, spent))
    engine = make_engine(url)
    statements: Counter = Counter()
    connections: set = set()

    @event.listens_for(engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        match = _VERB.match(statement)
        statements[" ".join(match.groups()).lower() if match else statement[:20]] += 1
        connections.add(conn.connection.dbapi_connection)

    questions_before = _questions(engine)
    # Code that decides the next batch ahead takes a ReadAhead whose counts say how often that held.
    options = {}
    if "ahead" in inspect.signature(processor.process_pending).parameters:
        options["ahead"] = processor.ReadAhead(engine, batch_size)
    start = time.perf_counter()
    with batch_collection():
        summary = processor.process_pending(engine, Rules.configured(load_settings({})), batch_size=batch_size,
                                            clock=lambda: datetime.now(timezone.utc), **options)
    total = time.perf_counter() - start
    questions = sum(_questions_of(c) for c in connections) - questions_before
    batches = max(1, -(-summary.rows // batch_size))
    ms = {step: round(spent[step] * 1000 / batches, 1) for step in STEPS.values()}
    ms["other"] = round(total * 1000 / batches - sum(ms.values()), 1)
    print(json.dumps({"seconds": round(total, 2), "alerts": summary.alerts, "batches": batches, "ms_per_batch": ms,
                      "statements_per_batch": round(sum(statements.values()) / batches, 1),
                      "questions_per_batch": round(questions / batches, 1) if questions >= 0 else None,
                      "statements": dict(statements.most_common()),
                      "decided_ahead": (f"{options['ahead'].held} of {batches} batches" if options else None)}))
    engine.dispose()


def _timed(function, step: str, spent: Counter):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[step] += time.perf_counter() - start
    return timed


def _questions(engine) -> int:
    """The processing connection is the pool's one connection; its count before the run."""
    with engine.connect() as conn:
        return _questions_of(conn.connection.dbapi_connection)


def _questions_of(dbapi_connection) -> int:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
        return int(cursor.fetchone()[1])
    finally:
        cursor.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
