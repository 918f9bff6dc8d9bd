"""`incidentctl rebuild`: recompute incidents from the raw archive under the given rules."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from incidentctl.cli.app import TzOption, context, err_console, module_app, output_option
from incidentctl.cli.output import OutputFormat, dumps, local_time
from incidentctl.cli.simulate import rules_from_options
from incidentctl.durations import format_duration
from incidentctl.history.rebuild import rebuild
from incidentctl.incidents.model import Rules
from incidentctl.ops.gc_tuning import batch_collection

app = module_app()


@app.command("rebuild")
def rebuild_cmd(
    ctx: typer.Context,
    group_by: str | None = typer.Option(None, "--group-by", help="Labels forming the incident fingerprint, "
                                           "comma-separated (`fingerprint` = one incident per series).",
                                           show_default="the group_by setting"),
    reopen_window: str | None = typer.Option(None, "--reopen-window", help="Reopen window (e.g. 30m, 2h).",
                                                show_default="the reopen_window setting"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Compute and report, write nothing."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when retention purged raw alerts some "
                               "incidents were built from (those incidents are deleted)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation on a terminal."),
    output: OutputFormat = output_option(OutputFormat.table, OutputFormat.json),
    tz: str | None = TzOption,
) -> None:
    """Recompute every incident from the raw archive under the given (or configured) rules.

    All or nothing: one transaction, under the applier lease. Acks, manual resolves, reopens
    and notes are replayed onto the rebuilt incident that is the same incident (shares an alert
    series and overlaps in time); the summary says how many could not be carried over. A
    rebuilt incident that continues an old one keeps its id. Nothing is sent to Slack.
    """
    c = context(ctx)
    rules = rules_from_options(c.settings, group_by, reopen_window)
    labels, window = rules.group_by, rules.reopen_window
    if not dry_run and not yes and sys.stdin.isatty() and err_console.is_terminal:
        typer.confirm(f"Rebuild all incidents with group_by={','.join(labels)}, reopen window "
                      f"{format_duration(window)}?", abort=True, err=True)
    progress = Progress(TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err_console, transient=True, disable=not err_console.is_terminal)
    with batch_collection(), progress as bar:
        task = bar.add_task("rows", total=None)
        summary = rebuild(c.engine, rules, dry_run=dry_run, force=force, lease=None if dry_run else c.lease(),
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
    if output is not OutputFormat.table:
        sys.stdout.write(dumps(summary.as_dict()) + "\n")
    else:
        s = summary
        verb = "would rebuild" if dry_run else "rebuilt"
        typer.echo(f"{verb} {s.incidents_before} → {s.incidents_after} incident(s) from {s.rows} raw row(s), "
                   f"{s.alerts} alert(s) (group_by={','.join(labels)}, reopen window {format_duration(window)})")
        typer.echo(f"ids kept {s.ids_kept}, new {s.incidents_after - s.ids_kept}, dropped {s.incidents_dropped}; "
                   f"reopens {s.reopens}")
        typer.echo(f"actions by people: {s.actions}, carried over {s.actions_carried}, "
                   f"not carried over {s.not_carried_count}")
        for item in s.not_carried:
            err_console.print(f"  not carried: {escape(item['kind'])} by {escape(item['actor'])} at "
                              f"{local_time(item['at'])} on old incident {item['incident_id']}", highlight=False)
        if s.purged_incidents:
            err_console.print(f"[yellow]note:[/yellow] {s.purged_incidents} incident(s) were built from raw alerts "
                              f"retention has purged; they {'would be' if dry_run else 'were'} dropped",
                              highlight=False)
    if not dry_run and rules != Rules.configured(c.settings):
        err_console.print("[yellow]note:[/yellow] these rules differ from the configured ones; set "
                          "INCIDENTCTL_GROUP_BY / INCIDENTCTL_REOPEN_WINDOW to match, or `process` groups new "
                          "alerts under the old rules", highlight=False)
