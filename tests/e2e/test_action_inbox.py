"""People's actions through the real entry points, on SQLite and MariaDB: a running `incidentctl
serve` takes a signed Slack click and a REST call (a token made by `incidentctl token add`),
`incidentctl process` applies them, and a click that no longer applies gets its ephemeral answer
at the Slack fake's response_url."""

from __future__ import annotations

import json

import pytest
import requests

from tests.support import FIXTURES
from tests.support.cli import run_cli
from tests.support.servers import ServeProcess, serve_env
from tests.support.slack_web_fake import FakeSlackWeb, SlackInteractions

pytestmark = pytest.mark.slow

SECRET = "e2e-signing-secret"
FIRING = "grafana/grafana9_zulip_firing_single_valueString.json"


def test_slack_click_and_rest_call_applied_by_process(incidentctl_bin, cli_env, tmp_path):
    env = serve_env(cli_env, SLACK_SIGNING_SECRET=SECRET)
    token = run_cli("token", "add", "bob", env=env, check=True).stdout.strip()
    with FakeSlackWeb() as slack, ServeProcess(incidentctl_bin, env, tmp_path / "serve.log") as server:
        assert requests.post(server.url + "/webhook/grafana", data=(FIXTURES / FIRING).read_bytes(),
                             headers={"Content-Type": "application/json"}).status_code == 200
        run_cli("process", env=env, check=True)
        (incident,) = json.loads(run_cli("list", "-o", "json", env=env, check=True).stdout)
        iid = incident["id"]
        clicks = SlackInteractions(SECRET, server.url + "/slack/actions")
        answer = clicks.click(f"ic1:ack:{iid}", f"ic1:ack:{iid}", response_url=slack.response_url())
        assert (answer.status_code, answer.text) == (200, "")
        forged = SlackInteractions("not-the-secret", server.url + "/slack/actions")
        assert forged.click(f"ic1:resolve:{iid}", f"ic1:resolve:{iid}").status_code == 401
        done = json.loads(run_cli("process", "-o", "json", env=env, check=True).stdout)
        assert (done["actions_applied"], done["actions_refused"]) == (1, 0)

        # A second ack no longer applies: refused, and the person told.
        clicks.click(f"ic1:ack:{iid}", f"ic1:ack:{iid}", response_url=slack.response_url())
        rest = requests.post(f"{server.url}/api/v1/incidents/{iid}/actions", json={"action": "resolve"},
                             headers={"Authorization": f"Bearer {token}"})
        assert rest.status_code == 202
        done = json.loads(run_cli("process", "-o", "json", env=env, check=True).stdout)
        assert (done["actions_applied"], done["actions_refused"]) == (1, 1)
        (reply,) = slack.ephemeral
        assert "acknowledged" in reply["body"]["text"]
        status = requests.get(f"{server.url}/api/v1/actions/{rest.json()['action_id']}",
                              headers={"Authorization": f"Bearer {token}"}).json()
        assert status["state"] == "applied"

    shown = json.loads(run_cli("show", str(iid), "-o", "json", env=env, check=True).stdout)
    people = [(e["kind"], e["actor"], e["detail"]["via"]) for e in shown["events"] if e["actor"] != "incidentctl"]
    assert people == [("acknowledged", "alice", "slack"), ("resolved", "bob", "api")]
