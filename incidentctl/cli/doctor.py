"""`incidentctl doctor`: check the installation and explain what is wrong."""

from __future__ import annotations

import typer
from rich.table import Table

from incidentctl.cli.app import OutputOption, context, module_app
from incidentctl.cli.output import Col, OutputFormat, dumps, render_rows, stdout_console
from incidentctl.ops.doctor import EXIT_UNREACHABLE, doctor

app = module_app()

STYLE = {"ok": "green", "warn": "yellow", "error": "red"}


@app.command("doctor")
def doctor_command(ctx: typer.Context, output: OutputFormat = OutputOption) -> None:
    """Check configuration, database, schema, backlog, bad rows, notifications and silences.

    Exit code for monitoring: 0 all ok, 1 warnings, 2 errors, 3 database unreachable.
    """
    c = context(ctx)
    engine = c.raw_engine()  # no schema check: reporting a missing or old schema is a check
    try:
        report = doctor(c.settings, engine, c.clock())
    finally:
        engine.dispose()
    checks = [{"name": k.name, "level": k.level, "message": k.message, "detail": k.detail} for k in report.checks]
    if output is OutputFormat.json:
        typer.echo(dumps({"level": report.level, "exit_code": report.exit_code, "checks": checks}))
    elif output is OutputFormat.csv:
        render_rows(checks, [Col("name", "check"), Col("level", "level"), Col("message", "message")], output)
    else:
        table = Table(header_style="bold", show_lines=False)
        for header in ("check", "level", "message"):
            table.add_column(header, overflow="fold")
        for k in report.checks:
            table.add_row(k.name, f"[{STYLE[k.level]}]{k.level}[/]", k.message)
        console = stdout_console()
        console.print(table)
        summary = "database unreachable" if report.exit_code == EXIT_UNREACHABLE else report.level
        console.print(f"doctor: [{STYLE[report.level]}]{summary}[/] (exit {report.exit_code})")
    raise typer.Exit(report.exit_code)
