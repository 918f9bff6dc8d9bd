"""`incidentctl report`: MTTA/MTTR, resolves, noise and alert volume, as a table, JSON or CSV."""

from __future__ import annotations

import sys
from enum import StrEnum

import typer

from incidentctl.cli.app import OutputOption, TzOption, context, module_app
from incidentctl.cli.options import Window, grouped
from incidentctl.cli.output import (
    Col,
    OutputFormat,
    dumps,
    local_time,
    render_rows,
    seconds_cell,
    stdout_console,
    to_csv,
)
from incidentctl.history.reports import SreReport, build_report, metric_rows, report_dict
from incidentctl.history.stats import bar, sparkline

app = module_app()

MAX_BAR_DAYS = 62


class By(StrEnum):
    service = "service"
    severity = "severity"
    cluster = "cluster"
    alertname = "alertname"


def _median_p90(prefix: str):
    return lambda median, row: f"{seconds_cell(median)} / {seconds_cell(row[f'{prefix}_p90'])}"


def _triple(prefix: str):
    def render(row) -> str:
        return " / ".join(seconds_cell(row[f"{prefix}_{s}"]) for s in ("mean", "median", "p90"))
    return render


GROUP_COLUMNS = [
    Col("group", "group", style="bold"),
    Col("opened", "opened"),
    Col("resolved", "resolved"),
    Col("auto_resolved", "auto"),
    Col("manual_resolved", "manual"),
    Col("never_acked", "never acked"),
    Col("mtta_median", "MTTA med / p90", render=_median_p90("mtta"), no_wrap=True),
    Col("mttr_median", "MTTR med / p90", render=_median_p90("mttr"), no_wrap=True),
    Col("flapping", "flapping"),
    Col("short_lived", "short-lived"),
]

def _field(key: str):
    return lambda row: str(row[key])


def _numbers(prefix: str):
    def render(row) -> str:
        return " / ".join("-" if row[f"{prefix}_{s}"] is None else f"{row[f'{prefix}_{s}']:g}"
                          for s in ("mean", "median", "p90"))
    return render


# The figures of the whole window, one per line.
TOTAL_LINES = [
    ("incidents opened", _field("opened")),
    ("resolved (auto / manual)", lambda r: f"{r['resolved']} ({r['auto_resolved']} / {r['manual_resolved']})"),
    ("still unresolved", _field("unresolved")),
    ("acknowledged", _field("acknowledged")),
    ("never acknowledged", _field("never_acked")),
    ("MTTA mean / median / p90", _triple("mtta")),
    ("MTTR mean / median / p90", _triple("mttr")),
    ("alerts per incident mean / median / p90", _numbers("alerts_per_incident")),
    ("flapping incidents (flaps)", lambda r: f"{r['flapping']} ({r['reopens']})"),
    ("short-lived (resolved ≤ 5m, no ack)", _field("short_lived")),
]


NOISE_COLUMNS = [
    Col("title", "incident"),
    Col("fingerprint", "fingerprint", render=lambda v, r: v[:12]),
    Col("pages", "pages"),
    Col("incidents", "incidents"),
    Col("reopens", "reopens"),
    Col("short_lived", "short-lived"),
    Col("never_acked", "never acked"),
    Col("alerts", "alerts"),
    Col("suggestion", "suggested fix", render=lambda v, r: v or "-"),
]


@app.command("report")
@grouped
def report_cmd(
    ctx: typer.Context,
    window: Window = Window(),
    by: By | None = typer.Option(None, "--by", case_sensitive=False,
                                    help="One row of figures per value of this incident field."),
    top: int = typer.Option(10, "--top", min=1, help="How many noisy fingerprints to list."),
    output: OutputFormat = OutputOption,
    tz: str | None = TzOption,
) -> None:
    """SRE report over a window: MTTA, MTTR, resolves, noise, alert volume per day.

    MTTA and MTTR as mean, median and p90; incidents opened and resolved; auto vs manual
    resolves; never-acknowledged incidents; alerts per incident; noise: flapping (reopened by
    their alerts, not by people) and short-lived incidents and the noisiest fingerprints with a
    suggested fix. Definitions are in
    docs/REPORTS.md. CSV output gives the figures rows only.
    """
    c = context(ctx)
    now = c.clock()
    start, end = window.bounds(now)
    report = build_report(c.engine, since=start, until=end, by=by.value if by else None, top=top)
    if output is OutputFormat.json:
        sys.stdout.write(dumps(report_dict(report)) + "\n")
    elif output is OutputFormat.csv:
        rows = metric_rows(report)
        sys.stdout.write(to_csv(rows, list(rows[0])))
    else:
        _print_table(report)


def _print_table(report: SreReport) -> None:
    console = stdout_console()
    window = f"{local_time(report.since)} → {local_time(report.until)}"
    rows = metric_rows(report)
    total = rows[-1]
    lines = [{"figure": label, "value": render(total)} for label, render in TOTAL_LINES]
    render_rows(lines, [Col("figure", "figure"), Col("value", "value", no_wrap=True)], OutputFormat.table,
                console=console, title=f"Incidents opened {window}")
    if report.by:
        render_rows(rows, GROUP_COLUMNS, OutputFormat.table, console=console, title=f"By {report.by}")
    noisy = [{**vars(n), "pages": n.pages} for n in report.noisy]
    render_rows(noisy, NOISE_COLUMNS, OutputFormat.table, console=console, title="Noisiest fingerprints",
                empty="no fingerprint paged more than once")
    volume = report.volume
    alerts = [v.alerts for v in volume]
    console.print(f"\n[bold]Alerts per UTC day[/bold] {sparkline(alerts)}  (total {sum(alerts)} alerts in "
                  f"{sum(v.requests for v in volume)} requests)")
    if len(volume) > MAX_BAR_DAYS:
        return  # a bar per day would scroll away; the sparkline and JSON carry every day
    top = max(alerts, default=0)
    width = len(str(top))
    for v in volume:
        console.print(f"{v.day.isoformat()} {v.alerts:>{width}} {bar(v.alerts, top)}", highlight=False)
