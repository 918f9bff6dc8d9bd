"""`incidentctl simulate`: current vs proposed grouping rules over history, without writing."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn

from incidentctl.ops.gc_tuning import batch_collection
from incidentctl.config import Settings
from incidentctl.durations import format_duration, parse_duration
from incidentctl.cli.output import Col, OutputFormat, dumps, render_rows, stdout_console
from incidentctl.history.simulate import days, simulate, simulation_dict
from incidentctl.incidents.model import Rules
from incidentctl.history.stats import sparkline
from incidentctl.cli.app import app, context, err_console, option_value, output_option, time_value


def rules_from_options(settings: Settings, group_by: Optional[str], reopen_window: Optional[str]) -> Rules:
    """--group-by and --reopen-window, each defaulting to its setting; BadParameter when wrong."""
    window = (option_value("--reopen-window", parse_duration, reopen_window) if reopen_window
              else timedelta(seconds=settings.reopen_window))
    labels = tuple(p.strip() for p in group_by.split(",") if p.strip()) if group_by else tuple(settings.group_by)
    if not labels:
        raise typer.BadParameter("needs at least one label", param_hint="'--group-by'")
    return Rules(labels, window)


@app.command("simulate")
def simulate_cmd(
    ctx: typer.Context,
    group_by: Optional[str] = typer.Option(None, "--group-by", help="Proposed labels forming the incident "
                                           "fingerprint, comma-separated (`fingerprint` = one incident per "
                                           "series).", show_default="the group_by setting"),
    reopen_window: Optional[str] = typer.Option(None, "--reopen-window", help="Proposed reopen window "
                                                "(e.g. 30m, 2h).", show_default="the reopen_window setting"),
    since: str = typer.Option("30d", "--since", help="Replay raw alerts received since this (duration ago or "
                              "ISO 8601 time)."),
    until: Optional[str] = typer.Option(None, "--until", help="… and before this.", show_default="now"),
    top: int = typer.Option(10, "--top", min=1, help="How many fingerprints to list per rule set."),
    output: OutputFormat = output_option(OutputFormat.table, OutputFormat.json),
) -> None:
    """What-if: run the grouping over history under the current and the proposed rules.

    Nothing is written. Prints side by side: incidents, reopens (flaps), auto-resolves,
    notifications a digest would carry, incidents per day and the top fingerprints by alerts.
    Incidents opened before --since are not known to the simulation.
    """
    c = context(ctx)
    now = c.clock()
    start = time_value("--since", since, now)
    end = time_value("--until", until, now) or now
    proposed = rules_from_options(c.settings, group_by, reopen_window)
    current = Rules.configured(c.settings)
    progress = Progress(TextColumn("simulating {task.completed} rows"), BarColumn(), console=err_console,
                        transient=True, disable=not err_console.is_terminal)
    with batch_collection(), progress as bar:
        task = bar.add_task("rows", total=None)
        result = simulate(c.engine, [current, proposed], since=start, until=end,
                          progress=lambda n: bar.update(task, completed=n))
    data = simulation_dict(result, top)
    if output is OutputFormat.json:
        sys.stdout.write(dumps(data) + "\n")
        return
    console = stdout_console()
    cur, new = result.outcomes
    rows = [{"figure": label, "current": str(a), "proposed": str(b), "change": f"{b - a:+d}" if isinstance(a, int) else ""}
            for label, a, b in [
                ("group by", ",".join(cur.rules.group_by), ",".join(new.rules.group_by)),
                ("reopen window", format_duration(cur.rules.reopen_window), format_duration(new.rules.reopen_window)),
                ("incidents", cur.incidents, new.incidents),
                ("reopens (flaps)", cur.reopens, new.reopens),
                ("auto-resolved", cur.auto_resolved, new.auto_resolved),
                ("notifications", cur.notifications, new.notifications),
            ]]
    render_rows(rows, [Col("figure", "figure"), Col("current", "current"), Col("proposed", "proposed"),
                       Col("change", "change")], OutputFormat.table, console=console,
                title=f"{result.rows} raw rows, {result.alerts} alerts ({result.unparsable} rows not parsable)")
    span = days(result)
    for label, outcome in (("current ", cur), ("proposed", new)):
        console.print(f"incidents per day, {label} {sparkline([outcome.per_day.get(d, 0) for d in span])}",
                      highlight=False)
    for label, outcome in (("current", cur), ("proposed", new)):
        render_rows(outcome.top(top), [Col("title", "incident"), Col("alerts", "alerts"),
                                       Col("incidents", "incidents")], OutputFormat.table, console=console,
                    title=f"Top fingerprints by alerts, {label} rules")
