"""`incidentctl related ID`: the incidents probably of the same story, each with its reason;
also the "related" section of `show`."""

from __future__ import annotations

from datetime import timedelta

import typer
from rich.console import Console

from incidentctl.cli.app import OutputOption, TzOption, context, module_app
from incidentctl.cli.output import Col, OutputFormat, local_time, render_rows, stdout_console, zone_label
from incidentctl.durations import format_duration
from incidentctl.history.related import MAX_CANDIDATES, Related, RelatedRules, related_incidents
from incidentctl.incidents.topology import scope_text

app = module_app()


def link_rows(related: Related) -> list[dict]:
    """One row per link, strongest first: the linked incident, how far apart they opened, the
    kinds of link, the place they share, the co-occurrence figures, and the reasons."""
    rows = []
    for link in related.links:
        other, pair = link.incident, link.pair
        rows.append({
            "id": other.id, "title": other.title, "alertname": other.alertname, "severity": other.severity,
            "status": other.status, "opened_at": other.opened_at, "gap_seconds": link.gap.total_seconds(),
            "kinds": list(link.kinds), "shared": dict(link.shared),
            "cooccurrence": None if pair is None else {
                "first": pair.first, "second": pair.second, "incidents": pair.incidents,
                "together": pair.together, "expected": round(pair.expected, 3), "lift": round(pair.lift, 2),
                "p_value": float(f"{pair.p_value:.3g}")},
            "reasons": list(link.reasons),
        })
    return rows


def _gap(seconds: float, row: dict) -> str:
    """`09:48 (+40s)`: when it opened, and how long after (or before) the incident asked about."""
    sign = "+" if seconds >= 0 else "−"
    return f"{local_time(row['opened_at'], short=True)} ({sign}{format_duration(timedelta(seconds=abs(seconds)))})"


COLUMNS = [
    Col("id", "id", style="bold", no_wrap=True),
    Col("status", "status", no_wrap=True),
    Col("severity", "severity", no_wrap=True),
    Col("title", "title"),
    Col("gap_seconds", "opened", render=_gap, no_wrap=True),
    Col("reasons", "why", render=lambda v, r: "\n".join(v)),
]


def print_related(related: Related, *, console: Console | None = None, title: str = "related") -> None:
    """The links as a table titled with what they were looked for in."""
    cut = f", only the first {MAX_CANDIDATES} incidents opened around it were read" if related.truncated else ""
    render_rows(link_rows(related), COLUMNS, OutputFormat.table, console=console,
                title=f"{title} (times {zone_label()}{cut})",
                empty="no related incident: none opened near it in the same place, and no alertname "
                      "that opens with its own more often than chance")


@app.command("related")
def related_cmd(ctx: typer.Context, incident_id: int = typer.Argument(..., metavar="ID", help="Incident id."),
                output: OutputFormat = OutputOption, tz: str | None = TzOption) -> None:
    """Incidents probably related to one, each with its reason.

    Linked: incidents that opened within the related_window of it in the same place (the
    related_labels, e.g. the same namespace, or a cluster-wide incident and one in that
    cluster), and incidents in its cluster whose alertname opened together with its own in the
    history before it far more often than chance (definitions: docs/REPORTS.md). Strongest
    first. Unknown id: exit 1.
    """
    c = context(ctx)
    related = related_incidents(c.engine, incident_id, RelatedRules.configured(c.settings))
    if output is OutputFormat.table:
        anchor = related.anchor
        console = stdout_console()
        console.print(f"[bold]#{anchor.id}[/] {anchor.title}, opened {local_time(anchor.opened_at)} in "
                      f"{scope_text(anchor.place)}; history counted from {local_time(related.history_since)}",
                      highlight=False)
        print_related(related, console=console, title=f"{len(related.links)} related")
    else:
        render_rows(link_rows(related), [Col(k, k) for k in ("id", "title", "alertname", "severity", "status",
                                                             "opened_at", "gap_seconds", "kinds", "reasons")],
                    output)
