"""`incidentctl purge`: delete old raw webhook rows in small batches (retention)."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from incidentctl.cli.app import OutputOption, TzOption, context, err_console, module_app, option_value
from incidentctl.cli.output import OutputFormat, dumps, local_time, to_csv
from incidentctl.durations import format_duration, parse_duration
from incidentctl.ops.retention import DEFAULT_BATCH, purge

app = module_app()


@app.command("purge")
def purge_command(
    ctx: typer.Context,
    older_than: str | None = typer.Option(
        None, "--older-than", help="Delete raw rows received longer ago than this, e.g. 90d.",
        show_default="the purge_older_than setting"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be deleted; delete nothing."),
    batch_size: int = typer.Option(DEFAULT_BATCH, "--batch-size", min=1, help="Rows deleted per transaction."),
    output: OutputFormat = OutputOption,
    tz: str | None = TzOption,
) -> None:
    """Delete processed raw webhook rows older than a cut-off, in small transactions.

    Unprocessed rows and rows named by an event of an unresolved incident are kept;
    incidents, their series and their timelines are never deleted.
    """
    c = context(ctx)
    if older_than is None and not c.settings.purge_older_than:
        raise typer.BadParameter("give --older-than (e.g. 90d) or set purge_older_than", param_hint="'--older-than'")
    age = (option_value("--older-than", parse_duration, older_than).total_seconds() if older_than is not None
           else c.settings.purge_older_than)
    if age <= 0:
        raise typer.BadParameter("must be a positive duration, e.g. 90d", param_hint="'--older-than'")
    engine = c.engine
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=output is not OutputFormat.table) as bar:
        task = bar.add_task("checking" if dry_run else "purging", total=None)
        summary = purge(engine, age, c.clock(), dry_run=dry_run, batch=batch_size,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
    report = {**summary.__dict__, "older_than_seconds": age}
    if output is OutputFormat.json:
        typer.echo(dumps(report))
        return
    if output is OutputFormat.csv:
        typer.echo(to_csv([report], list(report)), nl=False)
        return
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"{verb} {summary.deleted} raw rows ({summary.bytes} body bytes) received before "
               f"{local_time(summary.cutoff)} ({format_duration(c.clock() - summary.cutoff)} ago) "
               f"in {summary.batches} batches")
    typer.echo(f"kept {summary.kept_unprocessed} unprocessed and {summary.kept_open} of unresolved incidents")
