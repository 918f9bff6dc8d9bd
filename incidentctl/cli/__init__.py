"""The command line: thin wiring over the core. Each module registers one group of commands."""

from __future__ import annotations

import sys

from rich.markup import escape

from ..errors import IncidentctlError
from .app import app, err_console
from . import db  # noqa: F401  (registers commands)
from . import config_cmd  # noqa: F401
from . import demo  # noqa: F401
from . import notify  # noqa: F401
from . import silence  # noqa: F401
from . import serve  # noqa: F401
from . import grafana_cmd  # noqa: F401
from . import purge  # noqa: F401
from . import doctor  # noqa: F401
from . import process  # noqa: F401
from . import incidents  # noqa: F401
from . import run  # noqa: F401
from . import history  # noqa: F401
from . import report  # noqa: F401
from . import simulate  # noqa: F401
from . import rebuild  # noqa: F401


def main() -> None:
    """Console entry point: runs the app and turns core errors into a message and exit code."""
    try:
        app()  # standalone: click handles usage errors (exit 2) and re-raises everything else
    except IncidentctlError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
