"""`incidentctl notify` (send the Slack digest) and `incidentctl outbox …` (inspect, retry)."""

from __future__ import annotations

from datetime import datetime

import typer

from incidentctl.cli.app import OutputOption, TzOption, context, err_console, module_app, output_option
from incidentctl.cli.output import Col, OutputFormat, dumps, local_time, render_rows
from incidentctl.db.engine import database_errors
from incidentctl.durations import format_duration
from incidentctl.errors import SlackNotConfigured
from incidentctl.incidents.model import OutboxState
from incidentctl.notify import outbox
from incidentctl.notify.delivery import NotifySummary, notify_pending
from incidentctl.notify.routes import load_routes
from incidentctl.notify.slack import make_session

app = module_app()


@app.command("notify")
def notify(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the message(s) as JSON; send and mark nothing."),
    output: OutputFormat = output_option(OutputFormat.table, OutputFormat.json),
    tz: str | None = TzOption,
) -> None:
    """Send one Slack digest per route for the pending outbox, and mark what was sent.

    When nothing is due, says what is pending for later and when it is due. With SLACK_BOT_TOKEN,
    routes with a channel are posted to by the Slack app's bot, and its recent messages are then
    kept current (edited in place, changes replied in their threads, reminders). Exit codes: 0
    everything due was delivered, or nothing was due; 1 a route failed (rows stay pending for a
    retry, or are marked failed on a permanent answer), Slack refused the bot (token, channel), a
    change matched no route, or Slack is not configured (SLACK_WEBHOOK_URL unset; the outbox stays
    pending); 3 the database is unavailable.
    """
    c = context(ctx)
    routes = load_routes(c.settings)  # a bad [[routes]] table stops the command before anything is claimed
    with make_session() as session:
        summary = notify_pending(c.engine, c.settings, session, dry_run=dry_run, clock=c.clock, routes=routes)
    if dry_run:
        typer.echo(dumps(summary.as_dict() if output is OutputFormat.json else summary.messages))
        if not summary.slack_configured:
            err_console.print("note: Slack is not configured (SLACK_WEBHOOK_URL); this is what would be sent.")
        return
    if output is OutputFormat.json:
        typer.echo(dumps(summary.as_dict()))
    else:
        _print(summary, c.clock())
    if not summary.slack_configured:
        raise SlackNotConfigured(
            f"Slack is not configured: set SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN and SLACK_CHANNEL (or [[routes]] "
            f"in the config file); "
            f"{summary.due} due change(s) stay pending")
    if not summary.ok and (summary.due or summary.slack_errors):
        raise typer.Exit(1)


def _print(s: NotifySummary, now: datetime) -> None:
    if not s.slack_configured:
        return
    if not s.due:
        typer.echo(f"nothing due: {_waiting(s, now)}" if s.waiting else "nothing to send")
        if s.held:
            typer.echo(_held(s))
        _print_slack(s)
        return
    for r in s.routes:
        where = f"channel {r.channel}" if r.channel else r.webhook
        if r.outcome == "ok":
            typer.echo(f"route {r.route} ({where}): sent {r.changes} change(s)")
        elif r.outcome == "permanent":
            fix = "the bot's token or channel" if r.channel else "the webhook"
            typer.echo(f"route {r.route} ({where}): FAILED, Slack says {r.status or ''} {r.error}; "
                       f"{r.changes} change(s) marked failed — fix {fix}, then `incidentctl outbox retry`")
        elif r.outcome == "unknown":
            typer.echo(f"route {r.route} ({where}): sent, no answer ({r.error}); Slack may have posted it, "
                       f"{r.changes} change(s) retry after {_time(r.next_attempt_at)} (a duplicate is possible)")
        else:
            typer.echo(f"route {r.route} ({where}): not delivered ({r.error}); "
                       f"{r.changes} change(s) retry after {_time(r.next_attempt_at)}")
    typer.echo(f"sent {s.sent}, suppressed {s.suppressed} (silenced), retrying {s.retrying}, "
               f"failed {s.failed}, unroutable {s.unroutable}"
               + (f", never announced {s.below_threshold} (resolved below threshold)" if s.below_threshold else ""))
    if s.unroutable:
        typer.echo("some changes match no route and no default route is set (SLACK_WEBHOOK_URL)")
    if s.in_place:
        typer.echo(f"{s.in_place} change(s) delivered in place (their messages edited, replied in the thread)")
    if s.waiting:
        typer.echo(f"still pending: {_waiting(s, now)}")
    if s.held:
        typer.echo(_held(s))
    _print_slack(s)


def _print_slack(s: NotifySummary) -> None:
    """What keeping the bot's messages current did, and what Slack refused."""
    if not s.slack:
        return
    k = s.slack
    done = [f"{k['updated']} message(s) updated", f"{k['replies']} thread repl(ies)"]
    for key, words in (("reposted", "posted anew (no longer editable)"), ("reminders", "reminder(s)"),
                       ("escalations", "escalation(s)"), ("retrying", "to retry"), ("failed", "failed"),
                       ("lost", "reposted without an answer (not sent again)"),
                       ("replies_unknown", "change(s) replied without an answer (not sent again)")):
        if k[key]:
            done.append(f"{k[key]} {words}")
    if any(k[key] for key in ("updated", "replies", "reposted", "reminders", "escalations", "retrying", "failed",
                              "lost", "replies_unknown")):
        typer.echo("slack app: " + ", ".join(done))
    for e in k["errors"]:
        hint = {"workspace": "fix SLACK_BOT_TOKEN (reinstall the app, or a new token)",
                "channel": "check the channel ID and `/invite` the bot"}.get(e["scope"], "")
        typer.echo(f"slack app: FAILED in {e['channel']}: Slack says {e['error']} ({e['scope']})"
                   + (f" — {hint}" if hint else ""))

def _held(s: NotifySummary) -> str:
    """`held: 2 change(s) below their route's threshold, checked again at … / at every run`."""
    when = f"at {_time(s.held_until)}" if s.held_until else "at every run"
    return f"held: {s.held} change(s) below their route's threshold, checked again {when}"


def _waiting(s: NotifySummary, now: datetime) -> str:
    """`3 change(s) pending retry, next attempt at 2026-03-01 12:05:00 UTC (in 4m)`."""
    due = s.next_attempt_at
    assert due is not None  # rows waiting for a retry have a next attempt
    return f"{s.waiting} change(s) pending retry, next attempt at {_time(due)} (in {format_duration(due - now)})"


def _time(moment: datetime | None) -> str:
    return local_time(moment) if moment else "the next run"


STATE_NAMES = ", ".join(OutboxState)
outbox_app = typer.Typer(help="Inspect the Slack outbox; put failed notifications back in the queue.",
                         no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("list")
def outbox_list(
    ctx: typer.Context,
    state: list[str] | None = typer.Option(None, "--state", "-s",
                                              help=f"Only these states ({STATE_NAMES}); repeatable."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many rows, newest first."),
    output: OutputFormat = OutputOption,
    tz: str | None = TzOption,
) -> None:
    """List outbox rows with their delivery state, attempts, next attempt (pending rows) and Slack's last error."""
    c = context(ctx)
    states = tuple(state or OutboxState)
    bad = set(states) - set(OutboxState)
    if bad:
        err_console.print(f"[red]error:[/red] unknown state(s) {', '.join(sorted(bad))}; "
                          f"use {', '.join(OutboxState)}")
        raise typer.Exit(2)
    with database_errors(c.engine):
        rows = outbox.list_outbox(c.engine, states=states, limit=limit)
    render_rows(rows, [Col("id", "id"), Col("incident_id", "incident"), Col("change", "change"),
                       Col("severity", "severity"), Col("state", "state"), Col("route", "route"),
                       Col("attempts", "attempts"), Col("created_at", "at"),
                       Col("next_attempt_at", "next attempt", _next_attempt), Col("last_error", "last error"),
                       Col("title", "title")], output, title="Slack outbox", empty="the outbox is empty")


def _next_attempt(value: datetime | None, row: dict) -> str:
    if row["state"] != OutboxState.PENDING:
        return "-"
    return _time(value) if value else "next run"


@outbox_app.command("retry")
def outbox_retry(
    ctx: typer.Context,
    ids: list[int] | None = typer.Argument(None, help="Outbox row ids; all failed rows when omitted."),
    output: OutputFormat = output_option(OutputFormat.table, OutputFormat.json),
) -> None:
    """Put failed notifications back to pending, e.g. after fixing a removed webhook."""
    c = context(ctx)
    with database_errors(c.engine):
        n = outbox.retry_failed(c.engine, ids)
    if output is OutputFormat.json:
        typer.echo(dumps({"requeued": n}))
    else:
        typer.echo(f"{n} failed notification(s) back to pending")
