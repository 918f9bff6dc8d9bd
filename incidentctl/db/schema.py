"""The schema: SQLAlchemy Core tables, the single source for both databases.

`sql/` holds the same schema as MySQL DDL for DBAs; tests/db/test_schema.py proves they agree.
Times are stored as naive UTC (DATETIME(6) on MySQL) and read back as aware UTC datetimes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()
LEASE_OWNER_MAX = 255

# BIGINT ids on MySQL; SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator):
    """Aware UTC datetime in, aware UTC datetime out; stored naive UTC with microseconds."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite through raw SQL
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=timezone.utc)


def json_text(value: Any) -> str:
    """`value` as the stored JSON text: compact, keys sorted, non-ASCII as is. orjson writes it
    several times faster than json.dumps (series rows carry two documents each); json.dumps
    writes what orjson cannot or writes otherwise (NaN and infinities, which orjson turns into
    null; integers past 64 bits; lone surrogates; keys that are not strings), so the text is
    always json.dumps'."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        text = b"null"
    if b"null" in text:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text.decode()


class JsonText(TypeDecorator):
    """A JSON document kept as text (MEDIUMTEXT on MySQL), so both databases store it alike."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.MEDIUMTEXT())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect) -> str | None:
        if value is None:
            return None
        return json_text(value)

    def process_result_value(self, value: str | None, dialect) -> Any:
        return None if value is None else json.loads(value)


Body = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
Url = String(2048)

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(255), nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

# Tables whose ids outlive their rows: a deleted incident's id stays in Slack buttons and in
# people's notes, a purged raw row's id in the timeline of its incident. A new row must never
# get such an id. InnoDB's AUTO_INCREMENT counter never goes back (it is persisted since MariaDB
# 10.2 and MySQL 8.0); SQLite gives max(id) + 1 unless the table is AUTOINCREMENT, so after the
# newest incidents are deleted (`rebuild`) or every raw row is purged it would give their ids again.
NEVER_REUSED_IDS = ("grafana_alerts", "incidents")

# One row per webhook request, exactly as received. Append-only but for the processing marks.
# The longest parse_error / process_error written (the columns hold 1,024 characters).
ERROR_TEXT_MAX = 1000

# InnoDB's row format for grafana_alerts (schema version 11).
QUEUE_ROW_FORMAT = "REDUNDANT"

grafana_alerts = Table(
    "grafana_alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime, nullable=False),
    Column("source", String(32), nullable=False),  # grafana | grafana-legacy | alertmanager | replay | unknown
    Column("remote_addr", String(64)),
    Column("user_agent", String(255)),
    Column("content_type", String(255)),
    Column("body", Body, nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("body_size", Integer, nullable=False),
    Column("alert_count", Integer),  # when the body parses
    Column("status", String(16)),  # top-level status when the body parses
    Column("parse_error", String(1024)),  # why the body is not a known payload
    Column("processed_at", UtcDateTime),
    Column("process_error", String(1024)),
    # The queue: unprocessed rows oldest first. MySQL indexes NULLs, so `processed_at IS NULL
    # ORDER BY id` is a range scan on this index.
    Index("ix_grafana_alerts_queue", "processed_at", "id"),
    # Ordered by (received_at, id) for keyset scans (export, purge); alert_count makes it covering
    # for `report`'s alert volume per day, which then never reads a million bodies.
    Index("ix_grafana_alerts_received_at", "received_at", "id", "alert_count"),
    Index("ix_grafana_alerts_sha256", "body_sha256"),
    # The one format whose records keep room for a NULL fixed-width column: `process` sets
    # processed_at in place instead of rewriting each row with its body (docs/ARCHITECTURE.md).
    sqlite_autoincrement=True,  # see NEVER_REUSED_IDS
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False),  # incident fingerprint (hash of group_by values)
    # Equals fingerprint while the incident is unresolved, NULL once resolved: the unique index
    # makes "one unresolved incident per fingerprint" a database rule.
    Column("active_key", String(64)),
    Column("status", String(16), nullable=False),  # open | acknowledged | resolved
    Column("resolution", String(16)),  # auto | manual
    Column("title", String(512), nullable=False),
    Column("severity", String(16), nullable=False),  # critical | error | warning | info | none
    Column("alertname", String(255)),
    Column("cluster", String(255)),
    Column("namespace", String(255)),
    Column("service", String(255)),
    Column("group_labels", JsonText),  # the group_by label values
    Column("common_labels", JsonText),  # labels every series shares
    Column("opened_at", UtcDateTime, nullable=False),
    Column("last_alert_at", UtcDateTime, nullable=False),
    Column("acknowledged_at", UtcDateTime),
    Column("acknowledged_by", String(255)),
    Column("resolved_at", UtcDateTime),
    Column("resolved_by", String(255)),
    Column("alert_count", Integer, nullable=False, default=0),  # alert notifications received
    Column("series_count", Integer, nullable=False, default=0),  # alert series in the incident
    Column("series_firing", Integer, nullable=False, default=0),  # of which firing now
    Column("reopen_count", Integer, nullable=False, default=0),
    UniqueConstraint("active_key", name="ux_incidents_active_key"),
    Index("ix_incidents_fingerprint", "fingerprint", "opened_at"),
    Index("ix_incidents_status_opened", "status", "opened_at"),
    Index("ix_incidents_opened", "opened_at"),
    Index("ix_incidents_severity_opened", "severity", "opened_at"),
    Index("ix_incidents_cluster_opened", "cluster", "opened_at"),
    # `list --cluster C --namespace N`, the usual drill-down: without it a rare pair scans one of
    # the single-column ranges row by row (1.3 s over 1M incidents, see docs/DATABASE.md).
    Index("ix_incidents_cluster_namespace_opened", "cluster", "namespace", "opened_at"),
    Index("ix_incidents_namespace_opened", "namespace", "opened_at"),
    Index("ix_incidents_service_opened", "service", "opened_at"),
    Index("ix_incidents_alertname_opened", "alertname", "opened_at"),
    sqlite_autoincrement=True,  # see NEVER_REUSED_IDS
)

# The longest label name or value a `series_labels` key holds as it is (schema.LabelKey).
LABEL_TEXT_MAX = 191


class LabelKey(TypeDecorator):
    """A label name or value as `series_labels` keeps it: UTF-8 bytes (VARBINARY on MySQL), so
    both databases compare them exactly (MySQL's text collations ignore case and trailing
    spaces). Text of LABEL_TEXT_MAX characters or more is stored as its first characters, `#`
    and 32 hex digits of its sha256, LABEL_TEXT_MAX characters in all: every key stays exact
    without a re-check, and a shorter key is always the text itself. A query compares through
    the same conversion, so callers pass plain text."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.VARBINARY(4 * LABEL_TEXT_MAX))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: str | None, dialect) -> bytes | None:
        return None if value is None else label_key(value)

    def process_result_value(self, value: bytes | None, dialect) -> str | None:
        return None if value is None else bytes(value).decode("utf-8", "surrogatepass")


def label_key(text: str) -> bytes:
    """The stored form of a label name or value (see LabelKey)."""
    if len(text) >= LABEL_TEXT_MAX:
        data = text.encode("utf-8", "surrogatepass")
        text = text[:LABEL_TEXT_MAX - 33] + "#" + hashlib.sha256(data).hexdigest()[:32]
    return text.encode("utf-8", "surrogatepass")


# The labels of every series of an incident, one row per distinct (name, value) its series
# have carried, so `list --series-label pod=X` ("which incident has pod X?") reads the few
# incidents from an index. Written when a series is added (its labels never change: its
# fingerprint hashes them), with opened_at the incident's (it never changes), so newest-first
# is index order. `list --label` (a pair every series carries) reads it too.
series_labels = Table(
    "series_labels",
    metadata,
    Column("incident_id", Id, ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("name", LabelKey, primary_key=True),
    Column("value", LabelKey, primary_key=True),
    Column("opened_at", UtcDateTime, nullable=False),
    Index("ix_series_labels_pair", "name", "value", "opened_at", "incident_id"),
    sqlite_with_rowid=False,  # the primary key is the table; no rowid beside it
)

# One row per alert series (alert fingerprint) inside an incident.
incident_alerts = Table(
    "incident_alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("incident_id", Id, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("alert_fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # firing | resolved
    Column("severity", String(16), nullable=False),
    Column("labels", JsonText, nullable=False),
    Column("annotations", JsonText, nullable=False),
    Column("generator_url", Url),
    Column("dashboard_url", Url),
    Column("panel_url", Url),
    Column("silence_url", Url),
    Column("image_url", Url),
    Column("starts_at", UtcDateTime),
    Column("ends_at", UtcDateTime),
    Column("last_event_at", UtcDateTime, nullable=False),  # newest event applied; older ones never undo it
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("times_seen", Integer, nullable=False, default=0),
    Index("ux_incident_alerts_series", "incident_id", "alert_fingerprint", unique=True),
)

# The timeline and audit log of every incident.
incident_events = Table(
    "incident_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("incident_id", Id, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(255), nullable=False),  # `incidentctl` for alert-driven changes, else a person
    Column("alert_fingerprint", String(64)),
    Column("raw_alert_id", Id),  # the grafana_alerts row that caused it
    Column("detail", JsonText),
    Index("ix_incident_events_incident", "incident_id", "id"),
    Index("ix_incident_events_kind_at", "kind", "at"),
)

# The Slack outbox: written in the same transaction as the change it announces.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("incident_id", Id, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("change", String(32), nullable=False),  # opened | reopened | escalated | acknowledged | resolved
    Column("reason", String(255)),
    Column("severity", String(16), nullable=False),  # the incident's severity at the change
    Column("created_at", UtcDateTime, nullable=False),  # event time of the change
    Column("state", String(16), nullable=False),  # pending | sent | failed | suppressed
    Column("route", String(64)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime),
    Column("last_error", String(1024)),
    Column("sent_at", UtcDateTime),
    Column("silence_id", Id),
    # The notify run that claimed the row until next_attempt_at (db/… claim_due): a row update,
    # so two runs on two Galera nodes conflict at certification instead of both sending.
    Column("claimed_by", String(LEASE_OWNER_MAX)),
    # When the Slack app's messages showing the incident took this change in (thread replies
    # queued, re-render due); NULL: not yet (notify/slack_store.py queue_replies).
    Column("threaded_at", UtcDateTime),
    Index("ix_notifications_state", "state", "id"),
    Index("ix_notifications_incident", "incident_id"),
    Index("ix_notifications_threaded", "threaded_at", "id"),
)

# The delivery log: one row per digest POSTed to Slack (one route's message in one notify run).
# Written as `sending` before the POST and settled with Slack's answer in the transaction that
# marks the outbox rows, so a run that died in between leaves `sending` behind: like a timeout,
# an outcome nobody knows, and its changes will be sent again.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("route", String(64), nullable=False),
    Column("changes", Integer, nullable=False),  # outbox rows in the digest
    Column("outcome", String(16), nullable=False),  # sending | ok | retryable | permanent | unknown
    Column("status", Integer),  # Slack's HTTP status; NULL when no answer arrived
    Column("error", String(1024)),
    Index("ix_deliveries_attempted", "attempted_at"),
)

# Maintenance windows: alerts whose labels match every matcher are silenced in the window.
silences = Table(
    "silences",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("matchers", JsonText, nullable=False),  # [{"name": .., "value": .., "op": "="}]
    Column("starts_at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expired_at", UtcDateTime),
    # Until when the Slack app has shown this silence on its messages (NULL: not yet); a start,
    # an end or an expiry after it makes the messages of the incidents it covers stale.
    Column("slack_seen_at", UtcDateTime),
    Index("ix_silences_ends_at", "ends_at"),
)

# Signatures of signed webhooks already stored (signatures.py): a replay while the signature is
# still valid finds its key taken and is not stored again. Shared by every receiver; a row is
# deleted once its signature has expired, so the table holds at most the skew window's requests.
seen_signatures = Table(
    "seen_signatures",
    metadata,
    Column("signature_hash", String(64), primary_key=True),  # sha256 of "<scheme>:<signature>"
    Column("seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),  # the signer refuses the signature after this
    Index("ix_seen_signatures_expires_at", "expires_at"),
)

# People's actions as they arrived, through either door (Slack's interactivity URL, the REST
# API), appended by the receiver and applied oldest first by the batch (notify/applier.py).
# Append-only but for the applier's marks (state, reason, applied_at, dedupe_key, reply_*).
action_inbox = Table(
    "action_inbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime, nullable=False),
    Column("door", String(16), nullable=False),  # slack | api
    Column("remote_addr", String(64)),
    Column("content_type", String(255)),
    # The request headers needed to verify it again or audit it (Slack: its timestamp and
    # signature), never a secret: the REST door's Authorization header is not kept.
    Column("headers", JsonText, nullable=False),
    Column("body", Body, nullable=False),  # exactly as received
    Column("incident_id", Id),  # the REST door: the id in its path
    Column("token_id", Id),  # the REST door: the api_tokens row that authenticated it
    Column("token_name", String(255)),  # … and its owner's name then: who acted (kept by export/replay)
    Column("state", String(16), nullable=False),  # pending | applied | refused
    Column("reason", String(1024)),  # why it was refused; what it did when applied
    Column("applied_at", UtcDateTime),  # when the applier decided (applied or refused)
    # The same click sent again (a retry, a replay re-signed) has the same key: the second is
    # refused as a duplicate. NULL until applied; unique, so two appliers cannot both apply it.
    Column("dedupe_key", String(64)),
    Column("reply_state", String(16)),  # Slack's ephemeral answer: pending | sent | failed; NULL: none
    Column("reply_attempts", Integer, nullable=False, default=0),
    Column("reply_error", String(1024)),
    UniqueConstraint("dedupe_key", name="ux_action_inbox_dedupe_key"),
    Index("ix_action_inbox_state", "state", "id"),
    Index("ix_action_inbox_reply", "reply_state", "id"),
    Index("ix_action_inbox_received_at", "received_at", "id"),
)

# Per-person API tokens of the REST door. Only the token's sha256 is kept: it is shown once, by
# `incidentctl token add`. A revoked token stays listed (revoked_at set); its name may be reused.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),  # the person (or system) it belongs to: the actor
    Column("token_sha256", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("revoked_at", UtcDateTime),
    UniqueConstraint("token_sha256", name="ux_api_tokens_sha256"),
    Index("ix_api_tokens_name", "name"),
)

# Leases (db/lease.py): who may do a job that only one worker at a time may do (the applier of
# incident changes), until when, and under which epoch. Plain replicated rows, so the lease holds
# cluster-wide on Galera where GET_LOCK does not; the epoch grows at every takeover and fences a
# worker that lost its lease (its batch's write checks it in the same transaction).
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(LEASE_OWNER_MAX), nullable=False),  # host:pid:random of the holder (or last holder)
    Column("epoch", BigInteger, nullable=False),  # the fencing token: +1 at every acquisition
    Column("acquired_at", UtcDateTime, nullable=False),
    Column("renewed_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),  # released: set to the release time
)

# Messages the Slack app's bot posted (chat.postMessage), kept current with chat.update. `base`
# is the digest as built (no actions, no states), `lines` which of its blocks shows which
# incident ({"block index": incident id}), so a re-render needs no outbox row of the time.
# `changes_seen` counts the changes of its incidents taken in since it was posted; the message
# shows them all when `changes_shown` equals it. A message Slack no longer lets us edit is
# posted again: the row takes the new ts. `state`: live | lost (a repost whose outcome is
# unknown: not posted again blindly) | failed (Slack refuses the render).
slack_messages = Table(
    "slack_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("route", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("ts", String(32), nullable=False),
    Column("posted_at", UtcDateTime, nullable=False),
    Column("base", JsonText, nullable=False),
    Column("lines", JsonText, nullable=False),
    Column("changes_seen", Integer, nullable=False, default=0),
    Column("changes_shown", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False),
    Column("permalink", String(512)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime),
    Column("last_error", String(1024)),
    Column("updated_at", UtcDateTime),
    UniqueConstraint("channel", "ts", name="ux_slack_messages_channel_ts"),
    Index("ix_slack_messages_posted", "posted_at"),
)

# Which incidents each bot message shows ("every recent message that shows it").
slack_message_incidents = Table(
    "slack_message_incidents",
    metadata,
    Column("message_id", Id, ForeignKey("slack_messages.id", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("incident_id", Id, ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Index("ix_slack_message_incidents_incident", "incident_id", "message_id"),
)

# Thread replies owed: one row per (message, change) or (message, silence), sent coalesced (one
# reply per message per run). Claimed before posting like the outbox; `unknown` (posted, no
# answer) is never re-sent. The changes a digest announces are rows `shown` of their own message
# (no reply to itself). A silence's row names the first incident of the message it covers.
slack_replies = Table(
    "slack_replies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", Id, ForeignKey("slack_messages.id", ondelete="CASCADE"), nullable=False),
    Column("notification_id", Id),  # the change (an outbox row); NULL: a silence's reply
    Column("silence_id", Id),  # the silence that began covering incidents of the message
    Column("incident_id", Id, nullable=False),
    Column("state", String(16), nullable=False),  # pending | sent | unknown | failed | shown
    Column("created_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime),
    Column("last_error", String(1024)),
    Column("reply_ts", String(32)),
    Column("sent_at", UtcDateTime),
    UniqueConstraint("message_id", "notification_id", name="ux_slack_replies_change"),
    UniqueConstraint("message_id", "silence_id", name="ux_slack_replies_silence"),
    Index("ix_slack_replies_state", "state", "id"),
)

# Reminders sent for an unacknowledged incident, and whether it was escalated.
slack_reminders = Table(
    "slack_reminders",
    metadata,
    Column("incident_id", Id, ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("sent", Integer, nullable=False, default=0),
    Column("last_sent_at", UtcDateTime),
    Column("escalated_at", UtcDateTime),
    Column("last_error", String(1024)),
    Column("updated_at", UtcDateTime, nullable=False),
)


# Every table says its engine and character set, and the queue its row format, under both names
# a URL may give the dialect (mysql://, mariadb://): a table created without them takes the
# server's and the database's defaults, and a database made by a bare CREATE DATABASE on a
# latin1 server then refuses "→" in a reason and every label outside Latin-1.
MYSQL_TABLE_OPTIONS = {"engine": "InnoDB", "charset": "utf8mb4"}
for _table in metadata.tables.values():
    _options = {**MYSQL_TABLE_OPTIONS, **({"row_format": QUEUE_ROW_FORMAT} if _table is grafana_alerts else {})}
    for _dialect in ("mysql", "mariadb"):
        _table.dialect_kwargs.update({f"{_dialect}_{key}": value for key, value in _options.items()})
