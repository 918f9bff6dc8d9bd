"""The command line: thin wiring over the core. Each module registers one group of commands."""

from __future__ import annotations

import sys

from rich.markup import escape

from incidentctl.errors import IncidentctlError
from incidentctl.cli.app import app, err_console
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


def main() -> None:
    """Console entry point: runs the app and turns core errors into a message and exit code."""
    try:
        app()  # standalone: click handles usage errors (exit 2) and re-raises everything else
    except IncidentctlError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
