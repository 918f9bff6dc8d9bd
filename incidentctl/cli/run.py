"""`incidentctl run`: the long-running scheduler (process, notify and the Slack app's updates on their intervals)."""

from __future__ import annotations

import logging
import sys

import typer

from incidentctl.cli.app import context, module_app
from incidentctl.notify.slack import make_session
from incidentctl.ops.scheduler import Scheduler, cycle_jobs

app = module_app()


@app.command("run")
def run(ctx: typer.Context) -> None:
    """Process new alerts every INCIDENTCTL_PROCESS_INTERVAL, apply people's actions from Slack
    and the REST API every INCIDENTCTL_ACTIONS_INTERVAL and send the Slack digest every
    INCIDENTCTL_NOTIFY_INTERVAL, until SIGTERM/SIGINT.

    With SLACK_BOT_TOKEN and a channel, a `slack` job every INCIDENTCTL_SLACK_SYNC_INTERVAL
    (default 3 s) keeps the bot's recent messages current (edits, thread replies) and sends
    reminders.

    Runs never overlap; each logs one line with its counts to stderr. Without Slack configured there
    are no notify runs, and one warning at start says so. On SIGTERM/SIGINT the current run
    finishes, then it exits 0. Exit 2 for a bad [[routes]] config; exit 3 when the database is
    unavailable at start; later outages are logged and retried on the next run.
    """
    c = context(ctx)
    logging.basicConfig(level=c.settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # urllib3's DEBUG lines carry the request path, which for a Slack webhook is the secret.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, logging.getLogger().level))
    engine = c.engine  # checks the database and schema before the loop starts
    with make_session() as session:
        Scheduler(cycle_jobs(engine, c.settings, session, c.clock)).run_until_signalled()
