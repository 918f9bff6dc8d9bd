"""The command line: thin wiring over the core. Each module registers one group of commands on an
app of its own; the root (cli/app.py) imports a module when one of its commands runs, from the
table in cli/commands.py."""

from __future__ import annotations

from incidentctl.cli.app import app


def main() -> None:
    """Console entry point. The app turns core errors into a message and an exit code itself
    (cli/app.py), so typer's test runner sees what the console script does."""
    app()
