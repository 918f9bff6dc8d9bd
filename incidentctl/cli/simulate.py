"""`incidentctl simulate`: current vs proposed grouping rules over history, without writing."""

from __future__ import annotations

import sys
from datetime import timedelta

import typer
from rich.progress import BarColumn, Progress, TextColumn

from incidentctl.cli.app import context, err_console, module_app, option_value, output_option, time_value
from incidentctl.cli.output import Col, OutputFormat, dumps, render_rows, stdout_console
from incidentctl.config import Settings
from incidentctl.db.engine import database_errors
from incidentctl.durations import format_duration, parse_duration
from incidentctl.history.announce import NotifyRules, acted_on
from incidentctl.history.recurrence import parse_window
from incidentctl.history.simulate import days, simulate, simulation_dict
from incidentctl.history.stats import sparkline
from incidentctl.incidents.model import Rules, Severity
from incidentctl.notify.routes import load_routes
from incidentctl.notify.thresholds import Threshold
from incidentctl.ops.gc_tuning import batch_collection

app = module_app()


def rules_from_options(settings: Settings, group_by: str | None, reopen_window: str | None) -> Rules:
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
    group_by: str | None = typer.Option(None, "--group-by", help="Proposed labels forming the incident "
                                           "fingerprint, comma-separated (`fingerprint` = one incident per "
                                           "series).", show_default="the group_by setting"),
    reopen_window: str | None = typer.Option(None, "--reopen-window", help="Proposed reopen window "
                                                "(e.g. 30m, 2h).", show_default="the reopen_window setting"),
    since: str = typer.Option("30d", "--since", help="Replay raw alerts received since this (duration ago or "
                              "ISO 8601 time)."),
    until: str | None = typer.Option(None, "--until", help="… and before this.", show_default="now"),
    top: int = typer.Option(10, "--top", min=1, help="How many fingerprints to list per rule set."),
    alertname: str | None = typer.Option(None, "--alertname", help="Simulate the alerts of this rule only."),
    notify_after: str | None = typer.Option(None, "--notify-after", help="Proposed threshold for every "
                                               "change: announce an incident once it fired this long (e.g. 5m)."),
    notify_min_alerts: int | None = typer.Option(None, "--notify-min-alerts", min=0, help="… or once it holds "
                                                    "this many distinct alerts."),
    notify_min_severity: str | None = typer.Option(None, "--notify-min-severity", help="… or once it reaches "
                                                      "this severity (critical, error, warning, info)."),
    keep_firing: str | None = typer.Option(None, "--keep-firing", help="Proposed keep-firing window (e.g. 10m): "
                                              "a resolve followed by a reopen within it is not announced."),
    silence_window: str | None = typer.Option(None, "--silence-window", help="Proposed recurring silence, UTC: "
                                                 "'daily 02:00-04:00' or 'Sun 03:00-05:00'."),
    output: OutputFormat = output_option(OutputFormat.table, OutputFormat.json),
) -> None:
    """What-if: run the grouping over history under the current and the proposed rules.

    Nothing is written. Prints side by side: incidents, reopens (flaps), auto-resolves,
    notifications a digest would carry, the pages Slack would have received (under the routes'
    thresholds, or the proposed --notify-* threshold, --keep-firing window and --silence-window),
    incidents per day and the top fingerprints by alerts. Incidents opened before --since are not
    known to the simulation.
    """
    c = context(ctx)
    now = c.clock()
    start = time_value("--since", since, now)
    end = time_value("--until", until, now) or now
    proposed = rules_from_options(c.settings, group_by, reopen_window)
    current = Rules.configured(c.settings)
    routes = tuple(load_routes(c.settings))
    threshold = None
    if notify_after is not None or notify_min_alerts is not None or notify_min_severity is not None:
        threshold = Threshold(
            option_value("--notify-after", parse_duration, notify_after) if notify_after else None,
            notify_min_alerts or None,
            option_value("--notify-min-severity", _severity, notify_min_severity) if notify_min_severity else None)
        if not threshold:
            raise typer.BadParameter("every threshold condition is off", param_hint="'--notify-after'")
    window = option_value("--keep-firing", parse_duration, keep_firing) if keep_firing else None
    silence = option_value("--silence-window", parse_window, silence_window) if silence_window else None
    notify = [NotifyRules(routes), NotifyRules(routes, threshold, window, silence)]
    with database_errors(c.engine), c.engine.execution_options(sqlite_begin="DEFERRED").connect() as conn:
        people = set(acted_on(conn, start).values())
    progress = Progress(TextColumn("simulating {task.completed} rows"), BarColumn(), console=err_console,
                        transient=True, disable=not err_console.is_terminal)
    with batch_collection(), progress as bar:
        task = bar.add_task("rows", total=None)
        result = simulate(c.engine, [current, proposed], since=start, until=end,
                          progress=lambda n: bar.update(task, completed=n), notify=notify,
                          alertnames={alertname} if alertname else None, acted_on=people)
    data = simulation_dict(result, top)
    if output is OutputFormat.json:
        sys.stdout.write(dumps(data) + "\n")
        return
    console = stdout_console()
    cur, new = result.outcomes
    rows = [{"figure": label, "current": str(a), "proposed": str(b),
             "change": f"{b - a:+d}" if isinstance(a, int) and isinstance(b, int) else ""}
            for label, a, b in [
                ("group by", ",".join(cur.rules.group_by), ",".join(new.rules.group_by)),
                ("reopen window", format_duration(cur.rules.reopen_window), format_duration(new.rules.reopen_window)),
                ("incidents", cur.incidents, new.incidents),
                ("reopens (flaps)", cur.reopens, new.reopens),
                ("auto-resolved", cur.auto_resolved, new.auto_resolved),
                ("notifications", cur.notifications, new.notifications),
                ("pages (announced openings and reopens)", cur.ledger.total.pages, new.ledger.total.pages),
                ("changes announced", cur.ledger.total.changes, new.ledger.total.changes),
                ("never announced (below threshold)", cur.ledger.total.below_threshold,
                 new.ledger.total.below_threshold),
                ("silenced", cur.ledger.total.silenced, new.ledger.total.silenced),
                ("taken away by keep-firing", cur.ledger.total.kept_firing, new.ledger.total.kept_firing),
                ("held at the end", cur.ledger.total.held, new.ledger.total.held),
            ]]
    render_rows(rows, [Col("figure", "figure"), Col("current", "current"), Col("proposed", "proposed"),
                       Col("change", "change")], OutputFormat.table, console=console,
                title=f"{result.rows} raw rows, {result.alerts} alerts ({result.unparsable} rows not parsable)")
    people_figures = data["acted_on"]
    if people_figures and people_figures["incidents"]:
        delay = people_figures["median_delay_s"]
        console.print(f"incidents a person acted on: {people_figures['incidents']}, announced a median "
                      f"{format_duration(timedelta(seconds=delay)) if delay is not None else '-'} later under the "
                      f"proposed rules; never announced: {people_figures['never_announced']}", highlight=False)
    span = days(result)
    for label, outcome in (("current ", cur), ("proposed", new)):
        console.print(f"incidents per day, {label} {sparkline([outcome.per_day.get(d, 0) for d in span])}",
                      highlight=False)
    for label, outcome in (("current", cur), ("proposed", new)):
        render_rows(outcome.top(top), [Col("title", "incident"), Col("alerts", "alerts"),
                                       Col("incidents", "incidents")], OutputFormat.table, console=console,
                    title=f"Top fingerprints by alerts, {label} rules")



def _severity(text: str) -> str:
    value = text.strip().lower()
    if value not in list(Severity)[1:]:
        raise ValueError(f"not one of critical, error, warning, info: {text!r}")
    return value
