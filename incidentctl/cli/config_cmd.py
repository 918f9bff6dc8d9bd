"""`incidentctl config`: show the settings in force and where each came from (secrets masked)."""

from __future__ import annotations

import typer

from incidentctl.cli.app import OutputOption, context, module_app
from incidentctl.cli.output import Col, OutputFormat, dumps, render_rows
from incidentctl.config import SETTINGS
from incidentctl.db.engine import database_url, describe_url

app = module_app()


@app.command("config")
def show_config(ctx: typer.Context, output: OutputFormat = OutputOption) -> None:
    """Show every setting, its value (secrets masked) and its source."""
    c = context(ctx)
    masked = c.settings.masked()
    rows = [
        {"name": s.name, "env": s.env, "value": masked[s.name], "source": c.settings.sources.get(s.name, "default")}
        for s in SETTINGS
    ]
    if output is OutputFormat.json:
        typer.echo(dumps({"database": describe_url(database_url(c.settings)), "config_file": c.settings.config_file,
                          "settings": rows}))
        return
    if output is OutputFormat.table:
        typer.echo(f"database: {describe_url(database_url(c.settings))}")
    render_rows(rows, [Col("name", "setting"), Col("env", "environment"), Col("value", "value"),
                       Col("source", "source")], output)
