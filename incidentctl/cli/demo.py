"""`incidentctl demo`: try incidentctl on a short story of sample alerts, in a throwaway SQLite file."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import requests
import typer

from incidentctl.cli.app import TzOption, module_app
from incidentctl.cli.incidents import render_incident_table
from incidentctl.cli.output import Col, OutputFormat, dumps, render_rows
from incidentctl.config import load_settings
from incidentctl.db.engine import make_engine
from incidentctl.db.migrations import upgrade
from incidentctl.durations import utc_now
from incidentctl.incidents.listing import IncidentFilter, list_incidents
from incidentctl.incidents.model import Rules
from incidentctl.incidents.processor import process_pending
from incidentctl.notify.delivery import notify_pending, preview_digests
from incidentctl.ops.demo import DemoReceiver, archived_rows, demo_database_path, demo_story

app = module_app()


@app.command("demo")
def demo(tz: str | None = TzOption) -> None:
    """Receive sample alerts over HTTP into .demo/incidentctl.db and show the result."""
    path = demo_database_path()
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    engine = make_engine(f"sqlite+pysqlite:///{path}")
    upgrade(engine)
    typer.secho(f"1. receiver: incidentctl serve on the embedded default ({path})", bold=True)
    receiver = DemoReceiver(path)
    try:
        for sample in demo_story(datetime.now(timezone.utc)):
            answer = receiver.post(sample)
            typer.echo(f"   POST /webhook/grafana  {sample.name:<58} → {answer.status_code} id={answer.json()['id']}")
    finally:
        receiver.stop()
    typer.echo()
    render_rows(
        archived_rows(engine),
        [Col("id", "id"), Col("source", "source"), Col("status", "status"), Col("alert_count", "alerts"),
         Col("body_size", "bytes"), Col("parse_error", "parse error")],
        OutputFormat.table,
        title="grafana_alerts: the raw archive, every body byte for byte",
    )
    typer.echo()
    typer.secho("2. incidentctl process: group the archived alerts into incidents", bold=True)
    settings = load_settings(environ={})
    summary = process_pending(engine, Rules.configured(settings), batch_size=settings.batch_size, clock=utc_now)
    typer.echo(f"   processed {summary.line()}")
    now = datetime.now(timezone.utc)
    render_incident_table(list_incidents(engine, IncidentFilter(status="all")), now,
                          title="incidentctl list --status all")
    typer.echo()
    _digest(engine)
    engine.dispose()


def _digest(engine) -> None:
    """Sends the digest when SLACK_WEBHOOK_URL is set, else shows what would be sent."""
    settings = load_settings(environ={k: v for k, v in os.environ.items() if k == "SLACK_WEBHOOK_URL"})
    if settings.slack_webhook_url:
        typer.secho("3. incidentctl notify: the Slack digest (SLACK_WEBHOOK_URL is set, sending)", bold=True)
        with requests.Session() as session:
            summary = notify_pending(engine, settings, session, clock=utc_now)
        typer.echo(dumps(summary.as_dict()))
        return
    typer.secho("3. incidentctl notify --dry-run: the Slack digest it would send "
                "(set SLACK_WEBHOOK_URL to send it)", bold=True)
    for preview in preview_digests(engine, settings, clock=utc_now):
        message = preview["message"]
        typer.echo(f"   route {preview['route']}, {preview['changes']} change(s); text fallback:\n")
        typer.echo("   " + message["text"].replace("\n", "\n   "))
        typer.echo("\n   Block Kit payload (POSTed to the incoming webhook):")
        typer.echo(dumps(message))
