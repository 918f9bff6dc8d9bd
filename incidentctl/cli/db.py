"""`incidentctl db …`: create, upgrade and inspect the schema."""

from __future__ import annotations

import typer

from incidentctl.cli.app import context, module_app, output_option
from incidentctl.cli.output import OutputFormat, dumps
from incidentctl.db.engine import database_errors, describe_url
from incidentctl.db.migrations import mysql_ddl, schema_status, upgrade

app = module_app()

db_app = typer.Typer(help="Create, upgrade and inspect the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, output: OutputFormat = output_option(OutputFormat.table, OutputFormat.json)) -> None:
    """Create the schema or bring it to the latest version (safe to run again)."""
    c = context(ctx)
    engine = c.raw_engine()
    with database_errors(engine):
        applied = upgrade(engine, now=c.clock())
        status = schema_status(engine)
    engine.dispose()
    if output is OutputFormat.json:
        typer.echo(dumps({"database": describe_url(engine.url), "applied": [m.version for m in applied],
                          "version": status.current}))
        return
    if applied:
        for m in applied:
            typer.echo(f"applied {m.version}: {m.description}")
    typer.echo(f"{describe_url(engine.url)}: schema at version {status.current} (latest)")


@db_app.command("status")
def db_status(ctx: typer.Context, output: OutputFormat = output_option(OutputFormat.table, OutputFormat.json)) -> None:
    """Show the schema version; exits 1 when migrations are pending."""
    c = context(ctx)
    engine = c.raw_engine()
    with database_errors(engine):
        status = schema_status(engine)
    engine.dispose()
    if output is OutputFormat.json:
        typer.echo(dumps({"database": describe_url(engine.url), "version": status.current,
                          "latest": status.latest, "pending": [m.version for m in status.pending]}))
    else:
        state = "up to date" if status.current == status.latest else f"{len(status.pending)} migration(s) pending"
        typer.echo(f"{describe_url(engine.url)}: schema version {status.current} of {status.latest} ({state})")
        for m in status.pending:
            typer.echo(f"  pending {m.version}: {m.description}")
    if status.pending:
        raise typer.Exit(1)


@db_app.command("ddl")
def db_ddl() -> None:
    """Print the schema as MySQL/MariaDB DDL (the contents of sql/schema.sql)."""
    typer.echo(mysql_ddl(), nl=False)
