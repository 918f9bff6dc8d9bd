"""The typer application and the conventions every command shares: the context, `--output/-o`,
option errors that name the option, the core's errors as one line and an exit code.

The root group loads its commands lazily, click's "LazyGroup" pattern: each command module
registers its commands on an app of its own (`module_app()`), the table in cli/commands.py names
the module of each, and the root imports a module when one of its commands runs. A run imports the
root, the one command's module and what that needs; the root's --help lists the table.
"""

from __future__ import annotations

import getpass
import importlib
import sys
from collections.abc import Callable
from datetime import datetime
from difflib import get_close_matches
from pathlib import Path
from typing import TypeVar, overload

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from incidentctl import __version__
from incidentctl.cli.commands import COMMANDS
from incidentctl.cli.output import OutputFormat, display_zone, set_display_zone
from incidentctl.config import load_settings, zone_name
from incidentctl.durations import parse_since
from incidentctl.errors import IncidentctlError
from incidentctl.wiring import Context

T = TypeVar("T")

# Messages on stderr are lines: never wrapped at 80 columns when stderr is a pipe or a log.
err_console = Console(stderr=True, soft_wrap=True)


class _Commands(TyperGroup):
    """The root group: the commands of cli/commands.py, each built from its module when first asked
    for (kept in `self.commands` after). A core error (IncidentctlError), wherever a command or the
    settings raise it, ends the command with its one-line message on stderr and its exit code; so
    does, with exit 3, an error the database answered that no command turned into one."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, cmd_name):
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, attribute = COMMANDS[cmd_name].target.partition(":")
            owner = getattr(importlib.import_module(module), attribute)
            self.commands[cmd_name] = typer.main.get_group(owner).commands[cmd_name]
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx, args):
        # typer suggests near names from `self.commands`, which holds only the commands built so far
        name = args[0]
        near = [] if name in COMMANDS or name.startswith("-") else get_close_matches(name, list(COMMANDS))
        if near:
            ctx.fail(f"No such command {name!r}. Did you mean {', '.join(map(repr, near))}?")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx, formatter):
        # The table's help, shortened as click shortens a command's own (a stand-in command carries
        # it): listing the commands imports none of them.
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        rows = [(name, TyperCommand(name, help=entry.help).get_short_help_str(limit))
                for name, entry in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except IncidentctlError as exc:
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            ctx.exit(exc.exit_code)
        except Exception as exc:
            # What the database answered that no command expects (a table dropped by hand, a
            # schema changed under us): the driver's message on one line, not a traceback that
            # carries the statement (megabytes for a batch). Exit 3, as for a database unreachable.
            exc_module = sys.modules.get("sqlalchemy.exc")  # not imported: not a database error
            if exc_module is None or not isinstance(exc, exc_module.DBAPIError):
                raise
            from incidentctl.db.engine import short_error

            err_console.print(f"[red]error:[/red] the database answered with an error: {escape(short_error(exc))}",
                              highlight=False)
            ctx.exit(3)


app = typer.Typer(
    cls=_Commands,
    name="incidentctl",
    help="Grafana/Alertmanager alert webhooks → raw archive → incidents → Slack digests.",
    no_args_is_help=True,
    # Plain click help and errors, not typer's rich panels: a usage error is one line
    # ("Error: Invalid value for '--since': …") that cron mail and logs keep whole, and a flag's
    # help shows no value type (the panels print `--dry-run <bool>`).
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    add_completion=False,
)


def module_app() -> typer.Typer:
    """A command module's own app, on which it registers its commands and groups; the root takes
    each from it by name (cli/commands.py). Plain click help as the root's: typer takes the markup
    mode from the app a command is built from."""
    return typer.Typer(rich_markup_mode=None)


def output_option(*formats: OutputFormat):
    """`--output/-o FORMAT`: the one meaning of `-o` on every command. With `formats`, the
    command supports only those: any other is a usage error naming the option."""
    if not formats or set(formats) == set(OutputFormat):
        return typer.Option(OutputFormat.table, "--output", "-o", help="Output format.", case_sensitive=False)
    names = [f.value for f in formats]

    def check(value: OutputFormat | str) -> OutputFormat:
        # typer before 0.29 hands a parameter callback the choice's text, later ones the enum.
        value = OutputFormat(value.lower() if isinstance(value, str) else value)
        if value not in formats:
            raise typer.BadParameter(f"{value.value!r}: this command prints {' or '.join(names)}")
        return value

    return typer.Option(OutputFormat.table, "--output", "-o", help="Output format.", case_sensitive=False,
                        metavar=f"<{'|'.join(names)}>", callback=check)


OutputOption = output_option()


def os_user() -> str:
    """Who runs the command, for `--by` left out: the OS user ("unknown" when it has no name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def option_value(option: str, parse: Callable[[str], T], text: str) -> T:
    """`parse(text)`; its ValueError becomes a usage error naming the option (exit 2):
    "Invalid value for '--since': …"."""
    try:
        return parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{option}'") from None


@overload
def time_value(option: str, text: str, now: datetime) -> datetime: ...
@overload
def time_value(option: str, text: str | None, now: datetime) -> datetime | None: ...
def time_value(option: str, text: str | None, now: datetime) -> datetime | None:
    """A `--since`/`--until` value (a duration ago or an ISO 8601 time, in the display zone when
    it has no offset) as of `now`; None stays None."""
    return None if text is None else option_value(option, lambda t: parse_since(t, now, display_zone()), text)


def _tz(value: str | None) -> str | None:
    if value is not None:
        set_display_zone(option_value("--tz", zone_name, value))
    return value


# Every command that prints times takes it (tests/cli/test_cli_conventions.py checks which).
TzOption = typer.Option(None, "--tz", metavar="ZONE", callback=_tz, show_default="display_timezone setting",
                        help="Show times in this time zone (IANA name, e.g. Europe/Berlin); JSON and CSV stay UTC.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"incidentctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", envvar="INCIDENTCTL_CONFIG", help="TOML config file (see docs/CONFIGURATION.md)."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """incidentctl: turn alert webhooks into incidents people can own."""
    settings = load_settings(config_file=config)
    set_display_zone(settings.display_timezone)
    ctx.obj = Context(settings)
    ctx.call_on_close(ctx.obj.close)


def context(ctx: typer.Context) -> Context:
    """The Context built by the root callback."""
    return ctx.find_root().obj
