"""Running incidentctl in tests: in this process through typer's CliRunner (`invoke`), or as the
installed console script in a new process (`run_cli`; a test doing that is marked slow)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping

import typer
import typer.testing
from typer.testing import CliRunner, Result

from incidentctl.cli import app

# typer's runner builds the click command from the app on every invoke, and the root then builds
# each command it runs from that command's signature (about 20 ms of CPU for them all, and the quick
# tests invoke the CLI thousands of times): built once a process instead, as the console script
# builds it once, so the root keeps each command it has built. Running a command changes nothing else.
assert callable(typer.testing._get_command), "typer.testing no longer has _get_command: see this cache"
typer.testing._get_command = functools.cache(typer.testing._get_command)
_runner = CliRunner()


def command_tree() -> list[tuple[tuple[str, ...], typer.core.TyperCommand | typer.core.TyperGroup, typer.Context]]:
    """(path, click command, its context) for every command a user can run, the root first, e.g.
    (("db", "upgrade"), …): the commands `invoke` runs, asked of each group by click's
    list_commands/get_command (the root builds a command from its module only when asked for it)."""
    def walk(command, path, parent):
        # as click makes it: the command's context_settings, the rest inherited from the parent
        ctx = typer.Context(command, info_name=path[-1] if path else "incidentctl", parent=parent,
                            **(command.context_settings or {}))
        yield path, command, ctx
        if hasattr(command, "list_commands"):  # a group (typer vendors its own click)
            for name in command.list_commands(ctx):
                yield from walk(command.get_command(ctx, name), path + (name,), ctx)

    return list(walk(typer.testing._get_command(app), (), None))


def db_env(db_url: str, **extra: str) -> dict[str, str]:
    """Environment for a command on db_url, as a person named tester at a 200-column terminal
    (actors and table widths do not depend on who runs the tests, or where)."""
    return {"INCIDENTCTL_DATABASE_URL": db_url, "USER": "tester", "LOGNAME": "tester", "COLUMNS": "200", **extra}


def invoke(*args: str, db: str | None = None, env: Mapping[str, str] | None = None, check: bool = False,
           **kw) -> Result:
    """`incidentctl ARGS` in this process; db: a database URL, run with db_env(db); env: laid over
    that and os.environ. An exception the command does not turn into an exit code propagates (pass
    catch_exceptions=True to get it in the result). check: assert that it exited 0."""
    if db is not None:
        env = {**db_env(db), **(env or {})}
    kw.setdefault("catch_exceptions", False)
    result = _runner.invoke(app, list(args), env=env, **kw)
    if check:
        assert result.exit_code == 0, result.output
    return result


def console_script() -> str:
    """The installed `incidentctl` of this virtualenv."""
    path = shutil.which("incidentctl", path=os.path.dirname(sys.executable))
    assert path, "incidentctl console script not installed in the test environment"
    return path


def run_cli(*args: str, env: Mapping[str, str], check: bool = False, text: bool = True, timeout: float = 120,
            **kw) -> subprocess.CompletedProcess:
    """`incidentctl ARGS` through the console script, output captured; env replaces the environment.
    check: assert that it exited 0."""
    done = subprocess.run([console_script(), *args], env=dict(env), capture_output=True, text=text,
                          timeout=timeout, **kw)
    if check:
        assert done.returncode == 0, done.stderr
    return done
