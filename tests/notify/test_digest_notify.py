"""The digest as Slack receives it: alerts processed, one incident acknowledged, then
`incidentctl notify` (the typer app) against the local Slack fake, on both databases."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.cli import invoke
from tests.support.processing import store
from tests.support.slack_fake import FakeSlack


@pytest.fixture(scope="module")
def slack():
    with FakeSlack() as fake:
        yield fake


def body(labels: dict, start: datetime) -> bytes:
    alert = {"status": "firing", "labels": labels, "annotations": {}, "startsAt": start.isoformat(),
             "endsAt": "0001-01-01T00:00:00Z"}
    return json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()


def test_notify_digest_identifies_orders_and_counts(db_url, engine, slack):
    now = datetime.now(timezone.utc)
    start = now - timedelta(minutes=20)
    store(engine, [
        # no cluster/namespace/service, no severity: a node exporter's host
        (start, body({"alertname": "HostDown", "instance": "db1:9100", "job": "node"}, start)),
        (start, body({"alertname": "HighLatency", "cluster": "eu1", "namespace": "shop", "service": "api",
                      "severity": "critical"}, start)),
        (start, body({"alertname": "DiskFull", "cluster": "eu1", "namespace": "db", "service": "pg",
                      "severity": "warning"}, start)),
    ])
    env = {"INCIDENTCTL_DATABASE_URL": db_url, "SLACK_WEBHOOK_URL": slack.url("ok"), "USER": "tester"}
    invoke("process", env=env, check=True)
    listed = {r["alertname"]: r["id"] for r in json.loads(invoke("list", "-o", "json", env=env, check=True).output)}
    invoke("ack", str(listed["DiskFull"]), "--by", "alice", env=env, check=True)  # before the digest goes out
    sent_before = len(slack.bodies("ok"))
    assert "sent 4 change(s)" in invoke("notify", env=env, check=True).output
    (message,) = slack.bodies("ok")[sent_before:]

    assert message["blocks"][0]["text"]["text"] == "incidentctl: 2 new · 1 acknowledged"
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    assert [s.split(" · ")[1] if not s.startswith("*") else s for s in sections] == [
        "*New (2)*", "*HighLatency (eu1/shop/api)*", "*HostDown*", "*Acknowledged (1)*", "*DiskFull (eu1/db/pg)*"]
    host_down, disk_full = sections[2], sections[4]
    assert host_down.startswith(":white_circle: *no severity* · *HostDown*")
    assert host_down.splitlines()[1].startswith("instance=db1:9100, job=node · open 20m")
    assert "opened → acknowledged" in disk_full and "acknowledged by alice" in disk_full
    everything = json.dumps(message, ensure_ascii=False)
    assert everything.count("firing") == everything.count("series firing") == 3  # no "opened: <title> firing"
    assert "NONE" not in json.dumps(message)
    assert f"opened: [no severity] HostDown — instance=db1:9100, job=node (#{listed['HostDown']})" in message["text"]
    assert "Open now: 1 critical, 1 warning, 1 without severity" in message["text"]
