"""`incidentctl silence add|list|expire`: maintenance windows that keep Slack quiet."""

from __future__ import annotations

from datetime import datetime, timezone

import typer

from incidentctl.cli.app import OutputOption, TzOption, context, module_app, os_user
from incidentctl.cli.output import Col, OutputFormat, display_zone, local_time, print_row, render_rows
from incidentctl.durations import parse_duration
from incidentctl.errors import InvalidSilence
from incidentctl.notify.silences import add_silence, expire_silence, list_silences, parse_matcher

app = module_app()

silence_app = typer.Typer(help="Silence Slack notifications for matching alerts during a time window.",
                          no_args_is_help=True)
app.add_typer(silence_app, name="silence")

COLUMNS = [Col("id", "id"), Col("state", "state"), Col("matchers", "matchers"), Col("starts_at", "starts"),
           Col("ends_at", "ends"), Col("created_by", "by"), Col("comment", "comment")]


def _until(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidSilence(f"--until {text!r} is not an ISO 8601 time (e.g. 2026-01-31T18:00:00Z)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=display_zone())).astimezone(timezone.utc)


@silence_app.command("add")
def silence_add(
    ctx: typer.Context,
    match: list[str] = typer.Option(..., "--match", "-m",
                                    help="Label matcher name=value (also !=, =~regex, !~regex); repeat: all "
                                         "must hold."),
    duration: str | None = typer.Option(None, "--duration", "-d", help="How long from now, e.g. 2h, 30m."),
    until: str | None = typer.Option(None, "--until", help="End time, ISO 8601 (in the display zone when no "
                                        "offset)."),
    comment: str = typer.Option(..., "--comment", help="Why (shown in `silence list`)."),
    by: str | None = typer.Option(None, "--by", help="Who.", show_default="the current user"),
    output: OutputFormat = OutputOption,
    tz: str | None = TzOption,
) -> None:
    """Silence matching alerts from now for --duration or --until: their incidents still update,
    their Slack notifications are suppressed."""
    c = context(ctx)
    if (duration is None) == (until is None):
        raise InvalidSilence("give exactly one of --duration or --until")
    now = c.clock()
    if duration is not None:
        try:
            ends_at = now + parse_duration(duration)
        except ValueError as exc:
            raise InvalidSilence(f"--duration: {exc}") from None
    else:
        assert until is not None  # exactly one of the two
        ends_at = _until(until)
    matchers = [parse_matcher(m) for m in match]
    row = add_silence(c.engine, matchers, starts_at=now, ends_at=ends_at, comment=comment,
                      created_by=by or os_user(), now=now)
    print_row(row, COLUMNS, output, f"silence {row['id']} added: {row['matchers']} until {local_time(row['ends_at'])}")


@silence_app.command("list")
def silence_list(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", "-a", help="Include expired silences."),
    output: OutputFormat = OutputOption,
    tz: str | None = TzOption,
) -> None:
    """List active and upcoming silences (newest first)."""
    c = context(ctx)
    rows = list_silences(c.engine, c.clock(), include_expired=all_)
    render_rows(rows, COLUMNS, output, title="silences", empty="no silences")


@silence_app.command("expire")
def silence_expire(
    ctx: typer.Context,
    silence_id: int = typer.Argument(..., help="The silence's id (see `silence list`)."),
    output: OutputFormat = OutputOption,
) -> None:
    """End a silence now; exits 1 when it does not exist or is already over."""
    c = context(ctx)
    row = expire_silence(c.engine, silence_id, c.clock())
    print_row(row, COLUMNS, output, f"silence {silence_id} expired")
