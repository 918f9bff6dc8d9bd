"""The table of commands (cli/commands.py) and the lazy root: the table and the modules agree, the
root's --help lists what the commands themselves would, and a run imports only what its command
needs (checked in a new process: this one has imported everything)."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys

import pytest
import typer
from typer.core import TyperGroup

import incidentctl.cli
from incidentctl import __version__
from incidentctl.cli import app
from incidentctl.cli.commands import COMMANDS
from tests.support.cli import command_tree, invoke

ROOT, ROOT_CTX = next((command, ctx) for path, command, ctx in command_tree() if path == ())


def registered() -> dict[str, list[str]]:
    """{command name: ["module:attribute", …]} for every command or group that a module of
    incidentctl.cli registers on a typer app of its own (a group's sub-app counts as its group)."""
    found: dict[str, list[str]] = {}
    for info in pkgutil.iter_modules(incidentctl.cli.__path__):
        module = importlib.import_module(f"incidentctl.cli.{info.name}")
        apps = {name: value for name, value in vars(module).items() if isinstance(value, typer.Typer)}
        nested = {id(group.typer_instance) for value in apps.values() for group in value.registered_groups}
        for attribute, value in apps.items():
            if value is app or id(value) in nested:
                continue
            for name in typer.main.get_group(value).commands:
                found.setdefault(name, []).append(f"{module.__name__}:{attribute}")
    return found


def test_the_root_registers_no_command_of_its_own():
    # a command registered on the root app would bypass the table (and --help would not list it)
    assert not app.registered_commands and not app.registered_groups


def test_every_command_the_modules_register_is_in_the_table_where_it_is():
    assert registered() == {name: [entry.target] for name, entry in COMMANDS.items()}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_table_has_the_commands_one_line_help(name):
    command = ROOT.get_command(ROOT_CTX, name)
    assert command is not None
    assert command.get_short_help_str(limit=10**6) == COMMANDS[name].help


def _commands_section(format_commands, width: int) -> str:
    formatter = ROOT_CTX.make_formatter()
    formatter.width = width
    format_commands(ROOT_CTX, formatter)
    return formatter.getvalue()


def _eager(ctx, formatter):
    # TyperGroup's own listing, as before the table: it asks each command (importing its module)
    # for its short help
    TyperGroup.format_commands(ROOT, ctx, formatter)


@pytest.mark.parametrize("width", [50, 64, 78, 80, 120])
def test_root_help_lists_the_commands_as_they_would_list_themselves(width):
    eager = _commands_section(_eager, width)
    assert eager.startswith("Commands:\n") and eager.count("\n") == len(COMMANDS) + 1
    assert _commands_section(ROOT.format_commands, width) == eager


def test_root_help_shows_that_listing():
    # typer's test runner writes help 80 columns wide
    assert _commands_section(_eager, 80) in invoke("--help").stdout


def test_a_mistyped_command_gets_a_suggestion():
    result = invoke("lst")
    assert result.exit_code == 2
    assert "Error: No such command 'lst'. Did you mean 'list'?" in result.output


def _imported_by(*args: str, cwd, settings: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """The standard output of `incidentctl ARGS` run by main() in a new Python, and the modules it
    had imported by the end, with no incidentctl setting in its environment but `settings`."""
    code = (f"import sys; sys.argv = ['incidentctl', *{list(args)!r}]\n"
            "from incidentctl.cli import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "import json; print(json.dumps(sorted(sys.modules)))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENTCTL_")} | (settings or {})
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    output, _, modules = done.stdout.rstrip("\n").rpartition("\n")
    return output, set(json.loads(modules))


def _loaded(modules: set[str], *packages: str) -> list[str]:
    return sorted(p for p in packages if any(m == p or m.startswith(p + ".") for m in modules))


COMMAND_MODULES = {entry.target.partition(":")[0] for entry in COMMANDS.values()}
CORE = ("incidentctl.db", "incidentctl.ingest", "incidentctl.incidents", "incidentctl.notify", "incidentctl.history",
        "incidentctl.ops")
HEAVY = ("sqlalchemy", "pymysql", "requests", "apscheduler", "uvicorn", "rich.progress", "rich.live")


@pytest.mark.slow
@pytest.mark.parametrize("args, prints", [(["--version"], f"incidentctl {__version__}"), (["--help"], "Commands:")],
                         ids=["--version", "--help"])
def test_version_and_help_import_no_command_and_no_database(args, prints, tmp_path):
    output, modules = _imported_by(*args, cwd=tmp_path)
    assert prints in output
    assert _loaded(modules, *COMMAND_MODULES, *CORE, *HEAVY) == []


@pytest.mark.slow
def test_process_imports_its_module_and_the_pipeline_only(tmp_path):
    output, modules = _imported_by("process", "--help", cwd=tmp_path)
    assert output.startswith("Usage: incidentctl process [OPTIONS]")
    assert _loaded(modules, *COMMAND_MODULES) == ["incidentctl.cli.process"]
    assert "incidentctl.incidents.processor" in modules  # it did load
    # not the reports, the scheduler, the receiver, nor the Slack digest and its upkeep (that is `notify`),
    # nor the action applier and its Slack client, nor the progress bar: a run loads those when it needs them
    assert _loaded(modules, "incidentctl.history", "incidentctl.ops.scheduler", "incidentctl.ops.doctor",
                   "incidentctl.ingest.receiver", "incidentctl.notify", "apscheduler", "uvicorn", "requests",
                   "rich.progress") == []


@pytest.mark.slow
def test_process_with_nothing_waiting_loads_no_applier_slack_client_or_progress_bar(tmp_path):
    # An alert storm runs `process` again and again, its start-up in every run: the applier, its
    # Slack client (requests) and the progress bar come only with an action waiting or a long queue.
    output, modules = _imported_by("process", cwd=tmp_path,
                                   settings={"INCIDENTCTL_SQLITE_PATH": str(tmp_path / "empty.db")})
    assert output.startswith("processed 0 rows")
    assert "incidentctl.incidents.processor" in modules
    assert _loaded(modules, "incidentctl.notify", "requests", "urllib3", "rich.progress") == []
