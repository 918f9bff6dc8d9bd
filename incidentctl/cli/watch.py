"""`incidentctl watch`: the unresolved incidents, live. One read per refresh (incidents/overview.py);
what changed since the last refresh is marked and highlighted. On a terminal it redraws in place
(the terminal's alternate screen, restored on exit); otherwise it prints each refresh after the
last, plain."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import count as counting

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from incidentctl.cli.app import TzOption, context, module_app, option_value, time_value
from incidentctl.cli.incidents import SEVERITY_STYLE, incident_columns
from incidentctl.cli.options import IncidentFilters, grouped
from incidentctl.cli.output import Col, local_time, stdout_console, table_of, zone_label
from incidentctl.durations import format_duration, parse_duration
from incidentctl.errors import DatabaseUnavailable
from incidentctl.incidents.listing import IncidentFilter
from incidentctl.incidents.model import Severity
from incidentctl.incidents.overview import Overview, overview

app = module_app()

# What identifies a change people care about: a new series firing, a new alert, an ack, a rise.
WATCHED = ("status", "severity", "series_firing", "series_count", "alert_count", "acknowledged_by", "reopen_count")
NEW, CHANGED = "+", "~"
HIGHLIGHT = {NEW: "reverse", CHANGED: "bold"}


@dataclass(frozen=True)
class Changes:
    """What differs from the previous refresh: marks by incident id (`+` new, `~` changed) and
    the ids no longer listed (resolved, or no longer matching)."""

    marks: dict[int, str]
    gone: tuple[int, ...]


def compare(previous: dict[int, tuple] | None, rows: list[dict]) -> tuple[Changes, dict[int, tuple]]:
    """Changes since `previous` (None on the first refresh: nothing is new then) and the state
    to compare the next refresh with."""
    state = {r["id"]: tuple(r[k] for k in WATCHED) for r in rows}
    if previous is None:
        return Changes({}, ()), state
    marks = {i: NEW if i not in previous else CHANGED for i, s in state.items() if previous.get(i) != s}
    return Changes(marks, tuple(sorted(i for i in previous if i not in state))), state


def header(ov: Overview | None, now: datetime, interval: timedelta, error: str | None) -> Text:
    """`incidentctl watch · 14:05:03 CEST · every 2s · 37 unresolved: 3 critical, 20 warning ·
    oldest unacknowledged critical: #812 KubeNodeNotReady (prod), open 2h3m`."""
    every = f"{interval.total_seconds():g}s" if interval < timedelta(minutes=1) else format_duration(interval)
    text = Text.from_markup(f"[bold]incidentctl watch[/] · {local_time(now)} · every {every}")
    if ov is not None:
        counts = ", ".join(f"[{SEVERITY_STYLE.get(sev, '')}]{ov.by_severity[sev]} {sev}[/]"
                           for sev in reversed(Severity) if ov.by_severity.get(sev))
        text.append_text(Text.from_markup(f" · [bold]{ov.total} unresolved[/]" + (f": {counts}" if counts else "")))
        oldest = ov.oldest_unacked_critical
        text.append(" · oldest unacknowledged critical: ")
        if oldest is None:
            text.append("none")
        else:
            text.append(f"#{oldest['id']} {oldest['title']}, open {format_duration(now - oldest['opened_at'])}",
                        style="bold red")
    if error:
        text.append_text(Text.from_markup(f"\n[red]{escape(error)}[/] (showing the last refresh; retrying)"))
    return text


def view(ov: Overview | None, changes: Changes, now: datetime, interval: timedelta, error: str | None,
         *, live: bool) -> RenderableType:
    """The whole screen: header, the incidents (marked and highlighted), what went away."""
    parts: list[RenderableType] = [header(ov, now, interval, error)]
    if ov is not None:
        if ov.rows:
            marks = changes.marks
            columns = [Col("id", "Δ", render=lambda v, r: marks.get(v, ""), no_wrap=True), *incident_columns(now)]
            shown = f", the newest {len(ov.rows)} of {ov.total}" if ov.total > len(ov.rows) else ""
            parts.append(table_of(ov.rows, columns, title=f"unresolved incidents (times {zone_label()}{shown})",
                                  row_style=lambda r: HIGHLIGHT.get(marks.get(r["id"], ""))))
        else:
            parts.append(Text("no unresolved incident matches", style="dim"))
    notes = []
    if changes.gone:
        notes.append("gone since the last refresh (resolved, or no longer matching): "
                     + ", ".join(f"#{i}" for i in changes.gone))
    if live:
        notes.append(f"{NEW} new, {CHANGED} changed since the last refresh · Ctrl-C quits")
    parts.extend(Text(n, style="dim") for n in notes)
    return Group(*parts)


@app.command("watch")
@grouped
def watch_cmd(
    ctx: typer.Context,
    interval: str = typer.Option("2s", "--interval", "-n", help="Time between refreshes (e.g. 2s, 500ms, 1m)."),
    count: int | None = typer.Option(None, "--count", min=1, help="Stop after this many refreshes.",
                                        show_default="until Ctrl-C"),
    status: str | None = typer.Option(None, "--status", metavar="<open|acknowledged>",
                                         help="Only incidents in this status.", show_default="open + acknowledged"),
    filters: IncidentFilters = IncidentFilters(),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many incidents on screen."),
    tz: str | None = TzOption,
) -> None:
    """Watch the unresolved incidents live: the `list` filters, refreshed every --interval.

    A header counts them by severity and names the oldest unacknowledged critical incident;
    incidents new or changed since the last refresh are marked (+, ~) and highlighted, and those
    gone are named. On a terminal the screen is redrawn in place; otherwise each refresh is
    printed after the last. Ctrl-C quits (exit 0). One database read per refresh.
    """
    c = context(ctx)
    every = option_value("--interval", parse_duration, interval)
    if status not in (None, "open", "acknowledged"):
        raise typer.BadParameter(f"{status!r}: watch shows unresolved incidents (open or acknowledged)",
                                 param_hint="'--status'")
    flt = filters.incident_filter(status=status, limit=limit)
    time_value("--since", filters.since, c.clock())  # a bad value is a usage error now, not at the first refresh
    board = _Board(c.engine, c.clock, flt, filters.since, every)
    console = stdout_console()
    try:
        if console.is_terminal:
            _live(console, board.refresh, every, count)
        else:
            _plain(console, board.refresh, every, count)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how one leaves: exit 0, the terminal restored by Live's exit


class _Board:
    """What one refresh reads and draws, and what the last one showed."""

    def __init__(self, engine, clock: Callable[[], datetime], flt: IncidentFilter, since: str | None,
                 every: timedelta):
        self.engine, self.clock, self.flt, self.since, self.every = engine, clock, flt, since, every
        self.previous: dict[int, tuple] | None = None
        self.shown: Overview | None = None

    def refresh(self, live: bool) -> RenderableType:
        now = self.clock()
        flt = replace(self.flt, since=time_value("--since", self.since, now))  # `--since 2h` moves with the clock
        changes, error = Changes({}, ()), None
        try:
            self.shown = overview(self.engine, flt)
            changes, self.previous = compare(self.previous, self.shown.rows)
        except DatabaseUnavailable as exc:
            error = str(exc)
        return view(self.shown, changes, now, self.every, error, live=live)


def _live(console: Console, refresh: Callable[[bool], RenderableType], every: timedelta, count: int | None) -> None:
    with Live(console=console, screen=True, auto_refresh=False, redirect_stdout=False, redirect_stderr=False) as live:
        for n in counting(1):
            live.update(refresh(True), refresh=True)
            if count is not None and n >= count:
                return
            time.sleep(every.total_seconds())


def _plain(console: Console, refresh: Callable[[bool], RenderableType], every: timedelta, count: int | None) -> None:
    for n in counting(1):
        if n > 1:
            console.print()
        console.print(refresh(False))
        console.file.flush()
        if count is not None and n >= count:
            return
        time.sleep(every.total_seconds())
