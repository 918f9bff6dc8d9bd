r"""Grafana's MySQL data source query expansion, re-done in Python for the dashboard tests.

Mirrors what Grafana does to a panel's rawSql before it reaches MySQL (grafana/grafana
pkg/tsdb/mysql/macros.go and sqleng's Interpolate):
1. the frontend replaces dashboard variables (`$objective`, `$__interval`, `${name}`);
2. the backend replaces `$__interval_ms`, `$__interval`, `$__unixEpochFrom()`, `$__unixEpochTo()`;
3. the macro engine replaces every `$__name(args)` (regex `\$([_a-zA-Z0-9]+)\(([^\)]*)\)`:
   an argument cannot contain a `)`), rejecting queries that call user() & co.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
RESTRICTED = re.compile(
    r"(?im)([\s]*show[\s]+grants|[\s,]session_user\([^\)]*\)|[\s,]current_user(\([^\)]*\))?"
    r"|[\s,]system_user\([^\)]*\)|[\s,]user\([^\)]*\))([\s,;]|$)"
)
_INTERVAL = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class MacroError(ValueError):
    """Grafana would refuse this query."""


def interval_seconds(text: str) -> float:
    match = _INTERVAL.match(text.strip().strip("'\""))
    if not match:
        raise MacroError(f"error parsing interval {text}")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def expand(sql: str, start: datetime, end: datetime, interval: str, variables: dict[str, str]) -> str:
    """rawSql → the SQL Grafana sends for time range [start, end] and `$__interval` = interval."""
    for name in sorted(variables, key=len, reverse=True):  # longest first: $objective before $obj
        sql = sql.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    ms = int(interval_seconds(interval) * 1000)
    sql = sql.replace("$__interval_ms", str(ms)).replace("$__interval", interval)
    frm, to = int(start.timestamp()), int(end.timestamp())
    sql = sql.replace("$__unixEpochFrom()", str(frm)).replace("$__unixEpochTo()", str(to))
    if RESTRICTED.search(sql):
        raise MacroError("show grants, session_user(), current_user(), system_user() or user() not allowed")

    def macro(match: re.Match) -> str:
        name, args = match.group(1), [a.strip() for a in match.group(2).split(",")]
        return _evaluate(name, args, frm, to)

    return MACRO.sub(macro, sql)


def _evaluate(name: str, args: list[str], frm: int, to: int) -> str:
    if name in ("__time", "__timeEpoch"):
        return f"UNIX_TIMESTAMP({args[0]}) as time_sec"
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN FROM_UNIXTIME({frm}) AND FROM_UNIXTIME({to})"
    if name == "__timeFrom":
        return f"FROM_UNIXTIME({frm})"
    if name == "__timeTo":
        return f"FROM_UNIXTIME({to})"
    if name in ("__timeGroup", "__timeGroupAlias"):
        if len(args) < 2:
            raise MacroError(f"macro {name} needs time column and interval")
        seconds = interval_seconds(args[1])
        if len(args) == 3 and args[2] not in ("NULL", "previous"):
            float(args[2])  # Grafana's fill value must be NULL, previous or a number
        group = f"UNIX_TIMESTAMP({args[0]}) DIV {seconds:.0f} * {seconds:.0f}"
        return group + (' AS "time"' if name == "__timeGroupAlias" else "")
    if name == "__unixEpochFilter":
        return f"{args[0]} >= {frm} AND {args[0]} <= {to}"
    raise MacroError(f"unknown macro {name}")


def variable_values(dashboard: dict) -> dict[str, str]:
    """Each dashboard variable's current value, as the frontend would substitute it."""
    return {v["name"]: str(v["current"]["value"]) for v in dashboard["templating"]["list"]}


def fixed_range(days: int = 2) -> tuple[datetime, datetime]:
    from datetime import timezone

    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    return start, start + timedelta(days=days)
