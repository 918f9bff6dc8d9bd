"""Time helpers: the clock, and durations and times as people type them (`90s`, `2h`, `1h30m`, ISO 8601)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def utc_now() -> datetime:
    """The clock: now, aware UTC. Injected where time is read (Context.clock, the receiver)."""
    return datetime.now(timezone.utc)


def parse_duration(text: str) -> timedelta:
    """`1h30m` → timedelta; a bare number is seconds. Raises ValueError."""
    raw = str(text).strip().lower()
    if not raw:
        raise ValueError("empty duration")
    try:
        return timedelta(seconds=float(raw))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or pos == 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 2h, 7d, 1h30m)")
    return timedelta(seconds=total)


def parse_since(text: str, now: datetime, zone: tzinfo = timezone.utc) -> datetime:
    """`2h`/`7d` (ago, from now) or an ISO 8601 time (in `zone` when it has no offset) → aware
    UTC datetime. Raises ValueError."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a duration or ISO time: {text!r} (use e.g. 2h, 7d or 2026-01-31T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(timezone.utc)


def format_duration(delta: timedelta) -> str:
    """Short human form: `45s`, `12m`, `3h5m`, `2d4h`."""
    seconds = int(max(delta.total_seconds(), 0))
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def format_age(moment: datetime | None, now: datetime) -> str:
    """`12m ago`, or `-` for no time."""
    if moment is None:
        return "-"
    return f"{format_duration(now - moment)} ago"
