"""One renderer for every listing: a rich table, JSON or CSV.

Times: JSON and CSV are for programs and always say UTC (ISO 8601, `Z`); tables and messages are
for people and show times in the display zone (`local_time`), which the root command sets from
the `display_timezone` setting and `--tz` overrides.

Width: tables print at the terminal's width, `COLUMNS` when set, otherwise (a pipe, cron mail)
without a limit, so no cell is cut for `grep` (`stdout_console`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from incidentctl.durations import format_duration

# Wider than any row: off a terminal a table is as wide as its widest row, never cut or wrapped.
UNLIMITED_WIDTH = 1_000_000


def stdout_console() -> Console:
    """Where tables print. On a terminal, its width; wherever COLUMNS is set (`watch(1)` sets it),
    that width. Otherwise (a pipe, a file, cron mail) cells are never cut or wrapped, so
    `incidentctl list | grep payments` finds the whole row and a title is never truncated."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit():
        return Console()
    return Console(width=UNLIMITED_WIDTH)


_zone: ContextVar[tzinfo] = ContextVar("display_zone", default=timezone.utc)


def set_display_zone(name: str) -> tzinfo:
    """Makes `name` (an IANA name, checked by config.zone_name) the zone people see times in."""
    zone = ZoneInfo(name)
    _zone.set(zone)
    return zone


def display_zone() -> tzinfo:
    return _zone.get()


def local_time(value: datetime | None, *, short: bool = False, now: datetime | None = None) -> str:
    """A time for people, in the display zone, its zone named: `2026-03-01 13:00:00 CET`; `-` for
    none. `short` gives `13:00` on the day of `now` (in that zone), else `03-01 13:00`, for
    tables whose title names the zone."""
    if value is None:
        return "-"
    moment = value.astimezone(display_zone())
    if not short:
        return moment.strftime("%Y-%m-%d %H:%M:%S %Z")
    if now is not None and now.astimezone(display_zone()).date() == moment.date():
        return moment.strftime("%H:%M")
    same_year = now is None or now.year == moment.year
    return moment.strftime("%m-%d %H:%M") if same_year else moment.strftime("%Y-%m-%d %H:%M")


def zone_label() -> str:
    """The display zone's name for a table title: `UTC`, `Europe/Berlin`."""
    zone = display_zone()
    return getattr(zone, "key", None) or zone.tzname(None) or "UTC"


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@dataclass(frozen=True)
class Col:
    """A table column: `key` in the row, a header, and an optional cell renderer for the table."""

    key: str
    header: str
    render: Callable[[Any, dict], str] | None = None
    style: str | None = None
    no_wrap: bool = False


def seconds_cell(value: float | None, _row: dict | None = None) -> str:
    """Seconds as a duration people read (`1h5m`), `-` for none; also a Col's `render`."""
    return "-" if value is None else format_duration(timedelta(seconds=value))


def to_jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False)


def render_rows(
    rows: Sequence[dict],
    columns: Sequence[Col],
    fmt: OutputFormat,
    *,
    title: str | None = None,
    console: Console | None = None,
    empty: str = "nothing to show",
) -> None:
    """Prints rows: JSON (the whole objects), CSV (the columns' keys) or a rich table whose
    cells are whole (see `stdout_console`)."""
    if fmt is OutputFormat.json:
        sys.stdout.write(dumps(list(rows)) + "\n")
        return
    if fmt is OutputFormat.csv:
        sys.stdout.write(to_csv(rows, [c.key for c in columns]))
        return
    console = console or stdout_console()
    if not rows:
        console.print(f"[dim]{empty}[/dim]")
        return
    console.print(table_of(rows, columns, title=title))


def print_row(row: dict, columns: Sequence[Col], fmt: OutputFormat, line: str) -> None:
    """The one row a command changed: the whole object as JSON, the columns as CSV, else `line`
    for people."""
    if fmt is OutputFormat.json:
        sys.stdout.write(dumps(row) + "\n")
    elif fmt is OutputFormat.csv:
        sys.stdout.write(to_csv([row], [c.key for c in columns]))
    else:
        sys.stdout.write(line + "\n")


def table_of(rows: Sequence[dict], columns: Sequence[Col], *, title: str | None = None,
             row_style: Callable[[dict], str | None] | None = None) -> Table:
    """The rich table of `rows` (`row_style` may set a whole row's style, e.g. to highlight it)."""
    table = Table(title=title, header_style="bold")
    for col in columns:
        # fold: a word longer than its column goes on over the next lines, never cut with "…"
        table.add_column(col.header, style=col.style, no_wrap=col.no_wrap, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(col, row) for col in columns), style=row_style(row) if row_style else None)
    return table


def _cell(col: Col, row: dict) -> str:
    value = row.get(col.key)
    if col.render is not None:
        return col.render(value, row)
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return local_time(value)
    return str(to_jsonable(value))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable_body(body: bytes) -> str:
    """A stored body for a terminal: its text when it is UTF-8, else each byte that does not
    decode as `\\xNN`; control characters but newline and tab escaped the same way, so a body
    cannot drive the terminal."""
    text = body.decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def to_csv(rows: Iterable[dict], keys: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(keys)
    for row in rows:
        values = [to_jsonable(row.get(k)) for k in keys]
        writer.writerow([json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else v) for v in values])
    return buffer.getvalue()
