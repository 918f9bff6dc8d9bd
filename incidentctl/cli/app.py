"""The typer application and the helpers every command shares (context, errors, output option)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .. import __version__
from ..config import ConfigError, load_settings
from ..context import Context
from ..output import OutputFormat

app = typer.Typer(
    name="incidentctl",
    help="Grafana/Alertmanager alert webhooks → raw archive → incidents → Slack digests.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    add_completion=False,
)

err_console = Console(stderr=True)

OutputOption = typer.Option(OutputFormat.table, "--output", "-o", help="Output format.", case_sensitive=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"incidentctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", envvar="INCIDENTCTL_CONFIG", help="TOML config file (see docs/CONFIGURATION.md)."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """incidentctl: turn alert webhooks into incidents people can own."""
    try:
        settings = load_settings(config_file=config)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)
    ctx.obj = Context(settings)
    ctx.call_on_close(ctx.obj.close)


def context(ctx: typer.Context) -> Context:
    """The Context built by the root callback."""
    return ctx.find_root().obj
