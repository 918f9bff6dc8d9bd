"""`incidentctl export` and `incidentctl replay`: the raw archive out to JSON Lines and back in."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)

from incidentctl.cli.app import context, err_console, module_app, option_value, output_option, time_value
from incidentctl.cli.output import OutputFormat, dumps
from incidentctl.history.export import count_rows, export_archive, export_to_file, parse_utc
from incidentctl.history.replay import BATCH_SIZE, replay, replay_and_process
from incidentctl.incidents.model import Rules
from incidentctl.ops.gc_tuning import batch_collection

app = module_app()


def _progress(*columns) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), *columns, TimeRemainingColumn(),
                    console=err_console, transient=True, disable=not err_console.is_terminal)


class _AmountColumn(ProgressColumn):
    """Bytes read for a task whose `unit` is bytes, rows done out of the total for the others."""

    def render(self, task: Task):
        return (DownloadColumn() if task.fields.get("unit") == "bytes" else MofNCompleteColumn()).render(task)


EXPORT_FORMAT = "jsonl"


def _export_format(value: str) -> str:
    # `-o` was once export's file: `export -o json` would write a file named `json`.
    if value.lower() != EXPORT_FORMAT:
        raise typer.BadParameter(f"{value!r}: export writes JSON Lines ({EXPORT_FORMAT}) only; -o is the "
                                 f"output format on every command, the file is --file/-f PATH")
    return EXPORT_FORMAT


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    since: str | None = typer.Option(None, "--since", help="Only requests received at or after this: "
                                        "a duration ago (30d, 2h) or an ISO 8601 time."),
    until: str | None = typer.Option(None, "--until", help="Only requests received before this "
                                        "(duration ago or ISO 8601 time)."),
    out: Path | None = typer.Option(None, "--file", "-f", "--out", metavar="PATH", dir_okay=False,
                                       help="Write to PATH (gzip-compressed when it ends in .gz).",
                                       show_default="standard output"),
    incident: int | None = typer.Option(None, "--incident", metavar="ID", help="Only the requests this "
                                           "incident was made from (see `show ID --raw`) and the actions "
                                           "that name it, as replay input."),
    output: str = typer.Option(EXPORT_FORMAT, "--output", "-o", metavar=f"<{EXPORT_FORMAT}>",
                               callback=_export_format, help="Output format: JSON Lines, the only one."),
) -> None:
    """Export the raw archive as JSON Lines, one object per stored webhook request.

    Each object holds the request's time, source and headers and the body exactly as received
    (format: docs/REPORTS.md). Rows are streamed, so any size fits in memory. With --incident,
    the requests one incident was made from and people's actions on it: `replay` of them
    rebuilds it on another database.
    """
    c = context(ctx)
    now = c.clock()
    start, end = time_value("--since", since, now), time_value("--until", until, now)
    if incident is not None and (since or until):
        raise typer.BadParameter("selects the rows by itself: give it without --since/--until",
                                 param_hint="'--incident'")
    engine = c.engine
    selection = {"since": start, "until": end} if incident is None else {"incident": incident}
    with _progress(MofNCompleteColumn()) as progress:
        total = count_rows(engine, start, end) if err_console.is_terminal and incident is None else None
        task = progress.add_task("exporting", total=total)
        report = lambda rows: progress.update(task, completed=rows)  # noqa: E731
        if out is None:
            try:
                summary = export_archive(engine, sys.stdout.buffer, **selection, progress=report)
                sys.stdout.buffer.flush()
            except BrokenPipeError:  # the reader went away (`export | head`): stop quietly
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise typer.Exit(1) from None
        else:
            summary = export_to_file(engine, out, **selection, progress=report)
    target = summary.path or "standard output"
    of = f" of incident {incident}" if incident is not None else ""
    acts = f" and {summary.actions} action(s) people took" if summary.actions else ""
    err_console.print(f"exported {summary.rows} request(s){of}{acts} to {target}", highlight=False)
    if summary.purged_ids:
        err_console.print(f"[yellow]note:[/yellow] {len(summary.purged_ids)} request(s) of its timeline were purged "
                          "by retention: a replay will not rebuild it whole", highlight=False)


def _iso_time(text: str):
    try:
        return parse_utc(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None


@app.command("replay")
def replay_cmd(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(..., metavar="PATH...", help="Files or directories to import: `.json` "
                                      "webhook bodies, JSON Lines (`.jsonl`/`.ndjson`: our export or one body "
                                      "per line), each optionally `.gz`; `-` reads JSON Lines from stdin."),
    received_at: str | None = typer.Option(None, "--received-at", metavar="ISO",
                                              help="Receive time for bodies that carry none. "
                                                   "Export records keep their own.",
                                              show_default="the file's modification time"),
    batch_size: int = typer.Option(BATCH_SIZE, "--batch-size", min=1, help="Rows inserted per transaction."),
    process: bool = typer.Option(False, "--process", help="Process the rows into incidents as they are stored "
                                 "(as `incidentctl process` does, in queue order), then any row left waiting."),
    output: OutputFormat = output_option(OutputFormat.table, OutputFormat.json),
) -> None:
    """Import historical webhook bodies (files, directories, JSON Lines, gzip) into the raw archive.

    Idempotent: a request already stored (same received_at and body sha256) counts as a
    duplicate and is not stored again. Bad lines are reported with file:line and skipped; the
    command exits 1 when there were any. Replayed rows wait for `incidentctl process`, or
    `--process` processes each batch as it is stored.
    """
    c = context(ctx)
    moment = None
    if received_at is not None:
        moment = option_value("--received-at", _iso_time, received_at)
    with batch_collection(), _progress(_AmountColumn()) as progress:
        reading = progress.add_task("replaying", total=None, unit="bytes")
        report = lambda n, total: progress.update(reading, advance=n, total=total or None)  # noqa: E731
        if process:
            queue = progress.add_task("processing", total=None, unit="rows", visible=False)

            def queued(done: int, total: int) -> None:  # the rows left waiting, after the last batch
                progress.update(reading, visible=False)
                progress.update(queue, completed=done, total=total, visible=True)

            summary = replay_and_process(c.engine, paths, Rules.configured(c.settings), clock=c.clock,
                                         received_at=moment, batch_size=batch_size, progress=report,
                                         queue_batch_size=c.settings.batch_size, queue_progress=queued,
                                         lease=c.lease())
        else:
            summary = replay(c.engine, paths, clock=c.clock, received_at=moment, batch_size=batch_size,
                             progress=report)
    processed = summary.processed
    if output is OutputFormat.json:
        typer.echo(dumps({**summary.as_dict(), **({"processed": processed.as_dict()} if processed else {})}))
    else:
        for error in summary.errors:
            err_console.print(f"[red]error:[/red] {escape(error.location)}: {escape(error.message)}",
                              highlight=False, soft_wrap=True)
        if summary.error_count > len(summary.errors):
            err_console.print(f"… and {summary.error_count - len(summary.errors)} more error(s)", highlight=False)
        typer.echo(f"read {summary.read} from {summary.files} file(s): stored {summary.stored}, "
                   f"duplicates {summary.duplicates}, errors {summary.error_count}"
                   + (f" ({summary.not_payloads} stored bodies are not known payloads)" if summary.not_payloads else "")
                   + (f"; skipped {summary.skipped_files} file(s) without a .json/.jsonl/.ndjson suffix"
                      if summary.skipped_files else "")
                   + (f"; actions {summary.actions} stored ({summary.actions_applied} applied), "
                      f"{summary.action_duplicates} already there" if summary.actions or summary.action_duplicates
                      else ""))
        if processed is not None:
            typer.echo(f"processed {processed.line()}")
    if summary.error_count:
        raise typer.Exit(1)
