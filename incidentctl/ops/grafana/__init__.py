"""Grafana files shipped with incidentctl: the SRE dashboard and provisioning YAML.

The files live beside this module as package data, so `incidentctl grafana …` can print them
wherever incidentctl is installed. The dashboard's SQL uses only Grafana's MySQL macros, and
"now" is `UTC_TIMESTAMP(6)`, whatever the session's zone; tests/support/grafana_mysql.py expands
the macros as Grafana does, so every panel's query runs on MariaDB in the tests.
"""

from __future__ import annotations

import json
from importlib.resources import files
from urllib.parse import urlsplit

DASHBOARD = "dashboard.json"
DATASOURCE = "datasource.yaml"
CONTACT_POINT = "contact-point.yaml"
DASHBOARD_PROVIDER = "dashboards.yaml"
DEFAULT_WEBHOOK_URL = "http://incidentctl:9080/webhook/grafana"


class InvalidWebhookUrl(ValueError):
    """The URL given for the contact point is not an absolute http(s) URL."""


def read(name: str) -> str:
    """The text of one shipped file (one of the names above)."""
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def dashboard() -> dict:
    """The SRE dashboard as Grafana's dashboard JSON model."""
    return json.loads(read(DASHBOARD))


def contact_point(url: str | None = None) -> str:
    """The contact-point provisioning YAML, sending to `url` (default: the in-cluster service).
    Raises InvalidWebhookUrl."""
    text = read(CONTACT_POINT)
    if url is None:
        return text
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise InvalidWebhookUrl(f"not an absolute http(s) URL: {url!r} (e.g. https://incidentctl.example.com/webhook/grafana)")
    # A JSON string is a valid YAML scalar, whatever the URL contains (`#`, `:`).
    return text.replace(f"url: {DEFAULT_WEBHOOK_URL}", f"url: {json.dumps(url)}", 1)
