"""`incidentctl list|show|ack|resolve|reopen|note`: incidents from the terminal."""

from __future__ import annotations

import sys
from datetime import datetime
from enum import StrEnum

import typer
from rich.console import Console
from rich.table import Table

from incidentctl.cli.app import OutputOption, TzOption, context, err_console, module_app, os_user, time_value
from incidentctl.cli.options import IncidentFilters, grouped
from incidentctl.cli.output import (
    Col,
    OutputFormat,
    dumps,
    local_time,
    printable_body,
    render_rows,
    stdout_console,
    zone_label,
)
from incidentctl.cli.related import link_rows, print_related
from incidentctl.durations import format_age
from incidentctl.history.export import RECORD_KEYS, IncidentRows, incident_rows, to_record
from incidentctl.history.related import RelatedRules, related_incidents
from incidentctl.incidents.actions import add_note, transition_many
from incidentctl.incidents.listing import list_incidents, show_incident
from incidentctl.incidents.model import IncidentStatus, Severity, TimelineKind
from incidentctl.notify.silences import mark_silenced

app = module_app()

SEVERITY_STYLE = {Severity.CRITICAL: "bold red", Severity.ERROR: "red", Severity.WARNING: "yellow",
                  Severity.INFO: "cyan", Severity.NONE: "dim"}
STATUS_STYLE: dict[str, str] = {IncidentStatus.OPEN: "bold", IncidentStatus.ACKNOWLEDGED: "blue",
                                IncidentStatus.RESOLVED: "green"}


class StatusChoice(StrEnum):
    """The statuses, and `all`."""

    open = IncidentStatus.OPEN.value
    acknowledged = IncidentStatus.ACKNOWLEDGED.value
    resolved = IncidentStatus.RESOLVED.value
    all = "all"


def _by_option():
    return typer.Option(None, "--by", help="Who does it.", show_default="the OS user")


def incident_columns(now: datetime) -> list[Col]:
    """The `list` table: also used by `make demo`."""
    return [
        Col("id", "id", style="bold", no_wrap=True),
        Col("status", "status", render=_status_cell, no_wrap=True),
        Col("severity", "severity", render=lambda v, r: f"[{SEVERITY_STYLE.get(v, '')}]{v}[/]", no_wrap=True),
        Col("title", "title"),
        Col("place", "cluster/namespace/service",
            render=lambda v, r: "/".join(r.get(k) or "-" for k in ("cluster", "namespace", "service"))),
        Col("opened_at", "opened", render=lambda v, r: f"{local_time(v, short=True, now=now)}, {format_age(v, now)}"),
        Col("series_firing", "alerts", render=lambda v, r: f"{v}/{r['series_count']}", no_wrap=True),
        Col("acknowledged_by", "acked by", render=lambda v, r: v or "-"),
    ]


def _status_cell(status: str, row: dict) -> str:
    silenced = f" [dim](silenced #{row['silenced_by']})[/]" if row.get("silenced_by") else ""
    return f"[{STATUS_STYLE.get(status, '')}]{status}[/]{silenced}"


def render_incident_table(rows: list[dict], now: datetime, *, console: Console | None = None,
                          title: str | None = "incidents") -> None:
    """The rich incident table (coloured severity, "09:48, 12m ago", firing/total, acked by); the
    title names the zone of the times."""
    render_rows(rows, incident_columns(now), OutputFormat.table, title=title and f"{title} (times {zone_label()})",
                console=console, empty="no incidents match")


@app.command("list")
@grouped
def list_cmd(
    ctx: typer.Context,
    status: StatusChoice | None = typer.Option(None, "--status", help="Only incidents in this status.",
                                                  case_sensitive=False, show_default="open + acknowledged"),
    filters: IncidentFilters = IncidentFilters(),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many incidents."),
    output: OutputFormat = OutputOption,
    tz: str | None = TzOption,
) -> None:
    """List incidents, newest first (default: the unresolved ones)."""
    c = context(ctx)
    now = c.clock()
    flt = filters.incident_filter(status=status.value if status else None, limit=limit,
                                  since=time_value("--since", filters.since, now))
    rows = mark_silenced(c.engine, list_incidents(c.engine, flt), now)
    if output is OutputFormat.table:
        render_incident_table(rows, now)
    else:
        render_rows(rows, [Col(name, name) for name in rows[0]] if rows else [Col("id", "id")], output)


# What `show` prints in its table unless told: a screen, not a storm's 20,000 series.
TABLE_SERIES, TABLE_EVENTS = 20, 50


@app.command("show")
def show_cmd(ctx: typer.Context, incident_id: int = typer.Argument(..., metavar="ID", help="Incident id."),
             raw: bool = typer.Option(False, "--raw", help="Print the raw webhook requests the incident was "
                                      "made from, bodies as stored, instead of the incident."),
             series: int | None = typer.Option(
                 None, "--series", min=0, metavar="N",
                 help="Alert series to show, the firing first, the most recently seen first; 0: all.",
                 show_default=f"{TABLE_SERIES} in the table, all with -o json"),
             events: int | None = typer.Option(
                 None, "--events", min=0, metavar="N", help="Timeline events to show, the newest; 0: all.",
                 show_default=f"{TABLE_EVENTS} in the table, all with -o json or csv"),
             output: OutputFormat = OutputOption, tz: str | None = TzOption) -> None:
    """Show one incident: its alert series (labels, annotations, links), its timeline and the
    incidents probably related to it (as `incidentctl related ID`).

    The table shows the firing series and the newest events first when there are many (a storm
    puts thousands of pods into one incident) and says how many more there are. CSV output is the
    timeline, one event per row. With --raw: the archived requests that touched it (id, received
    time, sender, body), in the export format for JSON and CSV.
    """
    c = context(ctx)
    if raw:
        _print_raw(incident_rows(c.engine, incident_id), output)
        return
    table = output is OutputFormat.table
    series_limit = _limit(series, TABLE_SERIES if table else 0)
    events_limit = _limit(events, TABLE_EVENTS if table else 0)
    found = show_incident(c.engine, incident_id, series_limit=series_limit, events_limit=events_limit)
    (incident,) = mark_silenced(c.engine, [found], c.clock())
    if output is OutputFormat.csv:
        render_rows(incident["events"], TIMELINE_COLUMNS, output)
        return
    related = related_incidents(c.engine, incident_id, RelatedRules.configured(c.settings))
    if output is OutputFormat.json:
        typer.echo(dumps({**incident, "related": link_rows(related)}))
    else:
        _print_incident(incident, c.clock())
        print_related(related, console=stdout_console())


TIMELINE_COLUMNS = [Col(key, key) for key in ("id", "at", "kind", "actor", "alert_fingerprint", "raw_alert_id",
                                               "detail")]


def _limit(asked: int | None, default: int) -> int | None:
    """A --series/--events value as show_incident's limit: 0 (asked, or the default) is none."""
    chosen = default if asked is None else asked
    return chosen or None


def _print_incident(incident: dict, now: datetime) -> None:
    console = stdout_console()
    sev = incident["severity"]
    console.print(f"[bold]#{incident['id']}[/] {incident['title']}  "
                  f"[{STATUS_STYLE.get(incident['status'], '')}]{incident['status']}[/]  "
                  f"[{SEVERITY_STYLE.get(sev, '')}]{sev}[/]", highlight=False)
    facts = [("fingerprint", incident["fingerprint"]),
             ("opened", f"{local_time(incident['opened_at'])} ({format_age(incident['opened_at'], now)})"),
             ("last alert", local_time(incident["last_alert_at"])),
             ("acknowledged", _who(incident["acknowledged_at"], incident["acknowledged_by"])),
             ("resolved", _who(incident["resolved_at"], incident["resolved_by"], incident["resolution"])),
             ("silenced", f"yes, by silence #{incident['silenced_by']} (incidentctl silence list)"
                          if incident["silenced_by"] else "no"),
             ("alerts", f"{incident['series_firing']}/{incident['series_count']} series firing, "
                        f"{incident['alert_count']} notifications, reopened {incident['reopen_count']}x")]
    for name, value in facts:
        console.print(f"  [dim]{name:>12}[/] {value}", highlight=False)
    series = Table(title="alert series", header_style="bold")
    series.add_column("fingerprint", no_wrap=True, min_width=16)
    for header in ("status", "severity", "labels", "annotations", "links", "seen"):
        series.add_column(header)
    for s in incident["series"]:
        series.add_row(s["alert_fingerprint"], s["status"], s["severity"],
                       "\n".join(f"{k}={v}" for k, v in sorted(s["labels"].items())),
                       "\n".join(f"{k}: {v}" for k, v in sorted(s["annotations"].items())),
                       "\n".join(f"{k}: {v}" for k, v in s["links"].items()), str(s["times_seen"]))
    console.print(series)
    if len(incident["series"]) < incident["series_count"]:
        console.print(f"  … {incident['series_count'] - len(incident['series']):,} more series, not shown "
                      "(the firing and most recently seen are above; --series 0 shows all)", highlight=False)
    if len(incident["events"]) < incident["event_count"]:
        console.print(f"  … {incident['event_count'] - len(incident['events']):,} earlier timeline events, not "
                      "shown (--events 0 shows all)", highlight=False)
    timeline = Table(title="timeline", header_style="bold")
    for header in ("at", "event", "actor"):
        timeline.add_column(header, no_wrap=True)
    timeline.add_column("alert", no_wrap=True, min_width=16)
    timeline.add_column("detail")
    for e in incident["events"]:
        detail = e["detail"] or {}
        text = ", ".join(f"{k}={v}" for k, v in detail.items() if k != "labels")
        # An ignored alert changed nothing: listed (with why) but set apart from what did.
        timeline.add_row(local_time(e["at"]), e["kind"], e["actor"], e["alert_fingerprint"] or "", text,
                         style="dim" if e["kind"] == TimelineKind.IGNORED else None)
    console.print(timeline)


RAW_COLUMNS = [Col(key, key) for key in (*RECORD_KEYS, "body", "body_base64")]


def _print_raw(selected: IncidentRows, output: OutputFormat) -> None:
    if output is OutputFormat.table:
        for row in selected.rows:
            sender = ", ".join(f"{name} {row[key]}" for name, key in (("from", "remote_addr"),
                               ("user agent", "user_agent"), ("content type", "content_type")) if row[key])
            sys.stdout.write(f"--- raw alert {row['id']}, received {local_time(row['received_at'])}, source "
                             f"{row['source']}{', ' + sender if sender else ''}, {len(row['body'])} bytes\n")
            body = printable_body(bytes(row["body"]))
            sys.stdout.write(body + ("" if body.endswith("\n") else "\n") + "\n")
        err_console.print(f"incident {selected.incident_id}: {len(selected.rows)} raw alert(s)", highlight=False)
    else:
        render_rows([to_record(row) for row in selected.rows], RAW_COLUMNS, output)
    if selected.purged_ids:
        err_console.print(f"[yellow]note:[/yellow] {len(selected.purged_ids)} raw alert(s) of its timeline were "
                          f"purged by retention: {', '.join(map(str, selected.purged_ids[:10]))}"
                          + (" …" if len(selected.purged_ids) > 10 else ""), highlight=False)


def _who(at, by, how=None) -> str:
    if at is None:
        return "-"
    return f"{local_time(at)} by {by or '?'}" + (f" ({how})" if how else "")


def _transition(ctx: typer.Context, action: str, ids: list[int], by: str | None, note: str | None,
                output: OutputFormat) -> None:
    c = context(ctx)
    outcomes = transition_many(c.engine, action, ids, by=by or os_user(), note=note, now=c.clock())
    if output is OutputFormat.table:
        for o in outcomes:
            if o.ok:
                typer.echo(o.message)
            else:
                err_console.print(f"[red]error:[/red] {o.message}", highlight=False)
    else:
        render_rows([{"id": o.id, "ok": o.ok, "status": o.status, "message": o.message} for o in outcomes],
                    [Col("id", "id"), Col("ok", "ok"), Col("status", "status"), Col("message", "message")], output)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


IdsArgument = typer.Argument(..., metavar="ID...", help="Incident ids.")
NoteOption = typer.Option(None, "--note", help="A note recorded with the change.")


@app.command("ack")
def ack_cmd(ctx: typer.Context, ids: list[int] = IdsArgument, by: str | None = _by_option(),
            note: str | None = NoteOption, output: OutputFormat = OutputOption) -> None:
    """Acknowledge open incidents (open → acknowledged). Exits 1 if any id failed."""
    _transition(ctx, "ack", ids, by, note, output)


@app.command("resolve")
def resolve_cmd(ctx: typer.Context, ids: list[int] = IdsArgument, by: str | None = _by_option(),
                note: str | None = NoteOption, output: OutputFormat = OutputOption) -> None:
    """Resolve incidents by hand (open or acknowledged → resolved). Exits 1 if any id failed."""
    _transition(ctx, "resolve", ids, by, note, output)


@app.command("reopen")
def reopen_cmd(ctx: typer.Context, ids: list[int] = IdsArgument, by: str | None = _by_option(),
               note: str | None = NoteOption, output: OutputFormat = OutputOption) -> None:
    """Reopen resolved incidents (resolved → open). Exits 1 if any id failed."""
    _transition(ctx, "reopen", ids, by, note, output)


@app.command("note")
def note_cmd(ctx: typer.Context, incident_id: int = typer.Argument(..., metavar="ID", help="Incident id."),
             text: str = typer.Argument(..., help="The note."), by: str | None = _by_option(),
             output: OutputFormat = OutputOption) -> None:
    """Add a note to an incident's timeline (any status)."""
    c = context(ctx)
    add_note(c.engine, incident_id, text, by=by or os_user(), now=c.clock())
    result = {"id": incident_id, "ok": True}
    if output is OutputFormat.json:
        typer.echo(dumps(result))
    elif output is OutputFormat.csv:
        render_rows([result], [Col("id", "id"), Col("ok", "ok")], output)
    else:
        typer.echo(f"incident {incident_id}: note added")
