"""`incidentctl config` shows that a secret is set, and its length, never a character of it."""

from __future__ import annotations

import json

import pytest

from incidentctl.config import mask_secret
from tests.support.cli import invoke

SECRETS = {  # values that share no 4 characters with anything else `config` prints
    "INCIDENTCTL_AUTH_BEARER_TOKEN": "Zq9xW7vK2pR0t5Jj3Yb",
    "INCIDENTCTL_AUTH_BASIC_PASSWORD": "Qw7Kq",
    "INCIDENTCTL_HMAC_SECRET": "Hm4cXy8ZuQ1oPfLz",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0001/B0002/Xk3Vn8Qr2Wz6Mb9",
    "DB_PASSWORD": "Db5Pw",
    "SLACK_BOT_TOKEN": "xoxb-Tk7Gq2Nd9Lw4Ps",
    "SLACK_SIGNING_SECRET": "Sg6Fe1Vh8Rc3Ua0Ei2",
}


@pytest.mark.parametrize("value, shown", [
    ("", ""),  # unset: nothing
    (None, ""),  # unset: nothing
    ("x", "set (1 chars)"),  # a short secret gives away nothing but its length
    ("a-much-longer-secret-value", "set (26 chars)"),  # no prefix, however long
])
def test_mask_secret(value, shown):
    assert mask_secret(value) == shown


def _pieces(secret: str) -> list[str]:
    """Every 4-character piece of a secret (its prefix, its end, anything in between)."""
    return [secret[i:i + 4] for i in range(len(secret) - 3)] or [secret]


@pytest.mark.parametrize("output", ["table", "json", "csv"])
def test_config_shows_no_character_of_a_secret(tmp_path, output):
    env = {"DB_HOST": "db.internal", "DB_USER": "incidentctl", "HOME": str(tmp_path), **SECRETS}
    result = invoke("config", "--output", output, env=env)
    assert result.exit_code == 0, result.output
    for name, secret in SECRETS.items():
        for piece in _pieces(secret.removeprefix("https://hooks.slack.com/services/")):
            assert piece not in result.stdout, (name, piece)
    assert "set (19 chars)" in result.stdout and "set (5 chars)" in result.stdout
    if output == "json":
        shown = {s["env"]: s["value"] for s in json.loads(result.stdout)["settings"]}
        assert {env: shown[env] for env in SECRETS} == {env: f"set ({len(v)} chars)" for env, v in SECRETS.items()}
        assert shown["INCIDENTCTL_DATABASE_URL"] == ""  # unset
        assert json.loads(result.stdout)["database"] == "mysql+pymysql://incidentctl:***@db.internal:3306/incidentctl?charset=utf8mb4"


@pytest.mark.parametrize("name, value, says", [
    ("SLACK_BOT_TOKEN", "xoxp-Us3rT0kenNotABot", "starts with xoxb-"),  # a user token, not the bot's
    ("SLACK_BOT_TOKEN", "xoxb-Tk7Gq2 Nd9Lw4Ps", "starts with xoxb-"),  # pasted with a space inside
    ("SLACK_SIGNING_SECRET", "Sg6Fe1 Vh8Rc3", "no spaces"),  # a broken copy
])
def test_a_bad_slack_secret_is_refused_without_repeating_it(tmp_path, name, value, says):
    result = invoke("config", env={"HOME": str(tmp_path), name: value})
    assert result.exit_code == 2 and says in result.output and name in result.output
    for piece in _pieces(value[5:]):
        assert piece not in result.output, piece


def test_slack_secrets_lose_the_whitespace_a_copy_brings(tmp_path):
    env = {"HOME": str(tmp_path), "SLACK_BOT_TOKEN": " xoxb-Tk7Gq2Nd9Lw4Ps\n", "SLACK_SIGNING_SECRET": "Sg6Fe1Vh8Rc3\n"}
    shown = {s["env"]: s["value"] for s in json.loads(
        invoke("config", "-o", "json", env=env).stdout)["settings"]}
    assert (shown["SLACK_BOT_TOKEN"], shown["SLACK_SIGNING_SECRET"]) == ("set (19 chars)", "set (12 chars)")
