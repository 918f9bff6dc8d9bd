"""Settings: one declarative table, read once into a frozen object.

Every setting is declared once, as a typed field of Settings with its environment variable,
default, parser and help; SETTINGS is that table, and it drives loading, validation,
`incidentctl config` and docs/CONFIGURATION.md.
Precedence: environment variable > config file (TOML) > default. Nothing else in the code reads
os.environ for configuration.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from incidentctl.durations import parse_duration
from incidentctl.errors import ConfigError

T = TypeVar("T")


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _seconds(raw: str) -> float:
    return parse_duration(raw).total_seconds()


def _optional_seconds(raw: str) -> float:
    """A duration in seconds; empty, `off` or 0 mean off (0.0)."""
    if raw.strip().lower() in ("", "off", "0"):
        return 0.0
    return _seconds(raw)


# Slack conversation IDs: public (C…), private (G… for older ones), direct message (D…).
SLACK_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,20}")


def slack_channel_id(raw: str) -> str:
    """A Slack channel ID (`C0123ABCD`); empty means none. Names are refused: a channel can be
    renamed, and chat.update needs the ID."""
    value = raw.strip()
    if value and not SLACK_CHANNEL_ID.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not a Slack channel ID like C0123ABCD (channel name → "
                         "View channel details → the ID at the bottom)")
    return value


def _slack_bot_token(raw: str) -> str:
    """A bot token (`xoxb-…`), surrounding whitespace dropped; empty means none. The error
    never repeats the value."""
    token = raw.strip()
    if token and (not token.startswith("xoxb-") or any(c.isspace() for c in token)):
        raise ValueError("not a bot token: it starts with xoxb- (Slack app → OAuth & Permissions → "
                         "Bot User OAuth Token)")
    return token


def _slack_signing_secret(raw: str) -> str:
    """The app's signing secret, surrounding whitespace dropped (a copied newline would break
    every signature check)."""
    secret = raw.strip()
    if any(c.isspace() for c in secret):
        raise ValueError("a signing secret has no spaces (Slack app → Basic Information → Signing Secret)")
    return secret


# A Slack mention of a person (`<@U…>`) or a user group (`<!subteam^S…>`).
SLACK_HANDLE = re.compile(r"<@[UW][A-Z0-9]{2,20}>|<!subteam\^S[A-Z0-9]{2,20}>")


def slack_handle(raw: str) -> str:
    """An on-call handle to mention in reminders; empty means none."""
    value = raw.strip()
    if value and not SLACK_HANDLE.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not a Slack mention like <@U0123ABCD> or <!subteam^S0123ABCD>")
    return value


def _severity_names(raw: str) -> tuple[str, ...]:
    """Severities (comma-separated) that get reminders; empty: none."""
    names = tuple(n.strip().lower() for n in raw.split(",") if n.strip())
    bad = [n for n in names if n not in ("critical", "error", "warning", "info", "none")]
    if bad:
        raise ValueError(f"unknown severity {bad[0]!r}: expected critical, error, warning, info or none")
    return names


def _severity_name(raw: str) -> str:
    """A severity a threshold can wait for, or empty (off)."""
    value = raw.strip().lower()
    if value not in ("", "critical", "error", "warning", "info"):
        raise ValueError(f"expected critical, error, warning or info, got {raw!r}")
    return value


def _size(raw: str) -> int:
    text = raw.strip().upper()
    for suffix, factor in (("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10), ("B", 1)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def zone_name(raw: str) -> str:
    """An IANA time zone name as the system's time zone database spells it (`europe/berlin` →
    `Europe/Berlin`); raises ValueError for a name it does not know."""
    name = raw.strip()
    try:
        ZoneInfo(name)
        return name
    except (ZoneInfoNotFoundError, ValueError):
        pass
    for known in available_timezones():  # only when the name is not spelled exactly
        if known.lower() == name.lower():
            return known
    raise ValueError(f"unknown time zone {raw!r} (use an IANA name such as UTC or Europe/Berlin)")


@dataclass(frozen=True)
class Setting:
    """A row of the settings table, read from the declaration of a Settings field."""

    name: str
    env: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    secret: bool = False


def setting(env: str, default: T, parse: Callable[[str], T], help: str, *, secret: bool = False) -> T:
    """Declares a field of Settings: its environment variable, default, parser and help text
    (SETTINGS is read from these). A secret is left out of the repr."""
    return field(default=default, repr=not secret,
                 metadata={"setting": {"env": env, "parse": parse, "help": help, "secret": secret}})


@dataclass(frozen=True, init=False)
class Settings:
    """The loaded configuration: one typed field per setting, so a misspelt name fails the type
    check. Each field is declared once, here, with its environment variable, default, parser and
    help: the table (SETTINGS) that loading, `incidentctl config` and the docs read."""

    # Database
    database_url: str = setting(
        "INCIDENTCTL_DATABASE_URL", "", str,
        "SQLAlchemy URL of the database; overrides DB_* (e.g. mysql+pymysql://user:pw@host/db).",
        secret=True)
    db_host: str = setting("DB_HOST", "", str, "MySQL/MariaDB host; setting it selects MySQL.")
    db_port: int = setting("DB_PORT", 3306, int, "MySQL/MariaDB port.")
    db_user: str = setting("DB_USER", "root", str, "MySQL/MariaDB user.")
    db_password: str = setting("DB_PASSWORD", "", str, "MySQL/MariaDB password.", secret=True)
    db_name: str = setting("DB_NAME", "incidentctl", str, "MySQL/MariaDB database name.")
    sqlite_path: str = setting(
        "INCIDENTCTL_SQLITE_PATH", "", str,
        "SQLite file used when no MySQL is configured "
        "(default: $XDG_DATA_HOME/incidentctl/incidentctl.db, i.e. ~/.local/share/incidentctl/incidentctl.db).")
    db_connect_timeout: float = setting(
        "INCIDENTCTL_DB_CONNECT_TIMEOUT", 3.0, _seconds,
        "Seconds to wait for a database connection before giving up (the receiver then answers 503).")
    # Receiver
    host: str = setting("INCIDENTCTL_HOST", "127.0.0.1", str, "Address `serve` listens on (0.0.0.0 for all).")
    port: int = setting("INCIDENTCTL_PORT", 9080, int, "Port `serve` listens on.")
    max_body_bytes: int = setting(
        "INCIDENTCTL_MAX_BODY_BYTES", 10 << 20, _size,
        "Largest webhook body accepted; larger ones get 413 (accepts 10MiB, 512KiB, bytes). `serve` lowers "
        "it, with a warning, to what the database can store (MySQL/MariaDB: `max_allowed_packet`).")
    write_timeout: float = setting(
        "INCIDENTCTL_WRITE_TIMEOUT", 5.0, _seconds,
        "Longest a webhook waits in the write queue; past it the receiver answers 503 without storing it. "
        "Also how long it waits to learn whether a commit whose answer the connection lost went through.")
    auth_bearer_token: str = setting(
        "INCIDENTCTL_AUTH_BEARER_TOKEN", "", str,
        "When set, webhooks must send `Authorization: Bearer <token>`.", secret=True)
    auth_basic_user: str = setting(
        "INCIDENTCTL_AUTH_BASIC_USER", "", str,
        "When set (with the password), webhooks must send HTTP basic auth.")
    auth_basic_password: str = setting(
        "INCIDENTCTL_AUTH_BASIC_PASSWORD", "", str,
        "Password for HTTP basic auth.", secret=True)
    hmac_secret: str = setting(
        "INCIDENTCTL_HMAC_SECRET", "", str,
        "When set, webhooks must carry Grafana's HMAC-SHA256 signature of the body.", secret=True)
    hmac_signature_header: str = setting(
        "INCIDENTCTL_HMAC_SIGNATURE_HEADER", "X-Grafana-Alerting-Signature", str,
        "Header holding the HMAC signature (Grafana's default name).")
    hmac_timestamp_header: str = setting(
        "INCIDENTCTL_HMAC_TIMESTAMP_HEADER", "", str,
        "Header holding the signing timestamp, when Grafana is configured to send one "
        "(then `<ts>:<body>` is signed).")
    hmac_max_skew: float = setting(
        "INCIDENTCTL_HMAC_MAX_SKEW", 300.0, _seconds,
        "Oldest (or furthest in the future) a signed timestamp may be.")
    # Processing
    group_by: tuple[str, ...] = setting(
        "INCIDENTCTL_GROUP_BY", ("alertname", "cluster", "namespace", "service"), _csv,
        "Labels whose values form the incident fingerprint; `fingerprint` alone means one incident "
        "per alert series.")
    reopen_window: float = setting(
        "INCIDENTCTL_REOPEN_WINDOW", 1800.0, _seconds,
        "A firing alert within this long after its incident resolved reopens it (a flap).")
    batch_size: int = setting(
        "INCIDENTCTL_BATCH_SIZE", 1000, int,
        "Raw rows claimed and applied per transaction by `process`.")
    lease_ttl: float = setting(
        "INCIDENTCTL_LEASE_TTL", 15.0, _seconds,
        "How long the applier lease (`process`, `rebuild`, `replay --process`) lasts without renewal: a "
        "standby worker on any host or node takes over this long after the holder died. Hosts' clocks "
        "must agree to well within it.")
    lease_wait: float = setting(
        "INCIDENTCTL_LEASE_WAIT", 60.0, _seconds,
        "How long `process`, `rebuild` and `replay --process` wait for the applier lease another worker "
        "holds before giving up (exit 1); `run` does not wait: it stands by until its next turn.")
    # Related incidents (docs/REPORTS.md)
    related_window: float = setting(
        "INCIDENTCTL_RELATED_WINDOW", 300.0, _seconds,
        "Incidents that open at most this far apart may be related (`related`, `show`), and new ones "
        "that open within it in one place form a burst in the digest.")
    related_labels: tuple[str, ...] = setting(
        "INCIDENTCTL_RELATED_LABELS", ("cluster", "namespace", "service"), _csv,
        "Topology labels, widest first: incidents sharing their values are in the same place.")
    related_history: float = setting(
        "INCIDENTCTL_RELATED_HISTORY", 2592000.0, _seconds,
        "How far back `related` counts how often two alertnames opened together, and the digest how "
        "often an alertname fired first in a burst.")
    burst_min_incidents: int = setting(
        "INCIDENTCTL_BURST_MIN_INCIDENTS", 5, int,
        "New incidents in one place within `related_window` that the digest groups as a burst; 0 turns "
        "grouping off.")
    # Slack
    slack_webhook_url: str = setting(
        "SLACK_WEBHOOK_URL", "", str,
        "Slack incoming webhook of the default route.", secret=True)
    slack_timeout: float = setting("INCIDENTCTL_SLACK_TIMEOUT", 10.0, _seconds, "Timeout of one request to Slack.")
    slack_bot_token: str = setting(
        "SLACK_BOT_TOKEN", "", _slack_bot_token,
        "Bot User OAuth Token (`xoxb-…`) of the incidentctl Slack app (docs/SLACK.md, Slack app).", secret=True)
    slack_signing_secret: str = setting(
        "SLACK_SIGNING_SECRET", "", _slack_signing_secret,
        "Signing Secret of the incidentctl Slack app, to verify that button clicks come from Slack.", secret=True)
    slack_channel: str = setting(
        "SLACK_CHANNEL", "", slack_channel_id,
        "Slack channel ID (`C…`) of the default route, for the Slack app's bot; routes set their own `channel`.")
    slack_allowed_channels: tuple[str, ...] = setting(
        "INCIDENTCTL_SLACK_ALLOWED_CHANNELS", (), _csv,
        "Slack channel IDs whose buttons may act on incidents (comma-separated); empty: any channel. Other "
        "clicks are refused and the person told why.")
    slack_allowed_users: tuple[str, ...] = setting(
        "INCIDENTCTL_SLACK_ALLOWED_USERS", (), _csv,
        "Slack user IDs (`U…`) and user-group IDs (`S…`, looked up with the bot token; scope usergroups:read) "
        "who may act on incidents from Slack; empty: anyone in the channel.")
    slack_usergroup_ttl: float = setting(
        "INCIDENTCTL_SLACK_USERGROUP_TTL", 300.0, _seconds,
        "How long a Slack user group's members, once looked up, are trusted before Slack is asked again.")
    api_allowed_tokens: tuple[str, ...] = setting(
        "INCIDENTCTL_API_ALLOWED_TOKENS", (), _csv,
        "Names of the API tokens whose actions are applied (`incidentctl token list`); empty: every live token.")
    slack_api_url: str = setting(
        "INCIDENTCTL_SLACK_API_URL", "https://slack.com/api/", str,
        "Base URL of Slack's Web API (a proxy, or a test double).")
    slack_update_window: float = setting(
        "INCIDENTCTL_SLACK_UPDATE_WINDOW", 86400.0, _seconds,
        "With a bot token: messages posted within this long are kept current in place (chat.update, "
        "thread replies) when an incident they show changes.")
    slack_sync_interval: float = setting(
        "INCIDENTCTL_SLACK_SYNC_INTERVAL", 3.0, _seconds,
        "How often `run` brings the bot's messages up to date and sends reminders (with a bot token).")
    slack_oncall: str = setting(
        "SLACK_ONCALL", "", slack_handle,
        "Default route: the on-call handle reminders mention (`<@U…>` or `<!subteam^S…>`); routes set `oncall`.")
    remind_after: float = setting(
        "INCIDENTCTL_REMIND_AFTER", 900.0, _seconds,
        "With a bot token: first reminder of an unacknowledged incident this long after it opened.")
    remind_every: float = setting(
        "INCIDENTCTL_REMIND_EVERY", 900.0, _seconds,
        "Time between reminders of an incident still unacknowledged.")
    remind_max: int = setting(
        "INCIDENTCTL_REMIND_MAX", 3, int,
        "Reminders per incident at most (0: none); then one message to the route's escalation route.")
    remind_severities: tuple[str, ...] = setting(
        "INCIDENTCTL_REMIND_SEVERITIES", ("critical",), _severity_names,
        "Severities whose unacknowledged incidents get reminders (comma-separated; empty: none).")
    escalate_to: str = setting(
        "INCIDENTCTL_ESCALATE_TO", "", str,
        "Default route: the route that hears once when reminders ran out; routes set `escalate_to`.")
    notify_after: float = setting(
        "INCIDENTCTL_NOTIFY_AFTER", 0.0, _optional_seconds,
        "Default route: announce an incident only once it has fired this long (e.g. 5m); 0 or empty: at "
        "once. [[routes]] take `notify_after` of their own. See docs/SLACK.md, thresholds.")
    notify_min_alerts: int = setting(
        "INCIDENTCTL_NOTIFY_MIN_ALERTS", 0, int,
        "Default route: … or once it holds this many distinct alerts; 0: off.")
    notify_min_severity: str = setting(
        "INCIDENTCTL_NOTIFY_MIN_SEVERITY", "", _severity_name,
        "Default route: … or once it reaches this severity (critical, error, warning, info); empty: off.")
    # Scheduler
    process_interval: float = setting(
        "INCIDENTCTL_PROCESS_INTERVAL", 15.0, _seconds,
        "How often `run` processes new alerts.")
    notify_interval: float = setting(
        "INCIDENTCTL_NOTIFY_INTERVAL", 30.0, _seconds,
        "How often `run` sends the Slack digest.")
    actions_interval: float = setting(
        "INCIDENTCTL_ACTIONS_INTERVAL", 3.0, _seconds,
        "How often `run` applies people's actions from Slack and the REST API (the action inbox).")
    # Retention
    purge_older_than: float = setting(
        "INCIDENTCTL_PURGE_OLDER_THAN", 0.0, _optional_seconds,
        "When set (e.g. 90d), `run` deletes processed raw webhook rows older than this once a day, and "
        "`purge` uses it when --older-than is not given; empty or 0 keeps everything.")
    log_level: str = setting("INCIDENTCTL_LOG_LEVEL", "INFO", str, "Log level (DEBUG, INFO, WARNING, ERROR).")
    # People
    display_timezone: str = setting(
        "INCIDENTCTL_DISPLAY_TIMEZONE", "UTC", zone_name,
        "Time zone (IANA name, e.g. Europe/Berlin) of the times tables show, and of an ISO time typed "
        "without an offset; `--tz` overrides it per command. Storage and JSON/CSV output stay UTC.")

    sources: Mapping[str, str] = field(default_factory=dict, repr=False)  # setting name → where its value came from
    extra: Mapping[str, Any] = field(default_factory=dict)  # non-scalar file sections, e.g. [[routes]]
    config_file: str | None = None

    def __init__(self, values: Mapping[str, Any], sources: Mapping[str, str] | None = None,
                 extra: Mapping[str, Any] | None = None, config_file: str | None = None) -> None:
        """Settings from {name: value}, a name left out having its default; raises ConfigError
        for a name that is no setting."""
        unknown = set(values) - set(SETTINGS_BY_NAME)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        for s in SETTINGS:
            object.__setattr__(self, s.name, values.get(s.name, s.default))
        object.__setattr__(self, "sources", dict(sources or {}))
        object.__setattr__(self, "extra", dict(extra or {}))
        object.__setattr__(self, "config_file", config_file)

    @property
    def values(self) -> dict[str, Any]:
        """{name: value} of every setting."""
        return {s.name: getattr(self, s.name) for s in SETTINGS}

    def replace(self, **changes: Any) -> Settings:
        """These settings with some values changed (their source: "override"); raises ConfigError."""
        sources = {**self.sources, **{k: "override" for k in changes}}
        return Settings({**self.values, **changes}, sources, self.extra, self.config_file)

    def masked(self) -> dict[str, Any]:
        """Settings for display, secrets masked."""
        values = self.values
        return {s.name: mask_secret(values[s.name]) if s.secret else values[s.name] for s in SETTINGS}


SETTINGS: tuple[Setting, ...] = tuple(Setting(f.name, default=f.default, **f.metadata["setting"])
                                      for f in fields(Settings) if "setting" in f.metadata)
SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
CONFIG_FILE_ENV = "INCIDENTCTL_CONFIG"


def mask_secret(value: Any) -> str:
    """Shows that a secret is set, and its length, never a character of it ("" when unset)."""
    if not value:
        return ""
    return f"set ({len(str(value))} chars)"


def load_settings(environ: Mapping[str, str] | None = None, config_file: str | Path | None = None) -> Settings:
    """Reads settings from the config file and the environment; raises ConfigError."""
    env = os.environ if environ is None else environ
    path = config_file or env.get(CONFIG_FILE_ENV)
    file_values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if path:
        file_values, extra = _read_file(Path(path))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for s in SETTINGS:
        if s.env in env and env[s.env] != "":
            values[s.name] = _parse(s, env[s.env], f"environment variable {s.env}")
            sources[s.name] = f"env {s.env}"
        elif s.name in file_values:
            raw = file_values[s.name]
            values[s.name] = _coerce_file_value(s, raw, str(path))
            sources[s.name] = f"file {path}"
        else:
            values[s.name] = s.default
            sources[s.name] = "default"
    return Settings(values, sources, extra, str(path) if path else None)


def _parse(s: Setting, raw: str, where: str) -> Any:
    try:
        return s.parse(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: invalid value for {s.name}: {exc}") from None


def _coerce_file_value(s: Setting, raw: Any, where: str) -> Any:
    if isinstance(raw, list) and isinstance(s.default, tuple):
        return tuple(str(x) for x in raw)
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and isinstance(s.default, (int, float)):
        return type(s.default)(raw)
    if isinstance(raw, bool) and isinstance(s.default, bool):
        return raw
    return _parse(s, str(raw), where)


def _read_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    scalars = {k: v for k, v in data.items() if not isinstance(v, (dict, list)) or k in SETTINGS_BY_NAME}
    extra = {k: v for k, v in data.items() if k not in scalars}
    unknown = set(scalars) - set(SETTINGS_BY_NAME)
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s): {', '.join(sorted(unknown))}")
    return scalars, extra


def settings_markdown() -> str:
    """The settings table as docs/CONFIGURATION.md shows it (kept in sync by a test)."""
    lines = ["| setting (TOML key) | environment variable | default | what it does |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = ", ".join(s.default) if isinstance(s.default, tuple) else s.default
        default = f"`{default}`" if default not in ("", None) else "(empty)"
        secret = " **Secret**: shown only as set, with its length." if s.secret else ""
        lines.append(f"| `{s.name}` | `{s.env}` | {default} | {s.help}{secret} |")
    return "\n".join(lines) + "\n"
