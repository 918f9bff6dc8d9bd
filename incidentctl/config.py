"""Settings: one declarative table, read once into a frozen object.

Every setting is declared once in SETTINGS (name, environment variable, default, parser, help).
That table drives loading, validation, `incidentctl config` and docs/CONFIGURATION.md.
Precedence: environment variable > config file (TOML) > default. Nothing else in the code reads
os.environ for configuration.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from incidentctl.durations import parse_duration
from incidentctl.errors import IncidentctlError


class ConfigError(IncidentctlError):
    """A setting has a value that cannot be used."""

    exit_code = 2


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _seconds(raw: str) -> float:
    return parse_duration(raw).total_seconds()


def _optional_seconds(raw: str) -> float:
    """A duration in seconds; empty, `off` or 0 mean off (0.0)."""
    if raw.strip().lower() in ("", "off", "0"):
        return 0.0
    return _seconds(raw)


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


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    # Database
    Setting("database_url", "INCIDENTCTL_DATABASE_URL", "", str,
            "SQLAlchemy URL of the database; overrides DB_* (e.g. mysql+pymysql://user:pw@host/db).",
            secret=True),
    Setting("db_host", "DB_HOST", "", str, "MySQL/MariaDB host; setting it selects MySQL."),
    Setting("db_port", "DB_PORT", 3306, int, "MySQL/MariaDB port."),
    Setting("db_user", "DB_USER", "root", str, "MySQL/MariaDB user."),
    Setting("db_password", "DB_PASSWORD", "", str, "MySQL/MariaDB password.", secret=True),
    Setting("db_name", "DB_NAME", "incidentctl", str, "MySQL/MariaDB database name."),
    Setting("sqlite_path", "INCIDENTCTL_SQLITE_PATH", "", str,
            "SQLite file used when no MySQL is configured "
            "(default: $XDG_DATA_HOME/incidentctl/incidentctl.db, i.e. ~/.local/share/incidentctl/incidentctl.db)."),
    Setting("db_connect_timeout", "INCIDENTCTL_DB_CONNECT_TIMEOUT", 3.0, _seconds,
            "Seconds to wait for a database connection before giving up (the receiver then answers 503)."),
    # Receiver
    Setting("host", "INCIDENTCTL_HOST", "127.0.0.1", str, "Address `serve` listens on (0.0.0.0 for all)."),
    Setting("port", "INCIDENTCTL_PORT", 9080, int, "Port `serve` listens on."),
    Setting("max_body_bytes", "INCIDENTCTL_MAX_BODY_BYTES", 10 << 20, _size,
            "Largest webhook body accepted; larger ones get 413 (accepts 10MiB, 512KiB, bytes). `serve` lowers "
            "it, with a warning, to what the database can store (MySQL/MariaDB: `max_allowed_packet`)."),
    Setting("write_timeout", "INCIDENTCTL_WRITE_TIMEOUT", 5.0, _seconds,
            "Longest a webhook waits in the write queue; past it the receiver answers 503 without storing it."),
    Setting("auth_bearer_token", "INCIDENTCTL_AUTH_BEARER_TOKEN", "", str,
            "When set, webhooks must send `Authorization: Bearer <token>`.", secret=True),
    Setting("auth_basic_user", "INCIDENTCTL_AUTH_BASIC_USER", "", str,
            "When set (with the password), webhooks must send HTTP basic auth."),
    Setting("auth_basic_password", "INCIDENTCTL_AUTH_BASIC_PASSWORD", "", str,
            "Password for HTTP basic auth.", secret=True),
    Setting("hmac_secret", "INCIDENTCTL_HMAC_SECRET", "", str,
            "When set, webhooks must carry Grafana's HMAC-SHA256 signature of the body.", secret=True),
    Setting("hmac_signature_header", "INCIDENTCTL_HMAC_SIGNATURE_HEADER", "X-Grafana-Alerting-Signature", str,
            "Header holding the HMAC signature (Grafana's default name)."),
    Setting("hmac_timestamp_header", "INCIDENTCTL_HMAC_TIMESTAMP_HEADER", "", str,
            "Header holding the signing timestamp, when Grafana is configured to send one "
            "(then `<ts>:<body>` is signed)."),
    Setting("hmac_max_skew", "INCIDENTCTL_HMAC_MAX_SKEW", 300.0, _seconds,
            "Oldest (or furthest in the future) a signed timestamp may be."),
    # Processing
    Setting("group_by", "INCIDENTCTL_GROUP_BY", ("alertname", "cluster", "namespace", "service"), _csv,
            "Labels whose values form the incident fingerprint; `fingerprint` alone means one incident "
            "per alert series."),
    Setting("reopen_window", "INCIDENTCTL_REOPEN_WINDOW", 1800.0, _seconds,
            "A firing alert within this long after its incident resolved reopens it (a flap)."),
    Setting("batch_size", "INCIDENTCTL_BATCH_SIZE", 1000, int,
            "Raw rows claimed and applied per transaction by `process`."),
    # Slack
    Setting("slack_webhook_url", "SLACK_WEBHOOK_URL", "", str,
            "Slack incoming webhook of the default route.", secret=True),
    Setting("slack_timeout", "INCIDENTCTL_SLACK_TIMEOUT", 10.0, _seconds,
            "Timeout of one request to Slack."),
    Setting("notify_after", "INCIDENTCTL_NOTIFY_AFTER", 0.0, _optional_seconds,
            "Default route: announce an incident only once it has fired this long (e.g. 5m); 0 or empty: at "
            "once. [[routes]] take `notify_after` of their own. See docs/SLACK.md, thresholds."),
    Setting("notify_min_alerts", "INCIDENTCTL_NOTIFY_MIN_ALERTS", 0, int,
            "Default route: … or once it holds this many distinct alerts; 0: off."),
    Setting("notify_min_severity", "INCIDENTCTL_NOTIFY_MIN_SEVERITY", "", _severity_name,
            "Default route: … or once it reaches this severity (critical, error, warning, info); empty: off."),
    # Scheduler
    Setting("process_interval", "INCIDENTCTL_PROCESS_INTERVAL", 15.0, _seconds,
            "How often `run` processes new alerts."),
    Setting("notify_interval", "INCIDENTCTL_NOTIFY_INTERVAL", 30.0, _seconds,
            "How often `run` sends the Slack digest."),
    # Retention
    Setting("purge_older_than", "INCIDENTCTL_PURGE_OLDER_THAN", 0.0, _optional_seconds,
            "When set (e.g. 90d), `run` deletes processed raw webhook rows older than this once a day, and "
            "`purge` uses it when --older-than is not given; empty or 0 keeps everything."),
    Setting("log_level", "INCIDENTCTL_LOG_LEVEL", "INFO", str, "Log level (DEBUG, INFO, WARNING, ERROR)."),
)

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
CONFIG_FILE_ENV = "INCIDENTCTL_CONFIG"


@dataclass(frozen=True)
class Settings:
    """The loaded configuration; attribute names are SETTINGS names."""

    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # non-scalar file sections, e.g. [[routes]]
    config_file: str | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **changes: Any) -> "Settings":
        unknown = set(changes) - set(SETTINGS_BY_NAME)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values = {**self.values, **changes}
        sources = {**self.sources, **{k: "override" for k in changes}}
        return Settings(values, sources, self.extra, self.config_file)

    def masked(self) -> dict[str, Any]:
        """Settings for display, secrets masked."""
        return {s.name: mask_secret(self.values[s.name]) if s.secret else self.values[s.name] for s in SETTINGS}


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
