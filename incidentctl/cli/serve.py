"""`incidentctl serve`: the webhook receiver."""

from __future__ import annotations

import logging

import typer

from incidentctl.cli.app import context, module_app

app = module_app()


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Address to listen on.",
                                    show_default="the host setting"),
    port: int | None = typer.Option(None, "--port", "-p", help="Port to listen on.",
                                       show_default="the port setting"),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request (costs throughput)."),
    graceful_timeout: float = typer.Option(30.0, help="Seconds in-flight requests get to finish on SIGTERM."),
) -> None:
    """Receive Grafana/Alertmanager webhooks on POST /webhook/grafana and archive them.

    Every body is committed to `grafana_alerts` before the 2xx answer. Also serves GET /health,
    GET /metrics (Prometheus) and GET /. Stops on SIGTERM/SIGINT after in-flight requests finish.
    """
    from incidentctl.ingest.receiver.server import serve

    settings = context(ctx).settings
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(settings, host=host or settings.host, port=port or settings.port, access_log=access_log,
          graceful_timeout=graceful_timeout)
