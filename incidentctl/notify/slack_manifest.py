"""The Slack app manifest: what `incidentctl slack manifest` prints, to create the app from.

Fields and limits follow Slack's manifest schema (github.com/slackapi/manifest-schema,
schemas/manifest.schema.1.0.0.json; docs.slack.dev/reference/app-manifest): display name
1–35 characters, bot display name 1–80, interactivity Request URL http(s) up to 3,500.
Scopes are the fewest the app needs: `chat:write` covers chat.postMessage, chat.update and
chat.postEphemeral in channels the bot was invited to; chat.getPermalink and response_url need
none; `usergroups:read` lets the allow-list name Slack user groups (usergroups.users.list).
`chat:write.public` (posting to public channels without an invitation) is left out: it
lets the bot into every public channel, and an invitation is one command (`/invite @name`).
No events, no slash commands, no incoming webhooks; token rotation off (a rotating token
expires every 12 hours and needs a refresh flow incidentctl does not have).
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

ACTIONS_PATH = "/slack/actions"
BOT_SCOPES = ("chat:write", "usergroups:read")
DEFAULT_NAME = "incidentctl"
MAX_NAME = 35
MAX_URL = 3500


class InvalidAppSetting(ValueError):
    """A value given for the manifest does not fit Slack's manifest schema; `field` names it
    (url | name)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def actions_url(base: str) -> str:
    """`https://host[/prefix]` → `https://host[/prefix]/slack/actions` (given whole, kept).
    Raises InvalidAppSetting for anything but an absolute http(s) URL without query or fragment."""
    parts = urlsplit(base.strip())
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment
            or any(c.isspace() for c in base.strip())):
        raise InvalidAppSetting("url", f"not an absolute http(s) base URL: {base!r} "
                                       "(e.g. https://incidentctl.example.com)")
    path = parts.path.rstrip("/")
    if not path.endswith(ACTIONS_PATH):
        path += ACTIONS_PATH
    url = f"{parts.scheme}://{parts.netloc}{path}"
    if len(url) > MAX_URL:
        raise InvalidAppSetting("url", f"the Request URL is {len(url)} characters; Slack takes at most {MAX_URL}")
    return url


def build_manifest(base_url: str, name: str = DEFAULT_NAME) -> dict:
    """The manifest of an app named `name` whose buttons post to `<base_url>/slack/actions`.
    Raises InvalidAppSetting."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidAppSetting("name", f"the app name must be 1-{MAX_NAME} characters, not {len(name)}")
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "Incidents from Grafana and Alertmanager: acknowledge, resolve, silence.",
            "background_color": "#1d3c5a",
        },
        "features": {"bot_user": {"display_name": name, "always_online": True}},
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "interactivity": {"is_enabled": True, "request_url": actions_url(base_url)},
            "org_deploy_enabled": False,
            "socket_mode_enabled": False,
            "token_rotation_enabled": False,
        },
    }


def to_json(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def to_yaml(manifest: dict) -> str:
    """YAML as Slack's manifest editor shows it. Strings are written as JSON strings, which YAML
    reads as the same string whatever they hold (`#`, `:`, a leading `*`)."""
    return "".join(_yaml_lines(manifest, 0))


def _yaml_lines(value, indent: int):
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                yield f"{pad}{key}:\n"
                yield from _yaml_lines(item, indent + 1)
            else:
                yield f"{pad}{key}: {_scalar(item)}\n"
    else:
        for item in value:
            yield f"{pad}- {_scalar(item)}\n"


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(str(value), ensure_ascii=False)
