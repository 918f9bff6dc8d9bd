"""`show ID --raw` and `export --incident ID`: the raw requests an incident was made from, and a
replay of them rebuilding the incident on an empty database."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from incidentctl.cli.output import printable_body
from tests.support import T0
from tests.support.cli import invoke, run_cli
from tests.support.processing import snapshot, store

GROUP = {"alertname": "Latency", "cluster": "eu1", "namespace": "shop", "service": "api"}


def alert(instance: str, status: str = "firing", severity: str = "warning", group=GROUP, ends=None,
          starts="2026-01-05T09:00:00Z") -> dict:
    return {"status": status, "labels": {**group, "instance": instance, "severity": severity},
            "annotations": {"summary": f"latency on {instance}"}, "startsAt": starts,
            "endsAt": ends or "0001-01-01T00:00:00Z"}


def body(*alerts: dict) -> bytes:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return json.dumps({"version": "4", "status": status, "alerts": list(alerts)}).encode()


def story() -> list[tuple[str, bytes]]:
    """(name, body) a minute apart: incident Latency with repeats, a second series, an
    escalation and an auto-resolve, interleaved with another incident; then Latency again
    after the reopen window, a new incident."""
    disk = {**GROUP, "alertname": "DiskFull"}
    return [
        ("opens", body(alert("a"))),
        ("other", body(alert("x", group=disk))),
        ("repeat", body(alert("a"))),
        ("second series, escalates", body(alert("a"), alert("b", severity="critical"))),
        ("other repeat", body(alert("x", group=disk))),
        # a repeat sent as UTF-16: valid JSON, not UTF-8 text
        ("repeat utf-16", json.dumps(json.loads(body(alert("a"))), ensure_ascii=False).encode("utf-16")),
        ("resolves", body(alert("a", "resolved", ends="2026-01-05T09:06:00Z"),
                          alert("b", "resolved", severity="critical", ends="2026-01-05T09:06:00Z"))),
    ]


@pytest.fixture
def incident(engine, db_url):
    """Stores and processes the story; returns (env, the Latency incident's id, raw ids by name)."""
    received = [(T0 + timedelta(minutes=n), b) for n, (_, b) in enumerate(story())]
    ids = store(engine, received)
    # fires again after the reopen window: a new incident
    later = store(engine, [(T0 + timedelta(hours=2), body(alert("a", starts="2026-01-05T11:00:00Z")))])
    env = {"INCIDENTCTL_DATABASE_URL": db_url}
    assert invoke("process", env=env).exit_code == 0
    listed = json.loads(invoke("list", "--status", "all", "--alertname", "Latency", "-o", "json", env=env).stdout)
    assert len(listed) == 2  # the one after the window is another incident
    (first,) = [i for i in listed if i["status"] == "resolved"]
    assert first["severity"] == "critical" and first["alert_count"] == 7  # alerts in its 5 requests
    return env, first["id"], {**dict(zip([name for name, _ in story()], ids, strict=True)), "later": later[0]}


def test_show_raw_lists_the_requests_the_incident_was_made_from(incident):
    env, incident_id, raw = incident
    result = invoke("show", str(incident_id), "--raw", "-o", "json", env=env)
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    # every row that touched it, the repeats included; not the other incident's, not the later one's
    assert [r["id"] for r in records] == [raw[n] for n in ("opens", "repeat", "second series, escalates",
                                                              "repeat utf-16", "resolves")]
    assert records[0]["received_at"] == "2026-01-05T09:00:00.000000Z" and records[0]["body"] == story()[0][1].decode()
    assert "body" not in records[3] and records[3]["body_base64"]  # not UTF-8: base64, as export writes it
    rows = invoke("show", str(incident_id), "--raw", "-o", "csv", env=env).stdout
    assert rows.startswith("id,received_at,source,remote_addr,user_agent,content_type,body_sha256,body,body_base64\n")


def test_show_raw_of_an_unknown_incident_is_not_found(incident):
    env, _, _ = incident
    result = invoke("show", "999999", "--raw", env=env)
    assert result.exit_code == 1 and "error: incident 999999 not found" in result.stderr


def test_export_incident_replays_into_the_same_incident(incident, engine, second_engine, tmp_path):
    env, incident_id, raw = incident
    path = tmp_path / "incident.jsonl"
    result = invoke("export", "--incident", str(incident_id), "-f", str(path), env=env)
    assert result.exit_code == 0, result.output
    assert "exported 5 request(s) of incident" in result.output
    target = second_engine("replayed")
    target_env = {"INCIDENTCTL_DATABASE_URL": target.url.render_as_string(hide_password=False)}
    replayed = invoke("replay", str(path), "--process", "-o", "json", env=target_env)
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["stored"] == 5
    source = snapshot(engine)
    (mine,) = [i for i in source["incidents"] if i["status"] == "resolved" and i["alertname"] == "Latency"]
    key = (mine["fingerprint"], mine["opened_at"].isoformat())
    expected = {"incidents": [mine], **{part: [x for x in source[part] if x[0] == key]
                                         for part in ("series", "series_labels", "events", "outbox")}}
    assert snapshot(target) == expected


def test_export_incident_refuses_a_time_window(incident):
    env, incident_id, _ = incident
    result = invoke("export", "--incident", str(incident_id), "--since", "1d", env=env)
    assert result.exit_code == 2 and "Error: Invalid value for '--incident'" in result.output


@pytest.mark.slow
def test_show_raw_table_through_the_console_script(incident, cli_env):
    _, incident_id, raw = incident
    run = run_cli("show", str(incident_id), "--raw", env=cli_env)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    headers = [line for line in lines if line.startswith("--- raw alert ")]
    assert len(headers) == 5 and run.stderr.strip() == f"incident {incident_id}: 5 raw alert(s)"
    assert headers[0] == f"--- raw alert {raw['opens']}, received 2026-01-05 09:00:00 UTC, source alertmanager, " \
                         f"{len(story()[0][1])} bytes"
    assert lines[1] == story()[0][1].decode()  # the body as stored
    assert lines[lines.index(headers[3]) + 1].startswith("\\xff\\xfe{\\x00")  # not UTF-8: escaped bytes


# (stored bytes, what a terminal gets)
BODIES = [
    (b'{"a": 1}', '{"a": 1}'),  # text as it is
    ('{"msg": "Überlast ✓"}'.encode(), '{"msg": "Überlast ✓"}'),  # UTF-8 text
    (b'{"a":\n\t1}\n', '{"a":\n\t1}\n'),  # newline and tab kept
    (b'\x1b[2Jgone', "\\x1b[2Jgone"),  # a control sequence cannot clear the screen
    (b"a\rb", "a\\x0db"),  # nor overwrite the line
    (b"\xff\xfe{", "\\xff\\xfe{"),  # not UTF-8: each byte escaped
    ("\u0085".encode(), "\\x85"),  # a C1 control, UTF-8 encoded
]


@pytest.mark.parametrize("stored,shown", BODIES)
def test_printable_body(stored, shown):
    assert printable_body(stored) == shown


def test_rows_purged_by_retention_are_named(incident, engine):
    from sqlalchemy import delete

    from incidentctl.db.schema import grafana_alerts

    env, incident_id, raw = incident
    with engine.begin() as conn:  # as `purge` does once the incident is resolved and old enough
        conn.execute(delete(grafana_alerts).where(grafana_alerts.c.id == raw["opens"]))
    result = invoke("show", str(incident_id), "--raw", "-o", "json", env=env)
    assert result.exit_code == 0
    assert f"1 raw alert(s) of its timeline were purged by retention: {raw['opens']}" in result.stderr
    assert [r["id"] for r in json.loads(result.stdout)][0] == raw["repeat"]
    exported = invoke("export", "--incident", str(incident_id), env=env)
    assert "1 request(s) of its timeline were purged" in exported.stderr


def test_export_incident_holds_the_actions_that_name_it_and_replay_applies_them(incident, engine, second_engine,
                                                                                 tmp_path):
    import requests

    from incidentctl.ingest.receiver.app import Receiver
    from incidentctl.ingest.tokens import add_token
    from incidentctl.notify.applier import apply_pending
    from incidentctl.notify.intent import AllowList
    from tests.support.asgi import call
    from tests.support.slack_web_fake import SlackInteractions

    env, incident_id, _ = incident
    listed = json.loads(invoke("list", "--status", "all", "--alertname", "DiskFull", "-o", "json", env=env).stdout)
    (disk,) = [i["id"] for i in listed]
    acted = T0 + timedelta(minutes=10)
    _, token = add_token(engine, "bob", created_by="admin", now=T0)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    receiver = Receiver(engine, max_body_bytes=256 * 1024, write_timeout=5.0, clock=lambda: acted,
                        slack_signing_secret="secret")
    receiver.start()
    try:
        for action in ({"action": "note", "text": "cache warmed"}, {"action": "ack"}):  # the ack: refused, resolved
            assert call(receiver, "POST", f"/api/v1/incidents/{incident_id}/actions", json.dumps(action).encode(),
                        headers).status == 202
        click = SlackInteractions("secret", clock=lambda: acted.timestamp()).raw(f"ic1:ack:{disk}", f"ic1:ack:{disk}")
        assert call(receiver, "POST", "/slack/actions", click.body, click.headers).status == 200  # another incident
    finally:
        receiver.stop()
    with requests.Session() as session:
        done = apply_pending(engine, allow=AllowList(), session=session, clock=lambda: acted)
    assert (done.applied, done.refused) == (2, 1)

    path = tmp_path / "incident.jsonl"
    result = invoke("export", "--incident", str(incident_id), "-f", str(path), env=env)

    assert result.exit_code == 0, result.output
    assert "exported 5 request(s) of incident" in result.output and "and 2 action(s) people took" in result.output
    records = [json.loads(line) for line in path.read_text().splitlines()]
    actions = [r for r in records if "door" in r]
    assert [(a["door"], a["incident_id"], a["state"], json.loads(a["body"])["action"]) for a in actions] == [
        ("api", incident_id, "applied", "note"), ("api", incident_id, "refused", "ack")]
    assert records[-2:] == actions  # received after the webhooks, written after them
    target = second_engine("replayed")
    target_env = {"INCIDENTCTL_DATABASE_URL": target.url.render_as_string(hide_password=False)}
    assert invoke("replay", str(path), "--process", env=target_env).exit_code == 0
    source = snapshot(engine)
    (mine,) = [i for i in source["incidents"] if i["status"] == "resolved" and i["alertname"] == "Latency"]
    key = (mine["fingerprint"], mine["opened_at"].isoformat())
    replayed = snapshot(target)
    (note,) = [e for e in source["events"] if e[0] == key and e[1] == "note"]
    assert [e for e in replayed["events"] if e[1] == "note"] == [note]  # applied where it happened, by bob
    assert replayed["outbox"] == [x for x in source["outbox"] if x[0] == key]  # the note's row too
