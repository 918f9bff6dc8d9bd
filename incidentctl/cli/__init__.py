"""The command line: thin wiring over the core. Each module registers one group of commands."""

from __future__ import annotations

from incidentctl.cli import (
    config_cmd,
    db,
    demo,
    doctor,
    grafana_cmd,
    history,
    incidents,
    noise,
    notify,
    process,
    purge,
    rebuild,
    related,
    report,
    run,
    serve,
    silence,
    simulate,
    slack,
    token,
    watch,
)
from incidentctl.cli.app import app


def main() -> None:
    """Console entry point. The app turns core errors into a message and an exit code itself
    (cli/app.py), so typer's test runner sees what the console script does."""
    app()
