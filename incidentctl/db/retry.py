"""A conflict is a retry, not an outage: MySQL/MariaDB error 1213 (a deadlock, and on Galera a
write set that lost certification to another node's) and 1205 (lock wait timeout) roll back one
transaction, which run again once, after a jittered backoff, normally succeeds.

`conflict_code(exc)` classifies a failure where it happens; `retry_conflicts` runs a
transaction's work again on a conflict; `Conflicts` counts the retries for /metrics and
`process -o json`. Only a connection failure is "database unavailable" (engine.database_errors).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pymysql
from sqlalchemy.exc import DBAPIError

from incidentctl.errors import DatabaseConflict

DEADLOCK = 1213  # ER_LOCK_DEADLOCK; Galera reports a certification failure with it too
LOCK_WAIT_TIMEOUT = 1205  # ER_LOCK_WAIT_TIMEOUT
CONFLICT_CODES = frozenset({DEADLOCK, LOCK_WAIT_TIMEOUT})
T = TypeVar("T")


def error_code(exc: BaseException) -> int | None:
    """The MySQL/MariaDB error number of a driver error (wrapped by SQLAlchemy or PyMySQL's own), else None."""
    if isinstance(exc, DBAPIError):
        orig: BaseException | None = exc.orig
    elif isinstance(exc, pymysql.err.MySQLError):
        orig = exc
    else:
        return None
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def conflict_code(exc: BaseException) -> int | None:
    """1213 or 1205 when `exc` (a driver error, wrapped by SQLAlchemy or PyMySQL's own) is one, else None."""
    code = error_code(exc)
    return code if code in CONFLICT_CODES else None


@dataclass(frozen=True)
class Backoff:
    """Attempts and delays: attempt n (0-based) waits a uniform random time in
    [0, min(cap, base * 2**n)] ("full jitter"), so workers that conflicted once do not meet again."""

    attempts: int = 8
    base: float = 0.02  # seconds
    cap: float = 1.0

    def delay(self, attempt: int, rng: Callable[[], float]) -> float:
        return rng() * min(self.cap, self.base * (2 ** attempt))


class Conflicts:
    """Conflicts retried, by code; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_code: dict[int, int] = {}

    def add(self, code: int) -> None:
        with self._lock:
            self.by_code[code] = self.by_code.get(code, 0) + 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_code.values())


def retry_conflicts(work: Callable[[], T], *, backoff: Backoff = Backoff(), counts: Conflicts | None = None,
                    sleep: Callable[[float], None] = time.sleep, rng: Callable[[], float] = random.random,
                    on_retry: Callable[[int], None] | None = None) -> T:
    """`work()` (one whole transaction: it must begin, and roll back on failure, itself), run again
    after a jittered backoff while it fails on a conflict, at most `backoff.attempts` times in all.
    Each retry is counted in `counts` and reported to `on_retry(code)`. Raises DatabaseConflict
    when the last attempt conflicts too; any other failure at once."""
    for attempt in range(backoff.attempts):
        try:
            return work()
        except DBAPIError as exc:
            code = conflict_code(exc)
            if code is None:
                raise
            if attempt == backoff.attempts - 1:
                raise DatabaseConflict(f"transaction still conflicting after {backoff.attempts} attempts "
                                       f"(error {code}); it changed nothing") from exc
            if counts is not None:
                counts.add(code)
            if on_retry is not None:
                on_retry(code)
            sleep(backoff.delay(attempt, rng))
    raise AssertionError("unreachable")
