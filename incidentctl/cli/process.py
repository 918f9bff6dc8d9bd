"""`incidentctl process`: group unprocessed raw alerts into incidents."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from incidentctl.cli.app import OutputOption, context, err_console, module_app
from incidentctl.cli.output import OutputFormat, dumps
from incidentctl.incidents.model import Rules
from incidentctl.incidents.processor import backlog, process_pending
from incidentctl.ingest.inbox import actions_waiting
from incidentctl.ops.gc_tuning import batch_collection

if TYPE_CHECKING:
    from incidentctl.db.lease import Lease
    from incidentctl.wiring import Context

app = module_app()

PROGRESS_MIN_ROWS = 2000  # below this a run takes about a second: no bar


@app.command("process")
def process(
    ctx: typer.Context,
    batch_size: int | None = typer.Option(None, "--batch-size", min=1,
                                             help="Raw rows per transaction.",
                                             show_default="the batch_size setting"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Process at most this many raw rows."),
    output: OutputFormat = OutputOption,
) -> None:
    """Turn unprocessed webhook rows into incidents (oldest first, one transaction per batch),
    then apply people's actions from Slack and the REST API (the action inbox, oldest first).

    Prints a one-line summary: rows, alerts, opened, updated, reopened, resolved, ignored,
    errors (rows that could not be processed; each is marked with its error and skipped, exit code 0)
    and conflicts_retried (batches rolled back by a deadlock or Galera certification conflict and
    run again), and, when there were any, the actions applied and refused. Holds the applier lease
    while it processes alerts; while another worker holds it, waits up to lease_wait, then exits 1.
    """
    c = context(ctx)
    engine = c.engine
    show_bar = err_console.is_terminal and backlog(engine) >= PROGRESS_MIN_ROWS
    rules, size = Rules.configured(c.settings), batch_size or c.settings.batch_size
    lease = c.lease()
    with lease:  # held once across the alerts and the actions, so they apply in one order
        with batch_collection():
            if show_bar:  # rich.progress imported only then: most runs show no bar
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

                with Progress(TextColumn("processing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                              console=err_console, transient=True) as bar:
                    task = bar.add_task("rows", total=None)
                    summary = process_pending(
                        engine, rules, batch_size=size, clock=c.clock, limit=limit, lease=lease,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
            else:
                summary = process_pending(engine, rules, batch_size=size, clock=c.clock, limit=limit, lease=lease)
        applied, refused = _apply_actions(c, lease) if actions_waiting(engine) else (0, 0)
    values = {**summary.as_dict(), "actions_applied": applied, "actions_refused": refused}
    if output is OutputFormat.json:
        typer.echo(dumps(values))
    elif output is OutputFormat.csv:
        typer.echo(",".join(values) + "\n" + ",".join(str(v) for v in values.values()))
    else:
        done = f"; actions: {applied} applied, {refused} refused" if applied or refused else ""
        typer.echo(f"processed {summary.line()}{done}")


def _apply_actions(c: Context, lease: Lease) -> tuple[int, int]:
    """Applies the action inbox under `lease`; returns the actions applied and refused. The applier
    and its Slack client (requests) are imported here: most runs find no action waiting, and in an
    alert storm a run's start-up counts."""
    from incidentctl.notify.applier import apply_pending
    from incidentctl.notify.intent import AllowList
    from incidentctl.notify.slack import make_session
    from incidentctl.notify.slack_api import bot_api
    from incidentctl.notify.usergroups import UserGroups

    with make_session() as session:
        groups = UserGroups(bot_api(c.settings, session), ttl=c.settings.slack_usergroup_ttl)
        actions = apply_pending(c.engine, allow=AllowList.configured(c.settings), session=session, clock=c.clock,
                                timeout=c.settings.slack_timeout, lease=lease, groups=groups)
    return actions.applied, actions.refused
