"""retry: which failures are conflicts, and how they are retried."""

from __future__ import annotations

from typing import NamedTuple

import pymysql
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from incidentctl.db.engine import database_errors
from incidentctl.db.retry import Backoff, Conflicts, conflict_code, retry_conflicts
from incidentctl.db.schema import deliveries
from incidentctl.errors import DatabaseConflict, DatabaseUnavailable
from tests.support.conflicts import conflicting


def wrapped(code: int, message: str = "x") -> OperationalError:
    return OperationalError("COMMIT", {}, pymysql.err.OperationalError(code, message))


class Case(NamedTuple):
    error: BaseException
    code: int | None


CODES = {
    "deadlock_or_certification": Case(wrapped(1213), 1213),
    "lock_wait_timeout": Case(wrapped(1205), 1205),
    "driver_error_unwrapped": Case(pymysql.err.OperationalError(1213, "x"), 1213),
    "server_gone_is_an_outage": Case(wrapped(2006), None),
    "cannot_connect_is_an_outage": Case(wrapped(2003), None),
    "galera_node_not_ready_is_an_outage": Case(wrapped(1047, "WSREP has not yet prepared node"), None),
    "sqlite_locked_has_no_code": Case(OperationalError("BEGIN", {}, Exception("database is locked")), None),
    "not_a_database_error": Case(ValueError(1213), None),
}


@pytest.mark.parametrize("case", CODES.values(), ids=CODES.keys())
def test_conflict_code(case):
    assert conflict_code(case.error) == case.code


def test_a_conflict_is_run_again_after_a_jittered_backoff():
    waits: list[float] = []
    results = iter([wrapped(1213), wrapped(1205), "done"])
    counts = Conflicts()

    def work():
        result = next(results)
        if isinstance(result, Exception):
            raise result
        return result

    assert retry_conflicts(work, backoff=Backoff(attempts=5, base=0.1, cap=0.15), counts=counts,
                           sleep=waits.append, rng=lambda: 0.5) == "done"
    assert waits == [0.05, 0.075]  # half (rng) of 0.1, then of min(cap, 0.2)
    assert counts.by_code == {1213: 1, 1205: 1} and counts.total == 2


def test_still_conflicting_after_the_last_attempt_is_a_conflict_not_an_outage():
    def work():
        raise wrapped(1213)

    with pytest.raises(DatabaseConflict, match="3 attempts"):
        retry_conflicts(work, backoff=Backoff(attempts=3), sleep=lambda s: None)


def test_any_other_failure_is_raised_at_once():
    calls = []

    def work():
        calls.append(1)
        raise wrapped(2013)

    with pytest.raises(OperationalError):
        retry_conflicts(work, sleep=lambda s: None)
    assert calls == [1]


def test_delays_stay_within_the_cap():
    backoff = Backoff(attempts=10, base=0.02, cap=1.0)
    assert [backoff.delay(n, lambda: 1.0) for n in (0, 1, 5, 9)] == [0.02, 0.04, 0.64, 1.0]
    assert backoff.delay(3, lambda: 0.0) == 0.0


def test_database_errors_tells_a_conflict_from_an_outage(engine):
    with pytest.raises(DatabaseConflict), database_errors(engine):
        raise wrapped(1213)
    with pytest.raises(DatabaseUnavailable), database_errors(engine):
        raise wrapped(2003)


def test_a_conflicting_statement_on_a_real_database_is_retried(engine):
    def work():
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
            return conn.execute(select(deliveries.c.id)).all()

    counts = Conflicts()
    with conflicting(engine, "SELECT deliveries.id", times=2) as failed:
        assert retry_conflicts(work, counts=counts, sleep=lambda s: None) == []
    assert len(failed) == 2 and counts.by_code == {1213: 2}
