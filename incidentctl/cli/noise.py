"""`incidentctl noise`: the rules that page without need, with backtested fixes."""

from __future__ import annotations

import sys

import typer

from incidentctl.cli.app import TzOption, context, module_app, option_value, output_option
from incidentctl.cli.options import Window, grouped
from incidentctl.cli.output import Col, OutputFormat, dumps, local_time, render_rows, seconds_cell, stdout_console
from incidentctl.durations import parse_duration
from incidentctl.history.noise import (
    MIN_PAGES,
    REPLAY,
    REPLAY_ROWS,
    SELF_RESOLVED,
    NoiseReport,
    build_noise,
    noise_dict,
)
from incidentctl.history.recurrence import hour_of_day_counts
from incidentctl.history.stats import sparkline

app = module_app()


RULE_COLUMNS = [
    Col("alertname", "rule", style="bold"),
    Col("noisy", "noisy", render=lambda v, r: "yes" if v else ""),
    Col("incidents", "incidents"),
    Col("pages", "pages"),
    Col("acted_on", "acted on"),
    Col("self_resolved", "self-resolved"),
    Col("flaps", "flaps"),
    Col("median_firing_s", "median firing", render=seconds_cell),
    Col("pages_by_route", "routes", render=lambda v, r: ", ".join(f"{k} {n}" for k, n in v.items()) or "-"),
    Col("hour_of_week", "pages by hour (UTC)", render=lambda v, r: sparkline(hour_of_day_counts(v)), no_wrap=True),
    Col("periodic_window", "periodic window", render=lambda v, r: v or "-"),
]


@app.command("noise")
@grouped
def noise_cmd(
    ctx: typer.Context,
    window: Window = Window(),
    within: str = typer.Option("5m", "--within", help="Self-resolved: resolved by its alerts within this long of "
                               "opening, with no action by a person."),
    min_pages: int = typer.Option(MIN_PAGES, "--min-pages", min=1, help="A rule pages at least this often to "
                                  "count as noisy."),
    replay: int = typer.Option(REPLAY, "--replay", min=0, help="Backtest coarser grouping for at most this many "
                               "rules (a replay of their raw alerts; the slow part)."),
    replay_rows: int = typer.Option(REPLAY_ROWS, "--replay-rows", min=0, help="… each only when it has at most "
                                    "this many raw rows; otherwise its grouping is an estimate."),
    output=output_option(OutputFormat.table, OutputFormat.json),
    tz: str | None = TzOption,
) -> None:
    """Noise per alert rule, and fixes backtested on the archive.

    Per rule (alertname) over the incidents opened in the window: pages (openings and reopens
    announced, or due to be), incidents a person acted on, self-resolved incidents, flaps,
    median time firing, pages by hour and a periodic window. A rule is noisy when it paged at
    least --min-pages times and people acted on fewer than half of its incidents; each noisy
    rule gets suggested fixes — notify after a minimum firing duration, a keep-firing window,
    a recurring silence, coarser grouping — each with its effect on the window's history.
    Definitions: docs/REPORTS.md.
    """
    c = context(ctx)
    now = c.clock()
    start, end = window.bounds(now)
    limit = option_value("--within", parse_duration, within)
    report = build_noise(c.engine, c.settings, since=start, until=end, within=limit or SELF_RESOLVED,
                         min_pages=min_pages, replay=replay, replay_rows=replay_rows)
    if output is OutputFormat.json:
        sys.stdout.write(dumps(noise_dict(report)) + "\n")
        return
    _print(report)


def _print(report: NoiseReport) -> None:
    console = stdout_console()
    data = noise_dict(report)
    window = f"{local_time(report.since)} → {local_time(report.until)}"
    render_rows(data["rules"], RULE_COLUMNS, OutputFormat.table, console=console,
                title=f"Noise by rule, incidents opened {window} ({data['noisy']} noisy)",
                empty="no incident opened in the window")
    for rule in data["rules"]:
        if not rule["suggestions"]:
            continue
        console.print(f"\n[bold]{rule['alertname']}[/bold]: suggested fixes, backtested on the window", highlight=False)
        for s in rule["suggestions"]:
            console.print(f"  • {s['change']}: {s['summary']}", highlight=False)
            console.print(f"    how: {s['how']}", highlight=False, markup=False)
    routes = ", ".join(f"{name} {n}" for name, n in report.pages_by_route.items()) or "none"
    console.print(f"\npages by route: {routes}", highlight=False)
    if report.replayed:
        console.print(f"grouping replayed for {', '.join(report.replayed)} ({report.replayed_rows} raw rows)",
                      highlight=False)
    if report.note:
        console.print(f"note: {report.note}", highlight=False)
