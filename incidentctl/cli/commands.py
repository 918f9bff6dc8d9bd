"""The commands by name: the module that registers each on its own typer app, and its one-line help.

This table is the one list of commands. The root group (cli/app.py) lists them from it and imports
a command's module only when that command runs, so `incidentctl process` loads the processor and
not the reports, and `incidentctl --help` loads no command module at all.
tests/cli/test_commands.py checks the table against the modules: every name registered there with
this help, and every command the modules register named here.
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    """Where a command is ("module:attribute", a typer app registering it) and its one-line help:
    the first sentence of its help, as `--help` lists it (shortened to the terminal's width)."""

    target: str
    help: str


# In the order the root's --help lists them.
COMMANDS: dict[str, Entry] = {
    "config": Entry("incidentctl.cli.config_cmd:app", "Show every setting, its value (secrets masked) and its source."),
    "related": Entry("incidentctl.cli.related:app", "Incidents probably related to one, each with its reason."),
    "list": Entry("incidentctl.cli.incidents:app", "List incidents, newest first (default: the unresolved ones)."),
    "show": Entry("incidentctl.cli.incidents:app",
                  "Show one incident: its alert series (labels, annotations, links), its timeline and the "
                  "incidents probably related to it (as `incidentctl related ID`)."),
    "ack": Entry("incidentctl.cli.incidents:app", "Acknowledge open incidents (open → acknowledged)."),
    "resolve": Entry("incidentctl.cli.incidents:app", "Resolve incidents by hand (open or acknowledged → resolved)."),
    "reopen": Entry("incidentctl.cli.incidents:app", "Reopen resolved incidents (resolved → open)."),
    "note": Entry("incidentctl.cli.incidents:app", "Add a note to an incident's timeline (any status)."),
    "demo": Entry("incidentctl.cli.demo:app",
                  "Receive sample alerts over HTTP into .demo/incidentctl.db and show the result."),
    "doctor": Entry("incidentctl.cli.doctor:app",
                    "Check configuration, database, schema, backlog, bad rows, notifications and silences."),
    "export": Entry("incidentctl.cli.history:app",
                    "Export the raw archive as JSON Lines, one object per stored webhook request."),
    "replay": Entry("incidentctl.cli.history:app",
                    "Import historical webhook bodies (files, directories, JSON Lines, gzip) into the raw archive."),
    "noise": Entry("incidentctl.cli.noise:app", "Noise per alert rule, and fixes backtested on the archive."),
    "notify": Entry("incidentctl.cli.notify:app",
                    "Send one Slack digest per route for the pending outbox, and mark what was sent."),
    "process": Entry("incidentctl.cli.process:app",
                     "Turn unprocessed webhook rows into incidents (oldest first, one transaction per batch), then "
                     "apply people's actions from Slack and the REST API (the action inbox, oldest first)."),
    "purge": Entry("incidentctl.cli.purge:app",
                   "Delete processed raw webhook rows older than a cut-off, in small transactions."),
    "simulate": Entry("incidentctl.cli.simulate:app",
                      "What-if: run the grouping over history under the current and the proposed rules."),
    "rebuild": Entry("incidentctl.cli.rebuild:app",
                     "Recompute every incident from the raw archive under the given (or configured) rules."),
    "report": Entry("incidentctl.cli.report:app",
                    "SRE report over a window: MTTA, MTTR, resolves, noise, alert volume per day."),
    "run": Entry("incidentctl.cli.run:app",
                 "Process new alerts every INCIDENTCTL_PROCESS_INTERVAL, apply people's actions from Slack and the "
                 "REST API every INCIDENTCTL_ACTIONS_INTERVAL and send the Slack digest every "
                 "INCIDENTCTL_NOTIFY_INTERVAL, until SIGTERM/SIGINT."),
    "serve": Entry("incidentctl.cli.serve:app",
                   "Receive Grafana/Alertmanager webhooks on POST /webhook/grafana and archive them."),
    "watch": Entry("incidentctl.cli.watch:app",
                   "Watch the unresolved incidents live: the `list` filters, refreshed every --interval."),
    "db": Entry("incidentctl.cli.db:app", "Create, upgrade and inspect the database schema."),
    "grafana": Entry("incidentctl.cli.grafana_cmd:app",
                     "Print the Grafana dashboard and provisioning files (redirect them into Grafana's folders)."),
    "outbox": Entry("incidentctl.cli.notify:app",
                    "Inspect the Slack outbox; put failed notifications back in the queue."),
    "silence": Entry("incidentctl.cli.silence:app",
                     "Silence Slack notifications for matching alerts during a time window."),
    "slack": Entry("incidentctl.cli.slack:app", "Set up the Slack app (buttons on incidents; see docs/SLACK.md)."),
    "token": Entry("incidentctl.cli.token:app", "API tokens for the REST API (POST /api/v1/incidents/{id}/actions)."),
}
