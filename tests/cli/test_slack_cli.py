"""`incidentctl slack manifest`: a manifest Slack's schema accepts, in YAML and JSON alike."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from incidentctl.notify.slack_manifest import InvalidAppSetting, actions_url, build_manifest, to_json, to_yaml
from tests.support.cli import invoke

# From Slack's manifest schema (github.com/slackapi/manifest-schema, manifest.schema.1.0.0.json):
# the keys each object may have, and the limits of the fields this app fills in.
ALLOWED = {
    "": {"$schema", "_metadata", "app_directory", "display_information", "features", "oauth_config", "settings",
         "functions", "workflows", "datastores", "outgoing_domains", "types", "external_auth_providers"},
    "_metadata": {"schema_version", "min_version", "major_version", "minor_version"},
    "display_information": {"name", "description", "background_color", "long_description"},
    "features": {"app_home", "bot_user", "functions", "shortcuts", "slash_commands", "workflow_steps",
                 "unfurl_domains", "assistant_view"},
    "features.bot_user": {"display_name", "always_online"},
    "oauth_config": {"redirect_urls", "scopes", "token_management_enabled", "pkce_enabled"},
    "oauth_config.scopes": {"user", "bot", "user_optional", "bot_optional"},
    "settings": {"allowed_ip_address_ranges", "event_subscriptions", "incoming_webhooks", "interactivity",
                 "org_deploy_enabled", "socket_mode_enabled", "is_hosted", "token_rotation_enabled", "siws_links",
                 "hermes_app_type", "function_runtime", "is_mcp_enabled"},
    "settings.interactivity": {"is_enabled", "request_url", "message_menu_options_url"},
}


def schema_problems(manifest: dict) -> list[str]:
    found = []

    def walk(obj, path):
        if path in ALLOWED:
            found.extend(f"{path or '(top)'}.{k}: not in the schema" for k in set(obj) - ALLOWED[path])
        for key, value in obj.items():
            if isinstance(value, dict):
                walk(value, f"{path}.{key}" if path else key)

    walk(manifest, "")
    info, bot = manifest["display_information"], manifest["features"]["bot_user"]
    interactivity = manifest["settings"]["interactivity"]
    checks = [
        (1 <= len(info["name"]) <= 35, "display_information.name 1..35"),
        (1 <= len(info.get("description", "x")) <= 140, "description 1..140"),
        (re.fullmatch(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?", info.get("background_color", "#fff")), "background_color"),
        (1 <= len(bot["display_name"]) <= 80, "bot_user.display_name 1..80"),
        (isinstance(interactivity["is_enabled"], bool), "interactivity.is_enabled required"),
        (re.match(r"https?://", interactivity["request_url"]) and len(interactivity["request_url"]) <= 3500,
         "interactivity.request_url"),
        (all(len(s) <= 50 for s in manifest["oauth_config"]["scopes"]["bot"]), "scopes ≤ 50 chars"),
        (isinstance(manifest["_metadata"]["major_version"], int), "_metadata.major_version"),
    ]
    return found + [why for ok, why in checks if not ok]


@pytest.mark.parametrize("base, url", [
    ("https://incidentctl.example.com", "https://incidentctl.example.com/slack/actions"),
    ("https://incidentctl.example.com/", "https://incidentctl.example.com/slack/actions"),       # trailing /
    ("https://ops.example.com/incidentctl", "https://ops.example.com/incidentctl/slack/actions"),  # a prefix
    ("https://x.example.com/slack/actions", "https://x.example.com/slack/actions"),              # given whole
    ("http://10.0.0.5:9080", "http://10.0.0.5:9080/slack/actions"),                              # a port
])
def test_actions_url(base, url):
    assert actions_url(base) == url


@pytest.mark.parametrize("base", ["", "incidentctl.example.com", "ftp://x.example.com", "https://",
                                  "https://x.example.com/?a=1", "https://x.example.com/#top",
                                  "https://x.example.com/a b", "https://x.example.com/" + "a" * 3500])
def test_a_bad_base_url_is_refused(base):
    with pytest.raises(InvalidAppSetting) as info:
        actions_url(base)
    assert info.value.field == "url"


@pytest.mark.parametrize("name", ["incidentctl", "On-call: prod #1 \"eu\"", "x" * 35])
def test_manifest_fits_slacks_schema_and_yaml_equals_json(name):
    manifest = build_manifest("https://incidentctl.example.com", name)
    assert schema_problems(manifest) == []
    assert yaml.safe_load(to_yaml(manifest)) == json.loads(to_json(manifest)) == manifest
    assert manifest["oauth_config"]["scopes"]["bot"] == ["chat:write", "usergroups:read"]
    assert manifest["display_information"]["name"] == manifest["features"]["bot_user"]["display_name"] == name


@pytest.mark.parametrize("fmt, parse", [("yaml", yaml.safe_load), ("json", json.loads)])
def test_slack_manifest_prints_it(fmt, parse):
    result = invoke("slack", "manifest", "--url", "https://incidentctl.example.com/",
                                 "--name", "oncall-bot", "--format", fmt)
    assert result.exit_code == 0, result.output
    manifest = parse(result.stdout)
    assert schema_problems(manifest) == []
    assert manifest["settings"]["interactivity"] == {"is_enabled": True,
                                                     "request_url": "https://incidentctl.example.com/slack/actions"}
    assert manifest["settings"]["token_rotation_enabled"] is False
    assert manifest["display_information"]["name"] == "oncall-bot"
    assert result.stderr == ""


def test_an_http_url_is_printed_with_a_warning():
    result = invoke("slack", "manifest", "--url", "http://10.0.0.5:9080")
    assert result.exit_code == 0
    request_url = yaml.safe_load(result.stdout)["settings"]["interactivity"]["request_url"]
    assert request_url == "http://10.0.0.5:9080/slack/actions"
    assert "warning" in result.stderr and "https" in result.stderr


@pytest.mark.parametrize("args, option", [
    (["--url", "ftp://x"], "'--url'"),                                  # not http(s)
    (["--url", "https://x.example.com", "--name", "n" * 36], "'--name'"),  # longer than Slack takes
    (["--url", "https://x.example.com", "--name", "  "], "'--name'"),      # empty
    ([], "--url"),                                                      # no URL at all
])
def test_bad_values_are_usage_errors_naming_the_option(args, option):
    result = invoke("slack", "manifest", *args)
    assert result.exit_code == 2 and option in result.output and "Traceback" not in result.output
