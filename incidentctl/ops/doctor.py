"""`doctor`: checks that explain what is wrong with an installation, for people and monitoring.

Each check returns a Check (name, level ok|warn|error, message, detail). The report's exit code
follows the monitoring-plugin convention: 0 all ok, 1 warnings, 2 errors, 3 the database cannot
be reached (state unknown). Nothing here writes to the database. Database checks run in order
and stop where the next would be meaningless (unreachable → no schema check; old schema → no
table queries). Ages are judged against `now` and Thresholds stretched by the schedule
settings; `level_for_age` is the one decision.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, func, not_, or_, select, text

from incidentctl.config import SETTINGS, Settings, mask_secret
from incidentctl.db.engine import GALERA_NOT_READY, database_url, describe_url, is_sqlite, reader, short_error
from incidentctl.db.lease import APPLIER, Holder, read
from incidentctl.db.migrations import schema_status
from incidentctl.db.retry import error_code
from incidentctl.db.schema import action_inbox, deliveries, grafana_alerts, notifications, silences
from incidentctl.durations import format_duration
from incidentctl.incidents.model import OutboxState
from incidentctl.ingest.archive import body_room
from incidentctl.ingest.inbox import InboxState, ReplyState
from incidentctl.notify import slack_store
from incidentctl.notify.delivery import CLAIM_LEASE
from incidentctl.notify.outbox import HELD_PREFIX
from incidentctl.ops.cluster import cluster_check, galera_status, galera_status_of_refusing_node

LEVELS = ("ok", "warn", "error")
EXIT_CODES = {"ok": 0, "warn": 1, "error": 2}
EXIT_UNREACHABLE = 3
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class Check:
    name: str
    level: str  # ok | warn | error
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Thresholds:
    """When a waiting row or notification becomes a warning, then an error."""

    backlog_warn: timedelta = timedelta(minutes=5)
    backlog_error: timedelta = timedelta(hours=1)
    pending_warn: timedelta = timedelta(minutes=15)
    pending_error: timedelta = timedelta(hours=1)
    recent: timedelta = timedelta(hours=24)  # window for bad rows and failed notifications
    silence_soon: timedelta = timedelta(hours=24)
    unknown_warn: int = 3  # digests with an unknown outcome within `recent` that warn
    # A person waits on a click: an action still pending this long means nothing applies the inbox.
    actions_warn: timedelta = timedelta(minutes=1)
    actions_error: timedelta = timedelta(minutes=15)

    @classmethod
    def for_settings(cls, settings: Settings) -> Thresholds:
        """Defaults, stretched so a slow schedule (process/notify/actions interval) is not a warning."""
        return cls(
            backlog_warn=max(cls.backlog_warn, timedelta(seconds=4 * settings.process_interval)),
            pending_warn=max(cls.pending_warn, timedelta(seconds=4 * settings.notify_interval)),
            actions_warn=max(cls.actions_warn, timedelta(seconds=4 * settings.actions_interval)),
        )


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def level(self) -> str:
        return max((c.level for c in self.checks), key=LEVELS.index, default="ok")

    @property
    def exit_code(self) -> int:
        if any(c.name == "database" and c.level == "error" for c in self.checks):
            return EXIT_UNREACHABLE
        return EXIT_CODES[self.level]


def level_for_age(age: timedelta | None, warn: timedelta, error: timedelta) -> str:
    """ok while younger than `warn`, warn until `error`, then error; no age is ok."""
    if age is None or age < warn:
        return "ok"
    return "warn" if age < error else "error"


def doctor(settings: Settings, engine: Engine, now: datetime, thresholds: Thresholds | None = None) -> DoctorReport:
    """Runs every check, in order; database checks stop at the first one that cannot go on."""
    limits = thresholds or Thresholds.for_settings(settings)
    checks = [check_configuration(settings)]
    engine = reader(engine)
    reachable = check_database(engine)
    checks.append(reachable)
    if reachable.level == "ok":
        checks.append(check_body_limit(engine, settings))
        schema = check_schema(engine)
        checks.append(schema)
        if schema.level == "ok":
            with engine.connect() as conn:
                checks += [
                    check_cluster(conn),
                    check_lease(read(conn, APPLIER), now),
                    check_backlog(conn, now, limits),
                    check_bad_rows(conn, now, limits),
                    check_notifications(conn, now, limits),
                    check_deliveries(conn, now, limits),
                    check_silences(conn, now, limits),
                    check_actions(conn, now, limits),
                ]
            checks.append(check_slack_app(settings, engine, now, limits))
    elif reachable.detail.get("error_code") == GALERA_NOT_READY and (status := galera_status_of_refusing_node(engine)):
        checks.append(Check("cluster", *cluster_check(status)))  # a Galera node that lost quorum says why
    return DoctorReport(tuple(checks))


def check_configuration(settings: Settings) -> Check:
    routes = settings.extra.get("routes") or []
    auth = [name for name, on in (
        ("bearer", settings.auth_bearer_token),
        ("basic", settings.auth_basic_user and settings.auth_basic_password),
        ("hmac", settings.hmac_secret),
    ) if on]
    detail = {
        "database": describe_url(database_url(settings)),
        "config_file": settings.config_file,
        "slack_webhook_url": mask_secret(settings.slack_webhook_url),
        "routes": len(routes),
        "receiver": f"{settings.host}:{settings.port}",
        "receiver_auth": auth,
        "secrets_set": sorted(name for name, value in settings.masked().items()
                              if value and name in _secret_names()),
    }
    configured = settings.slack_webhook_url or routes or (settings.slack_bot_token and settings.slack_channel)
    slack = "Slack configured" if configured else "Slack not configured (notifications stay pending)"
    message = f"database {detail['database']}; {slack}; receiver auth: {', '.join(auth) or 'none'}"
    if settings.host not in LOOPBACK and not auth:
        return Check("configuration", "warn",
                     f"the receiver listens on {settings.host} without authentication; set "
                     "INCIDENTCTL_AUTH_BEARER_TOKEN, basic auth or INCIDENTCTL_HMAC_SECRET. " + message, detail)
    return Check("configuration", "ok", message, detail)


def _secret_names() -> set[str]:
    return {s.name for s in SETTINGS if s.secret}


def check_database(engine: Engine) -> Check:
    path = engine.url.database
    if is_sqlite(engine) and path and path != ":memory:" and not Path(path).exists():
        # Connecting would create an empty file; say where the database was expected instead.
        return Check("database", "error", f"no SQLite database at {path}: run `incidentctl db upgrade` or set "
                     "INCIDENTCTL_DATABASE_URL / DB_HOST", {"database": describe_url(engine.url)})
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect is what this check reports
        return Check("database", "error", f"cannot reach {describe_url(engine.url)}: {short_error(exc)}",
                     {"database": describe_url(engine.url), "error_code": error_code(exc)})
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return Check("database", "ok", f"reachable ({elapsed_ms} ms)", {"database": describe_url(engine.url),
                                                                    "connect_ms": elapsed_ms})


def check_body_limit(engine: Engine, settings: Settings) -> Check:
    """Whether the database can store every body the receiver admits (max_body_bytes)."""
    with engine.connect() as conn:
        room = body_room(conn)
    detail = {"max_body_bytes": settings.max_body_bytes, "largest_storable": room.largest,
              "max_allowed_packet": room.packet}
    if room.largest is None:
        return Check("body_limit", "ok", f"bodies up to max_body_bytes ({settings.max_body_bytes} bytes) fit "
                     "(SQLite has no packet limit)", detail)
    problem = room.problem(settings.max_body_bytes)
    if problem:
        return Check("body_limit", "warn", f"{problem}; `serve` refuses larger bodies with 413", detail)
    return Check("body_limit", "ok", f"bodies up to max_body_bytes ({settings.max_body_bytes} bytes) fit "
                 f"max_allowed_packet ({room.packet} bytes; up to {room.largest} would)", detail)


def check_schema(engine: Engine) -> Check:
    status = schema_status(engine)
    detail = {"version": status.current, "latest": status.latest}
    if status.current > status.latest:
        return Check("schema", "error", f"schema version {status.current} is newer than this incidentctl knows "
                     f"({status.latest}): upgrade incidentctl", detail)
    if status.pending:
        return Check("schema", "error", f"schema version {status.current}, needs {status.latest}: "
                     "run `incidentctl db upgrade`", detail)
    return Check("schema", "ok", f"schema version {status.current} (latest)", detail)


def check_cluster(conn) -> Check:
    """The Galera node's state (ops/cluster.py); a single server or SQLite is ok."""
    level, message, detail = cluster_check(galera_status(conn))
    return Check("cluster", level, message, detail)


def check_lease(holder: Holder | None, now: datetime) -> Check:
    """Which worker holds the applier lease (`process`, `rebuild`, `replay --process`) and since
    when, or who held it last. Informational: a stalled backlog is the backlog check's to report."""
    if holder is None:
        return Check("lease", "ok", "no worker has applied changes yet (the applier lease was never taken)",
                     {"holder": None})
    detail = {"holder": holder.owner, "epoch": holder.epoch, "acquired_at": holder.acquired_at,
              "renewed_at": holder.renewed_at, "expires_at": holder.expires_at, "live": holder.live(now)}
    since = format_duration(max(now - holder.acquired_at, timedelta(0)))
    if holder.live(now):
        left = format_duration(holder.expires_at - now)
        return Check("lease", "ok", f"applier lease held by {holder.owner} for {since} (epoch {holder.epoch}, "
                     f"expires in {left} unless renewed)", detail)
    ago = format_duration(max(now - holder.expires_at, timedelta(0)))
    return Check("lease", "ok", f"applier lease free: last held by {holder.owner} (epoch {holder.epoch}), "
                 f"taken {since} ago, ended {ago} ago", detail)


def check_backlog(conn, now: datetime, limits: Thresholds) -> Check:
    count, oldest = conn.execute(
        select(func.count(), func.min(grafana_alerts.c.received_at)).where(grafana_alerts.c.processed_at.is_(None))
    ).one()
    age = now - oldest if oldest is not None else None
    level = level_for_age(age, limits.backlog_warn, limits.backlog_error)
    detail = {"unprocessed": count, "oldest_received_at": oldest,
              "oldest_age_seconds": round(age.total_seconds()) if age else 0}
    if not count or age is None:  # rows have an oldest
        return Check("backlog", "ok", "no unprocessed rows", detail)
    message = f"{count} unprocessed rows, oldest waiting {format_duration(age)}"
    if level != "ok":
        message += " — is `incidentctl process` (or `run`) running? See its log for errors"
    return Check("backlog", level, message, detail)


def check_bad_rows(conn, now: datetime, limits: Thresholds) -> Check:
    since = now - limits.recent
    parse, process = conn.execute(
        select(
            func.count(grafana_alerts.c.parse_error),
            func.count(grafana_alerts.c.process_error),
        ).where(grafana_alerts.c.received_at >= since,
                or_(grafana_alerts.c.parse_error.is_not(None), grafana_alerts.c.process_error.is_not(None)))
    ).one()
    latest = conn.execute(
        select(grafana_alerts.c.id, grafana_alerts.c.parse_error, grafana_alerts.c.process_error)
        .where(grafana_alerts.c.received_at >= since,
               or_(grafana_alerts.c.parse_error.is_not(None), grafana_alerts.c.process_error.is_not(None)))
        .order_by(grafana_alerts.c.id.desc()).limit(3)
    ).all()
    detail = {"parse_errors": parse, "process_errors": process, "window_hours": limits.recent.total_seconds() / 3600,
              "latest": [{"id": r.id, "error": r.process_error or r.parse_error} for r in latest]}
    window = format_duration(limits.recent)
    if not parse and not process:
        return Check("bad_rows", "ok", f"no parse or process errors in the last {window}", detail)
    examples = "; ".join(f"#{r.id}: {(r.process_error or r.parse_error)[:80]}" for r in latest)
    return Check("bad_rows", "warn", f"{parse} rows with parse errors and {process} with process errors in the "
                 f"last {window} (kept; latest {examples})", detail)


def check_notifications(conn, now: datetime, limits: Thresholds) -> Check:
    n = notifications.c
    failed = conn.execute(
        select(func.count()).where(n.state == OutboxState.FAILED, n.created_at >= now - limits.recent)
    ).scalar_one()
    # Rows a route's threshold holds back wait on purpose (docs/SLACK.md, "Thresholds"): not stuck.
    held = n.last_error.startswith(HELD_PREFIX, autoescape=True)
    waiting = and_(n.state == OutboxState.PENDING, or_(n.last_error.is_(None), not_(held)))
    pending, retrying, oldest = conn.execute(
        select(func.count(), func.count(n.last_error), func.min(n.created_at)).where(waiting)
    ).one()
    on_hold = conn.execute(select(func.count()).where(n.state == OutboxState.PENDING, held)).scalar_one()
    last_error = conn.execute(
        select(n.last_error).where(or_(n.state == OutboxState.FAILED, and_(waiting, n.last_error.is_not(None))))
        .order_by(n.id.desc()).limit(1)
    ).scalar()
    age = now - oldest if oldest is not None else None
    stuck_level = level_for_age(age, limits.pending_warn, limits.pending_error)
    level = max(stuck_level, "warn" if failed else "ok", key=LEVELS.index)
    detail = {"failed_recent": failed, "pending": pending, "retrying": retrying,
              "oldest_pending_age_seconds": round(age.total_seconds()) if age else 0, "last_error": last_error,
              "held": on_hold}
    parts = []
    if failed:
        parts.append(f"{failed} failed for good in the last {format_duration(limits.recent)}")
    if pending and age is not None:  # pending rows have an oldest
        parts.append(f"{pending} pending ({retrying} after an error), oldest {format_duration(age)}")
    if on_hold:
        parts.append(f"{on_hold} held below a route's threshold")
    if not parts:
        return Check("notifications", "ok", "nothing pending or failed", detail)
    message = "; ".join(parts)
    if stuck_level != "ok":
        message += " — is `incidentctl notify` (or `run`) running, and is Slack configured?"
    if last_error:
        message += f"; last error: {last_error[:120]}"
    return Check("notifications", level, message, detail)


def check_deliveries(conn, now: datetime, limits: Thresholds) -> Check:
    """Digests whose outcome nobody knows: Slack's answer came too late (or not at all), or the
    run died before recording it (still `sending` after the claim ran out). Their changes are
    sent again, so each may be a duplicate message."""
    d = deliveries.c
    since = now - limits.recent
    unknown = or_(d.outcome == "unknown", and_(d.outcome == "sending", d.attempted_at < now - CLAIM_LEASE))
    count, changes, latest = conn.execute(
        select(func.count(), func.coalesce(func.sum(d.changes), 0), func.max(d.attempted_at))
        .where(d.attempted_at >= since, unknown)
    ).one()
    window = format_duration(limits.recent)
    detail = {"outcome_unknown": count, "changes": int(changes), "latest_at": latest,
              "window_hours": limits.recent.total_seconds() / 3600}
    if not count:
        return Check("deliveries", "ok", f"no digest sent with outcome unknown in the last {window}", detail)
    message = (f"{count} digest{'s' if count != 1 else ''} sent with outcome unknown (possible duplicates) "
               f"in the last {window}, {int(changes)} change(s), latest {format_duration(now - latest)} ago")
    if count < limits.unknown_warn:
        return Check("deliveries", "ok", message, detail)
    return Check("deliveries", "warn", message + " — Slack answers slower than INCIDENTCTL_SLACK_TIMEOUT, "
                 "or notify runs are killed mid-send", detail)


def check_slack_app(settings: Settings, engine: Engine, now: datetime, limits: Thresholds) -> Check:
    """With a bot token: what Slack refused lately — the token or a channel (permanent: nothing
    reaches Slack until someone fixes it), digests the bot could not post, messages no longer
    kept current, thread replies that went out without an answer."""
    if not settings.slack_bot_token:
        return Check("slack_app", "ok", "no SLACK_BOT_TOKEN: the Slack app is not used (incoming webhooks only)",
                     {"bot": False})
    since = now - limits.recent
    found = slack_store.failures(engine, since)
    n = notifications.c
    with engine.connect() as conn:
        refused = conn.execute(select(func.count(), func.max(n.last_error)).where(
            n.state == OutboxState.FAILED, n.created_at >= since,
            or_(n.last_error.startswith("workspace: "), n.last_error.startswith("channel: ")))).one()
    detail = {"bot": True, **found, "digests_refused": refused[0]}
    window = format_duration(limits.recent)
    problems = []
    if refused[0]:
        problems.append(f"{refused[0]} change(s) not posted, Slack refused the bot ({refused[1]})")
    if found["messages_failing"]:
        problems.append(f"{found['messages_failing']} message(s) not kept current ({found['last_error']})")
    if found["replies_failed"]:
        problems.append(f"{found['replies_failed']} thread reply(ies) refused")
    if problems:
        return Check("slack_app", "error", f"in the last {window}: " + "; ".join(problems)
                     + " — check SLACK_BOT_TOKEN and that the bot is in its channels (/invite)", detail)
    unsure = found["messages_lost"] + found["replies_unknown"]
    if unsure:
        return Check("slack_app", "warn", f"in the last {window}: {found['messages_lost']} repost(s) and "
                     f"{found['replies_unknown']} thread reply(ies) sent without an answer (not sent again)", detail)
    return Check("slack_app", "ok", f"nothing refused by Slack in the last {window}", detail)


def check_silences(conn, now: datetime, limits: Thresholds) -> Check:
    s = silences.c
    active = conn.execute(
        select(s.id, s.ends_at, s.created_by, s.comment)
        .where(s.starts_at <= now, s.ends_at > now, s.expired_at.is_(None)).order_by(s.ends_at)
    ).all()
    soon = [r for r in active if r.ends_at - now <= limits.silence_soon]
    detail = {"active": len(active), "ending_soon": [{"id": r.id, "ends_at": r.ends_at, "created_by": r.created_by,
                                                      "comment": r.comment} for r in soon]}
    if not soon:
        return Check("silences", "ok", f"{len(active)} active silences, none ending in the next "
                     f"{format_duration(limits.silence_soon)}", detail)
    listed = ", ".join(f"#{r.id} in {format_duration(r.ends_at - now)} ({r.created_by})" for r in soon)
    return Check("silences", "ok", f"{len(soon)} of {len(active)} active silences end soon: {listed}", detail)


def check_actions(conn, now: datetime, limits: Thresholds) -> Check:
    """People's actions (Slack clicks, REST calls) waiting to be applied, and refusals that could
    not be told to the person in Slack within `recent`."""
    c = action_inbox.c
    count, oldest = conn.execute(select(func.count(), func.min(c.received_at)).where(
        c.state == InboxState.PENDING)).one()
    untold = conn.scalar(select(func.count()).where(c.reply_state == ReplyState.FAILED,
                                                    c.applied_at >= now - limits.recent)) or 0
    age = now - oldest if oldest is not None else None
    level = level_for_age(age, limits.actions_warn, limits.actions_error)
    detail = {"pending": count, "oldest_received_at": oldest,
              "oldest_age_seconds": round(age.total_seconds()) if age else 0, "replies_failed": untold}
    parts = [f"{count} action(s) from Slack or the REST API waiting, oldest {format_duration(age)}"
             if age is not None else "no actions waiting"]
    if level != "ok":
        parts[0] += " — is `incidentctl run` (or `process`) running?"
    if untold:
        parts.append(f"{untold} refusal(s) in the last {format_duration(limits.recent)} could not be told in "
                     "Slack (see action_inbox.reply_error)")
        level = "warn" if level == "ok" else level
    return Check("actions", level, "; ".join(parts), detail)
