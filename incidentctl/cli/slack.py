"""`incidentctl slack …`: the Slack app's setup."""

from __future__ import annotations

from enum import StrEnum

import typer

from incidentctl.cli.app import err_console, module_app
from incidentctl.notify import slack_manifest

app = module_app()

slack_app = typer.Typer(help="Set up the Slack app (buttons on incidents; see docs/SLACK.md).", no_args_is_help=True)
app.add_typer(slack_app, name="slack")


class ManifestFormat(StrEnum):
    yaml = "yaml"
    json = "json"


@slack_app.command("manifest")
def manifest(
    url: str = typer.Option(..., "--url", help="Base URL at which Slack reaches `incidentctl serve` "
                                               "(https://…); buttons post to <url>/slack/actions."),
    name: str = typer.Option(slack_manifest.DEFAULT_NAME, "--name", help="The app's and its bot's name in Slack."),
    fmt: ManifestFormat = typer.Option(ManifestFormat.yaml, "--format", help="YAML or JSON (Slack takes both).",
                                       case_sensitive=False),
) -> None:
    """Print the Slack app manifest: paste it at api.slack.com/apps → Create New App → From a manifest."""
    try:
        data = slack_manifest.build_manifest(url, name)
    except slack_manifest.InvalidAppSetting as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'--{exc.field}'") from None
    if not data["settings"]["interactivity"]["request_url"].startswith("https://"):
        err_console.print("warning: Slack sends clicks only to an https:// Request URL once the app is "
                          "distributed; use https in production", highlight=False)
    typer.echo(slack_manifest.to_yaml(data) if fmt is ManifestFormat.yaml else slack_manifest.to_json(data), nl=False)
