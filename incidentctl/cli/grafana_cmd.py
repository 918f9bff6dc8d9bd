"""`incidentctl grafana …`: print the shipped dashboard and provisioning files."""

from __future__ import annotations

import typer

from incidentctl.cli.app import module_app
from incidentctl.ops import grafana

app = module_app()

grafana_app = typer.Typer(
    help="Print the Grafana dashboard and provisioning files (redirect them into Grafana's folders).",
    no_args_is_help=True,
)
app.add_typer(grafana_app, name="grafana")


@grafana_app.command("dashboard")
def dashboard() -> None:
    """Print the SRE dashboard JSON (MySQL data source): import it in Grafana or provision it."""
    typer.echo(grafana.read(grafana.DASHBOARD), nl=False)


@grafana_app.command("datasource")
def datasource() -> None:
    """Print the MySQL data source provisioning YAML (edit url, user, database)."""
    typer.echo(grafana.read(grafana.DATASOURCE), nl=False)


@grafana_app.command("contact-point")
def contact_point(
    url: str | None = typer.Option(None, "--url", help="Webhook URL of `incidentctl serve`.",
                                      show_default=grafana.DEFAULT_WEBHOOK_URL),
) -> None:
    """Print the webhook contact point provisioning YAML (auth and HMAC options commented)."""
    try:
        text = grafana.contact_point(url)
    except grafana.InvalidWebhookUrl as exc:
        raise typer.BadParameter(str(exc), param_hint="'--url'") from None
    typer.echo(text, nl=False)


@grafana_app.command("provider")
def provider() -> None:
    """Print the dashboard provider YAML that makes Grafana load the dashboard from a folder."""
    typer.echo(grafana.read(grafana.DASHBOARD_PROVIDER), nl=False)
