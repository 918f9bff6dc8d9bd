"""Routes from settings: the default from SLACK_WEBHOOK_URL, extra ones from [[routes]]."""

from __future__ import annotations

import pytest

from incidentctl.config import load_settings
from incidentctl.errors import ConfigError
from incidentctl.notify.routes import Route, load_routes, route_for

URL = "https://hooks.slack.com/services/T/B/SECRET"


def settings(tmp_path, toml: str, env: dict | None = None):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    return load_settings(environ=env or {}, config_file=path)


def test_routes_from_config(tmp_path):
    s = settings(tmp_path, f'''
[[routes]]
name = "oncall"
webhook_url = "{URL}1"
severity = ["critical"]

[[routes]]
name = "eu"
webhook_url = "{URL}2"
match = {{ cluster = "eu" }}
''', {"SLACK_WEBHOOK_URL": URL})
    routes = load_routes(s)
    assert [r.name for r in routes] == ["oncall", "eu", "default"]
    assert routes[0].describe() == {"name": "oncall", "webhook": "https://hooks.slack.com/…(44 chars)",
                                    "severity": ["critical"], "match": {}}


@pytest.mark.parametrize("severity, labels, expected", [
    ("critical", {"cluster": "eu"}, "oncall"),   # first matching route wins
    ("warning", {"cluster": "eu"}, "eu"),         # label matcher
    ("warning", {"cluster": "us"}, "default"),    # nothing else matches
])
def test_route_for(severity, labels, expected):
    routes = [Route("oncall", URL, frozenset({"critical"})), Route("eu", URL, match={"cluster": "eu"}),
              Route("default", URL)]
    assert route_for(routes, severity, labels).name == expected


def test_no_default_no_match():
    assert route_for([Route("oncall", URL, frozenset({"critical"}))], "info", {}) is None


def test_no_slack_at_all(tmp_path):
    assert load_routes(load_settings(environ={})) == []


@pytest.mark.parametrize("toml, message", [
    ('[[routes]]\nname = "x"\n', "webhook_url"),                                 # URL missing
    (f'[[routes]]\nname = "bad name!"\nwebhook_url = "{URL}"\n', "name"),         # bad name
    (f'[[routes]]\nname = "default"\nwebhook_url = "{URL}"\n', "unique"),         # reserved name
    (f'[[routes]]\nname = "x"\nwebhook_url = "{URL}"\nchanel = "C0A"\n', "unknown key"),  # typo'd key
    (f'[[routes]]\nname = "x"\nwebhook_url = "{URL}"\nchannel = "#alerts"\n', "not a Slack channel ID"),  # a name
    (f'[[routes]]\nname = "x"\nwebhook_url = "{URL}"\nchannel = "c0alerts"\n', "channel ID like C0123ABCD"),  # lower
    (f'[[routes]]\nname = "x"\nwebhook_url = "{URL}"\nchannel = 12\n', "must be a string"),  # not text
])
def test_bad_routes(tmp_path, toml, message):
    with pytest.raises(ConfigError, match=message):
        load_routes(settings(tmp_path, toml))


def test_a_route_names_its_channel_and_slack_channel_is_the_defaults(tmp_path):
    s = settings(tmp_path, f'''
[[routes]]
name = "oncall"
webhook_url = "{URL}1"
channel = " C0ONCALL "
''', {"SLACK_WEBHOOK_URL": URL, "SLACK_CHANNEL": "C0ALERTS"})
    assert [(r.name, r.channel) for r in load_routes(s)] == [("oncall", "C0ONCALL"), ("default", "C0ALERTS")]


def test_a_route_without_channel_has_none(tmp_path):
    s = settings(tmp_path, f'[[routes]]\nname = "x"\nwebhook_url = "{URL}"\n')
    assert load_routes(s)[0].channel == ""


def test_slack_channel_setting_is_checked():
    with pytest.raises(ConfigError, match="SLACK_CHANNEL.*not a Slack channel ID"):
        load_settings(environ={"SLACK_CHANNEL": "#alerts"})
