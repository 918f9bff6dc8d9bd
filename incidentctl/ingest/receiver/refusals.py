"""One WARNING line per request the receiver refuses (every 4xx/5xx it answers), rate-limited.

A sender that is misconfigured, or a flood, must not fill a disk: at most `burst` lines are
written per `interval`; past that lines are only counted, and the first line of the next
interval (or the receiver's stop) says how many were left out. A line names the status, the
body's size, the sender's address, the method and path (never the query string or a header)
and the reason the client was given; configured secrets are blotted out should a sender put one
in the path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

PATH_CHARS = 200
REASON_CHARS = 300


@dataclass
class LineBudget:
    """At most `burst` lines per interval, an interval starting with the first line after the
    previous one ended. Pure but for the times it is given."""

    burst: int
    interval: float
    _start: float | None = None
    _used: int = 0
    suppressed: int = 0

    def take(self, now: float) -> tuple[bool, int]:
        """(whether this line may be written, how many were suppressed before it to report now)."""
        if self._start is None or now - self._start >= self.interval:
            self._start, self._used = now, 0
            report, self.suppressed = self.suppressed, 0
        else:
            report = 0
        if self._used < self.burst:
            self._used += 1
            return True, report
        self.suppressed += 1
        return False, report


@dataclass
class RefusalLog:
    """Writes the refusal lines through `logger`; safe to call from any thread."""

    logger: logging.Logger
    secrets: Iterable[str] = ()
    burst: int = 20
    interval: float = 60.0
    monotonic: Callable[[], float] = time.monotonic
    _budget: LineBudget = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._budget = LineBudget(self.burst, self.interval)
        self.secrets = tuple(s for s in self.secrets if s)

    def refused(self, status: int, reason: str, *, method: str, path: str, client: str | None,
                size: str) -> None:
        with self._lock:
            allowed, suppressed = self._budget.take(self.monotonic())
        self._summary(suppressed)
        if allowed:
            self.logger.warning("refused %d %s %s from %s (body %s): %s", status, method,
                                self._clean(path, PATH_CHARS), client or "unknown",
                                size, self._clean(reason, REASON_CHARS))

    def flush(self) -> None:
        """Reports lines still suppressed (at stop)."""
        with self._lock:
            suppressed, self._budget.suppressed = self._budget.suppressed, 0
        self._summary(suppressed)

    def _summary(self, suppressed: int) -> None:
        if suppressed:
            self.logger.warning("suppressed %d more refused-request line(s) (at most %d per %gs)", suppressed,
                                self.burst, self.interval)

    def _clean(self, text: str, limit: int) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        if len(text) > limit:
            text = text[:limit] + "…"
        # One line per refusal: control characters (a path may hold a decoded newline) are escaped.
        return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
