"""`incidentctl demo`: try incidentctl on a short story of sample alerts, in a throwaway SQLite file."""

from __future__ import annotations

from datetime import datetime, timezone

import typer

from ..config import load_settings
from ..database import make_engine
from ..incidents import IncidentFilter, list_incidents
from ..processor import process_pending
from ..demo import DemoReceiver, archived_rows, demo_database_path, demo_story
from ..migrations import upgrade
from ..output import Col, OutputFormat, render_rows
from .app import app
from .incidents import render_incident_table


@app.command("demo")
def demo() -> None:
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
    summary = process_pending(engine, load_settings(environ={}))
    typer.echo(f"   processed {summary.line()}")
    now = datetime.now(timezone.utc)
    render_incident_table(list_incidents(engine, IncidentFilter(status="all")), now,
                          title="incidentctl list --status all")
    engine.dispose()
