"""The command line: thin wiring over the core. Each module registers one group of commands."""

from __future__ import annotations

from incidentctl.cli.app import app
from incidentctl.cli import db
from incidentctl.cli import config_cmd
from incidentctl.cli import demo
from incidentctl.cli import notify
from incidentctl.cli import silence
from incidentctl.cli import serve
from incidentctl.cli import grafana_cmd
from incidentctl.cli import purge
from incidentctl.cli import doctor
from incidentctl.cli import process
from incidentctl.cli import incidents
from incidentctl.cli import run
from incidentctl.cli import history
from incidentctl.cli import report
from incidentctl.cli import simulate
from incidentctl.cli import noise
from incidentctl.cli import rebuild
from incidentctl.cli import slack
from incidentctl.cli import related
from incidentctl.cli import watch


def main() -> None:
    """Console entry point. The app turns core errors into a message and an exit code itself
    (cli/app.py), so typer's test runner sees what the console script does."""
    app()
