"""`incidentctl token add|list|revoke`: per-person API tokens of the REST door."""

from __future__ import annotations

import typer

from incidentctl.cli.app import OutputOption, TzOption, context, err_console, module_app, os_user
from incidentctl.cli.output import Col, OutputFormat, dumps, print_row, render_rows
from incidentctl.ingest.tokens import add_token, list_tokens, revoke_token

app = module_app()

token_app = typer.Typer(help="API tokens for the REST API (POST /api/v1/incidents/{id}/actions).",
                        no_args_is_help=True)
app.add_typer(token_app, name="token")

COLUMNS = [Col("id", "id"), Col("name", "name"), Col("state", "state"), Col("created_at", "created"),
           Col("created_by", "by"), Col("revoked_at", "revoked")]


@token_app.command("add")
def token_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Whose token: the name its actions are recorded under."),
    output: OutputFormat = OutputOption,
) -> None:
    """Create an API token for NAME and print it, once: only its hash is stored. Exits 2 when NAME
    already has a live token."""
    c = context(ctx)
    row, token = add_token(c.engine, name, created_by=os_user(), now=c.clock())
    if output is OutputFormat.table:
        typer.echo(token)
        err_console.print(f"token {row['id']} for {row['name']}: shown once, keep it now "
                          "(Authorization: Bearer <token>)", highlight=False)
    elif output is OutputFormat.json:
        typer.echo(dumps({**row, "token": token}))
    else:
        render_rows([{**row, "token": token}], [*COLUMNS, Col("token", "token")], output)


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", "-a", help="Include revoked tokens."),
    output: OutputFormat = OutputOption,
    tz: str | None = TzOption,
) -> None:
    """List API tokens (never the tokens themselves: only their hashes are stored)."""
    c = context(ctx)
    render_rows(list_tokens(c.engine, include_revoked=all_), COLUMNS, output, title="API tokens",
                empty="no API tokens")


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    name_or_id: str = typer.Argument(..., metavar="NAME|ID", help="The token's name or id (see `token list`)."),
    output: OutputFormat = OutputOption,
) -> None:
    """Revoke a token now: the REST API refuses it from then on (actions it already stored are
    still applied). Exits 1 when there is no such live token."""
    c = context(ctx)
    row = revoke_token(c.engine, name_or_id, now=c.clock())
    print_row(row, COLUMNS, output, f"token {row['id']} ({row['name']}) revoked")
