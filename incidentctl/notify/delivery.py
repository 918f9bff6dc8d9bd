"""`notify`: pending outbox rows → silences applied → one digest per route → Slack → marked.

Delivery is at-least-once. Rows are claimed (their next_attempt_at pushed a lease ahead) before
sending and marked after. Two ways lead to a change sent twice: the process dies between Slack's
`ok` and the mark (the lease runs out and the next run sends them again), or Slack's answer
comes after the timeout (outcome unknown: retried, and Slack had posted it). Every digest is
logged in `deliveries` first as `sending`, then with its outcome, so both are counted (see
doctor). Nothing is sent again after it was marked sent.

Per route, Slack's answer decides: ok → `sent` with the time; retryable (no connection, 5xx, 429)
or unknown (sent, no answer) → stays `pending`, attempts + 1, next_attempt_at after Retry-After
or an exponential backoff; permanent (400 invalid_payload, 403, 404, 410, …) → `failed` with
Slack's error string, reported here and by `incidentctl outbox`, and not retried unless someone
runs `incidentctl outbox retry`. `preview_digests` is the same path with nothing sent or marked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import requests
from sqlalchemy import Engine

from incidentctl.config import Settings
from incidentctl.db.engine import database_errors, reader
from incidentctl.incidents.model import ChangeKind, OutboxState
from incidentctl.incidents.topology import place_of
from incidentctl.notify import outbox, slack_store
from incidentctl.notify.bursts import BurstRules, Member, burst_context
from incidentctl.notify.digest import build_digest
from incidentctl.notify.pacing import backoff_seconds
from incidentctl.notify.reminders import ReminderPolicy
from incidentctl.notify.routes import DEFAULT_ROUTE, Route, load_routes, route_for
from incidentctl.notify.silences import silence_for, silence_labels, silences_active_between
from incidentctl.notify.slack import OK, PERMANENT, UNKNOWN, SendResult, mask_url, send
from incidentctl.notify.slack_api import SlackApi, bot_api
from incidentctl.notify.slack_bot import bot_message, post_digest, split_in_place
from incidentctl.notify.slack_sync import SyncSummary, sync_messages
from incidentctl.notify.thresholds import ANNOUNCE, WAIT, verdicts

CLAIM_LEASE = timedelta(minutes=2)
DELIVERY_LOG_KEEP = timedelta(days=30)


@dataclass
class RouteReport:
    route: str
    webhook: str  # masked
    changes: int
    outcome: str  # ok | retryable | permanent | unknown | dry-run
    status: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    channel: str = ""  # posted by the Slack app's bot to this channel (webhook: empty)
    ts: str | None = None  # the bot's message


@dataclass
class NotifySummary:
    """What one notify run did."""

    slack_configured: bool
    due: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    suppressed: int = 0
    unroutable: int = 0
    outcome_unknown: int = 0  # digests sent without an answer (their changes are in `retrying`)
    waiting: int = 0  # pending changes not due yet, after this run
    next_attempt_at: datetime | None = None  # when the first of them is due
    below_threshold: int = 0  # changes of episodes that ended below their route's threshold: never sent
    held: int = 0  # pending changes their route's threshold holds back, after this run
    held_until: datetime | None = None  # the earliest time one is checked again (None: every run)
    in_place: int = 0  # acknowledges/resolves delivered by editing a live message and replying in its thread
    slack: dict | None = None  # with a bot token: what keeping its messages current did (slack_sync)
    dry_run: bool = False
    routes: list[RouteReport] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)  # dry run: {route, webhook, changes, message}

    @property
    def ok(self) -> bool:
        return self.slack_configured and not (self.failed or self.retrying or self.unroutable or self.slack_errors)

    @property
    def slack_errors(self) -> list[dict]:
        """Slack's permanent answers while keeping the bot's messages current."""
        return (self.slack or {}).get("errors") or []

    def as_dict(self) -> dict:
        return {"slack_configured": self.slack_configured, "dry_run": self.dry_run, "due": self.due,
                "sent": self.sent, "retrying": self.retrying, "failed": self.failed,
                "suppressed": self.suppressed, "unroutable": self.unroutable,
                "outcome_unknown": self.outcome_unknown, "waiting": self.waiting,
                "next_attempt_at": self.next_attempt_at, "below_threshold": self.below_threshold,
                "held": self.held, "held_until": self.held_until, "in_place": self.in_place, "slack": self.slack,
                "routes": [vars(r) for r in self.routes], "messages": self.messages}


def notify_pending(engine: Engine, settings: Settings, session: requests.Session | None, *,
                   dry_run: bool = False, clock: Callable[[], datetime],
                   routes: Sequence[Route] | None = None, api: SlackApi | None = None,
                   slack_budget: float | None = None) -> NotifySummary:
    """Sends the digest(s) for the due outbox rows. With no Slack route configured, nothing is
    claimed and everything stays pending (a dry run still shows the default route's message).
    The summary also says what stays pending for later (`waiting`, `next_attempt_at`).

    With a bot token (or `api`), a route with a channel is posted to by the bot, and the bot's
    recent messages are then brought up to date (slack_sync.sync_messages, waiting on Slack's
    limits at most `slack_budget` seconds)."""
    now = clock()
    routes = load_routes(settings) if routes is None else list(routes)
    if api is None and not dry_run:
        api = bot_api(settings, session)
    with database_errors(engine):
        if not routes and not dry_run:
            summary = NotifySummary(slack_configured=False, due=outbox.count_due(engine, now))
        else:
            summary = NotifySummary(slack_configured=bool(routes), dry_run=dry_run)
            # With no route, a dry run shows what the default route would get.
            _send_due(engine, settings, session, routes or [Route(DEFAULT_ROUTE, "")], now, summary, api)
            if api is not None and not dry_run:
                summary.slack = sync(engine, settings, api, routes, now, slack_budget).as_dict()
                keep = max(DELIVERY_LOG_KEEP, timedelta(seconds=settings.slack_update_window))
                slack_store.prune_messages(engine, now - keep)
        summary.waiting, summary.next_attempt_at = outbox.waiting(engine, now)
        summary.held, summary.held_until = outbox.held(engine, now)
    return summary


def sync(engine: Engine, settings: Settings, api: SlackApi, routes: Sequence[Route], now: datetime,
         budget: float | None = None) -> SyncSummary:
    """Brings the bot's recent messages up to date, replies in their threads, sends reminders."""
    return sync_messages(engine, api, routes, ReminderPolicy.configured(settings),
                         window=timedelta(seconds=settings.slack_update_window), now=now, budget=budget)


def _send_due(engine: Engine, settings: Settings, session: requests.Session | None, routes: Sequence[Route],
              now: datetime, summary: NotifySummary, api: SlackApi | None = None) -> None:
    """Claims the due rows, suppresses the silenced ones and sends (or, dry, builds) one digest per
    route, logging each in `deliveries`; counts go into `summary`."""
    dry_run = summary.dry_run
    rows = outbox.claim_due(engine, now, CLAIM_LEASE, claim=not dry_run)
    summary.due = len(rows)
    if not rows:
        return
    by_route, silenced, unroutable = _split(engine, rows, routes)
    summary.suppressed, summary.unroutable = len(silenced), len(unroutable)
    if not dry_run:
        for silence_id, ids in _group(silenced).items():
            outbox.mark(engine, ids, state=OutboxState.SUPPRESSED, silence_id=silence_id, next_attempt_at=None)
    _apply_thresholds(engine, routes, by_route, now, summary)
    if api is not None and not dry_run:
        _deliver_in_place(engine, settings, routes, by_route, now, summary)
    if not by_route:
        return
    world = outbox.world_state(engine)
    links = outbox.links_for(engine, sorted({r["incident_id"] for rs in by_route.values() for r in rs}))
    bursts = _bursts(engine, settings, [r for rs in by_route.values() for r in rs])
    for route in routes:
        route_rows = by_route.get(route.name)
        if not route_rows:
            continue
        changes = [outbox.to_change(r, links.get(r["incident_id"], {})) for r in route_rows]
        message = build_digest(changes, world, now, route=route.name, bursts=bursts)
        ids = [r["id"] for r in route_rows]
        attempts = max(r["attempts"] for r in route_rows)
        by_bot = bool(route.channel and (api is not None or (dry_run and settings.slack_bot_token)))
        if dry_run:
            shown = bot_message(message, changes, now) if by_bot and message is not None else message
            summary.messages.append({"route": route.name, "webhook": mask_url(route.webhook_url),
                                     "channel": route.channel if by_bot else "", "changes": len(ids), "message": shown})
            summary.routes.append(RouteReport(route.name, mask_url(route.webhook_url), len(ids), "dry-run"))
            continue
        delivery = outbox.begin_delivery(engine, route.name, len(ids), now)
        assert message is not None  # rows were due: the digest says something
        ts = None
        if by_bot and api is not None:
            result, ts = post_digest(engine, api, route=route.name, channel=route.channel, message=message,
                                     changes=changes, now=now)
        else:
            assert session is not None  # a run that sends has a session
            result = send(session, route.webhook_url, message, settings.slack_timeout)
        report = _apply(engine, route, delivery, ids, attempts, result, now, summary)
        if by_bot:
            report.webhook, report.channel, report.ts = "", route.channel, ts
        summary.routes.append(report)
    if not dry_run:
        outbox.prune_deliveries(engine, now - DELIVERY_LOG_KEEP)


def _bursts(engine: Engine, settings: Settings, rows: list[dict]):
    """What the digests need to group bursts: the incidents they announce as opened, read with
    their neighbours and history (bursts.burst_context)."""
    rules = BurstRules.configured(settings)
    opened = {r["incident_id"]: Member(r["incident_id"], r["alertname"] or "", r["opened_at"],
                                       place_of(r, rules.labels)) for r in rows if r["change"] == ChangeKind.OPENED}
    return burst_context(engine, rules, list(opened.values()))


def preview_digests(engine: Engine, settings: Settings, *, clock: Callable[[], datetime]) -> list[dict]:
    """The message(s) notify would send now, without sending or marking anything (for the demo)."""
    return notify_pending(engine, settings, None, dry_run=True, clock=clock).messages


def _split(engine: Engine, rows: list[dict], routes: Sequence[Route]):
    """Rows → ({route: rows}, [(silence id, row id)], [unroutable rows])."""
    start, end = min(r["created_at"] for r in rows), max(r["created_at"] for r in rows)
    with reader(engine).connect() as conn:
        active = silences_active_between(conn, start, end)
    by_route: dict[str, list[dict]] = {}
    silenced: list[tuple[int, int]] = []
    unroutable: list[dict] = []
    for row in rows:
        labels = silence_labels(row)
        sid = silence_for(active, labels, row["created_at"]) if active else None
        if sid is not None:
            silenced.append((sid, row["id"]))
            continue
        route = route_for(routes, row["severity"], labels)
        if route is None:
            unroutable.append(row)
        else:
            by_route.setdefault(route.name, []).append(row)
    return by_route, silenced, unroutable


def _apply_thresholds(engine: Engine, routes: Sequence[Route], by_route: dict[str, list[dict]], now: datetime,
                      summary: NotifySummary) -> None:
    """Takes out of `by_route` the rows of episodes below their route's threshold: held back
    (still pending, checked again when `notify_after` is reached, or at every run when an
    alert can release them) or, when the episode ended below it, suppressed for good."""
    gated = [(r, r.threshold) for r in routes if r.threshold and by_route.get(r.name)]
    if not gated:
        return
    ids = sorted({row["incident_id"] for route, _ in gated for row in by_route[route.name]})
    histories = outbox.change_histories(engine, ids, with_alerts=any(t.min_alerts for _, t in gated))
    hold: dict[tuple[datetime | None, str], list[int]] = {}
    never: dict[str, set[int]] = {}
    for route, threshold in gated:
        decided: dict[int, dict] = {}
        keep = []
        for row in by_route[route.name]:
            iid = row["incident_id"]
            if iid not in decided:
                decided[iid] = verdicts(threshold, *histories[iid], now)
            verdict = decided[iid].get(row["id"])
            if verdict is None or verdict.action == ANNOUNCE:
                keep.append(row)
            elif verdict.action == WAIT:
                check = None if threshold.waits_for_alerts else verdict.until
                note = f"{outbox.HELD_PREFIX}route {route.name}: {verdict.reason}"
                hold.setdefault((check, note), []).append(row["id"])
            else:
                # The whole episode on this route, also its rows held until later: it is over.
                labels = silence_labels(row)
                same = {c.id for c in histories[iid][0] if decided[iid][c.id] is verdict
                        and route_for(routes, c.severity, {**labels, "severity": c.severity}) is route}
                never.setdefault(f"{outbox.NEVER_PREFIX}route {route.name}: {verdict.reason}", set()).update(
                    same | {row["id"]})
        if keep:
            by_route[route.name] = keep
        else:
            del by_route[route.name]
    summary.below_threshold = sum(len(v) for v in never.values())
    if summary.dry_run:
        return
    for (check, note), row_ids in hold.items():
        outbox.mark(engine, row_ids, next_attempt_at=check, last_error=note)
    for note, suppressed_ids in never.items():
        summary.below_threshold -= len(suppressed_ids) - outbox.mark(engine, sorted(suppressed_ids),
                                                                     state=OutboxState.SUPPRESSED,
                                                                     last_error=note, next_attempt_at=None)


def _deliver_in_place(engine: Engine, settings: Settings, routes: Sequence[Route], by_route: dict[str, list[dict]],
                      now: datetime, summary: NotifySummary) -> None:
    """Takes out of `by_route` the acknowledges and resolves a live message of the route's
    channel already shows, and marks them sent: slack_sync edits that message and replies."""
    since = now - timedelta(seconds=settings.slack_update_window)
    for route in routes:
        rows = by_route.get(route.name)
        if not rows or not route.channel:
            continue
        digest, in_place = split_in_place(engine, route.channel, rows, since)
        if not in_place:
            continue
        summary.in_place += outbox.mark(engine, [r["id"] for r in in_place], state=OutboxState.SENT, sent_at=now,
                                        route=route.name, last_error=None, next_attempt_at=None)
        if digest:
            by_route[route.name] = digest
        else:
            del by_route[route.name]


def _group(pairs: list[tuple[int, int]]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def _apply(engine: Engine, route: Route, delivery: int, ids: list[int], attempts: int, result: SendResult,
           now: datetime, summary: NotifySummary) -> RouteReport:
    """Records Slack's answer on the delivery and the rows of one route."""
    report = RouteReport(route.name, mask_url(route.webhook_url), len(ids), result.outcome, result.status,
                         result.error)
    error = None if result.error is None else f"HTTP {result.status}: {result.error}" if result.status else result.error

    def settle(**values) -> int:
        return outbox.settle_delivery(engine, delivery, outcome=result.outcome, status=result.status, error=error,
                                      ids=ids, route=route.name, **values)

    if result.outcome == OK:
        summary.sent += settle(state=OutboxState.SENT, sent_at=now, last_error=None, next_attempt_at=None)
    elif result.outcome == PERMANENT:
        summary.failed += settle(state=OutboxState.FAILED, last_error=error, next_attempt_at=None)
    else:
        # Rows of one route share a digest, so the backoff follows the most-tried row among them.
        wait = backoff_seconds(attempts + 1, result.retry_after)
        report.next_attempt_at = now + timedelta(seconds=wait)
        summary.retrying += settle(last_error=error, next_attempt_at=report.next_attempt_at)
        summary.outcome_unknown += result.outcome == UNKNOWN
    return report

