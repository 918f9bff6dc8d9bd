"""`incidentctl demo`: try incidentctl on bundled sample alerts, in a throwaway SQLite file."""

from __future__ import annotations

import typer

from ..database import make_engine
from ..demo import archive_samples, archived_rows, bundled_samples, demo_database_path
from ..migrations import upgrade
from ..output import Col, OutputFormat, render_rows
from .app import app


@app.command("demo")
def demo() -> None:
    """Archive the bundled sample alerts in .demo/incidentctl.db and show the result."""
    path = demo_database_path()
    if path.exists():
        path.unlink()
    engine = make_engine(f"sqlite+pysqlite:///{path}")
    upgrade(engine)
    samples = bundled_samples()
    ids = archive_samples(engine, samples)
    typer.echo(f"archived {len(ids)} sample webhook bodies into {path}")
    render_rows(
        archived_rows(engine),
        [Col("id", "id"), Col("source", "source"), Col("status", "status"), Col("alert_count", "alerts"),
         Col("body_size", "bytes"), Col("body_sha256", "sha256", render=lambda v, r: v[:12])],
        OutputFormat.table,
        title="grafana_alerts (raw archive)",
    )
    engine.dispose()
