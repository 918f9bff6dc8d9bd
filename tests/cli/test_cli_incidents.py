"""The incident commands: list filters and formats, show, transitions, errors; a few through the
real console script, the rest with typer's CliRunner."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest

from incidentctl.cli.incidents import StatusChoice
from incidentctl.incidents.model import IncidentStatus
from tests.support import ROOT, T0
from tests.support.cli import invoke, run_cli
from tests.support.processing import store, store_spaced


def am_body(alertname, cluster, namespace, service, severity="warning", status="firing", start="2026-01-05T09:00:00Z",
            end="0001-01-01T00:00:00Z", team="core"):
    alert = {"status": status, "labels": {"alertname": alertname, "cluster": cluster, "namespace": namespace,
                                          "service": service, "severity": severity, "team": team},
             "annotations": {"summary": f"{alertname} in {namespace}"}, "startsAt": start, "endsAt": end,
             "generatorURL": "http://prom/graph"}
    return json.dumps({"version": "4", "status": status, "alerts": [alert]}).encode()


@pytest.fixture
def seeded(db_url, engine):
    store_spaced(engine, [
        am_body("HighLatency", "eu1", "shop", "api", "critical"),
        am_body("DiskFull", "eu1", "db", "pg", "warning", team="data"),
        am_body("PodCrash", "us1", "shop", "web", "info"),
        am_body("Old", "us1", "legacy", "cron", "error", start="2026-01-01T09:00:00Z"),
    ])
    assert invoke("process", db=db_url).exit_code == 0
    return db_url


def listing(db_url, *args):
    result = invoke("list", "--output", "json", *args, db=db_url)
    assert result.exit_code == 0, result.output
    return [r["alertname"] for r in json.loads(result.output)]


def test_list_filters(seeded):
    assert listing(seeded) == ["PodCrash", "DiskFull", "HighLatency", "Old"]  # newest opened first
    assert listing(seeded, "--severity", "critical") == ["HighLatency"]
    assert listing(seeded, "--severity", "HIGH") == ["Old"]  # an alias of error, as in labels
    assert listing(seeded, "--cluster", "eu1") == ["DiskFull", "HighLatency"]
    assert listing(seeded, "--namespace", "shop", "--service", "web") == ["PodCrash"]
    assert listing(seeded, "--alertname", "Old") == ["Old"]
    assert listing(seeded, "--label", "team=data") == ["DiskFull"]
    assert listing(seeded, "--label", "team=core", "--label", "cluster=us1") == ["PodCrash", "Old"]
    assert listing(seeded, "--since", "2026-01-05T00:00:00Z") == ["PodCrash", "DiskFull", "HighLatency"]
    assert listing(seeded, "--limit", "1") == ["PodCrash"]


def test_list_status_filter_and_json_fields(seeded):
    rows = json.loads(invoke("list", "-o", "json", db=seeded).output)
    first = rows[0]
    for field in ("id", "status", "severity", "title", "fingerprint", "alertname", "cluster", "namespace", "service",
                  "opened_at", "acknowledged_at", "resolved_at", "alert_count", "reopen_count"):
        assert field in first
    assert first["opened_at"].endswith("Z")
    assert invoke("resolve", str(first["id"]), "--by", "alice", db=seeded).exit_code == 0
    assert "PodCrash" not in listing(seeded)
    assert listing(seeded, "--status", "resolved") == ["PodCrash"]
    assert len(listing(seeded, "--status", "all")) == 4
    assert invoke("ack", str(rows[1]["id"]), db=seeded).exit_code == 0
    assert listing(seeded, "--status", "acknowledged") == ["DiskFull"]
    assert json.loads(invoke("show", str(rows[1]["id"]), "-o", "json", db=seeded).output)["acknowledged_by"] == "tester"


def test_list_table_and_csv(seeded):
    table = invoke("list", db=seeded).output
    assert "HighLatency" in table and "critical" in table and "1/1" in table and "ago" in table
    rows = list(csv.DictReader(io.StringIO(invoke("list", "-o", "csv", db=seeded).output)))
    assert [r["alertname"] for r in rows] == ["PodCrash", "DiskFull", "HighLatency", "Old"]


def test_show_has_series_links_and_timeline(seeded):
    iid = json.loads(invoke("list", "--alertname", "HighLatency", "-o", "json", db=seeded).output)[0]["id"]
    assert invoke("note", str(iid), "looking at it", "--by", "dana", db=seeded).exit_code == 0
    shown = json.loads(invoke("show", str(iid), "--output", "json", db=seeded).output)
    [series] = shown["series"]
    assert series["labels"]["severity"] == "critical" and series["links"] == {"generator": "http://prom/graph"}
    assert len(series["alert_fingerprint"]) == 16
    assert [(e["kind"], e["actor"]) for e in shown["events"]] == [
        ("opened", "incidentctl"), ("alert_firing", "incidentctl"), ("note", "dana")]
    assert "alert series" in invoke("show", str(iid), db=seeded).output


def _pods_body(pods: range, status: str, at: str) -> bytes:
    """One Alertmanager notification of a crash-looping deployment: a pod per alert, one incident."""
    alerts = [{"status": status, "labels": {"alertname": "PodCrash", "cluster": "eu1", "namespace": "shop",
                                            "service": "web", "pod": f"web-{n}", "severity": "warning"},
               "annotations": {}, "startsAt": "2026-01-05T09:00:00Z",
               "endsAt": at if status == "resolved" else "0001-01-01T00:00:00Z"} for n in pods]
    return json.dumps({"version": "4", "status": status, "alerts": alerts}).encode()


def test_show_of_a_wide_incident_prints_a_screen_and_says_what_it_left_out(db_url, engine):
    # 30 pods fire, then 5 of them resolve: the table shows 20 series, firing first, and the count
    # of the rest; --series/--events choose; JSON has everything unless told.
    store_spaced(engine, [_pods_body(range(30), "firing", ""),
                          _pods_body(range(5), "resolved", "2026-01-05T09:10:00Z")])
    invoke("process", db=db_url, check=True)
    [iid] = [str(r["id"]) for r in json.loads(invoke("list", "-o", "json", db=db_url, check=True).output)]
    shown = json.loads(invoke("show", iid, "-o", "json", db=db_url, check=True).output)
    assert (len(shown["series"]), shown["series_count"], shown["series_firing"]) == (30, 30, 25)
    assert len(shown["events"]) == shown["event_count"] == 1 + 30 + 5  # opened, firing, resolved
    resolved = {s["alert_fingerprint"] for s in shown["series"] if s["status"] == "resolved"}

    output = invoke("show", iid, db=db_url, check=True).output
    assert "… 10 more series, not shown" in output and "earlier timeline events" not in output
    table = _series_table(output)
    assert sum(s["alert_fingerprint"] in table for s in shown["series"]) == 20
    assert not any(fp in table for fp in resolved)  # the firing come first
    output = invoke("show", iid, "--series", "0", "--events", "3", db=db_url, check=True).output
    assert all(s["alert_fingerprint"] in _series_table(output) for s in shown["series"])
    assert "more series" not in output and f"… {1 + 30 + 5 - 3} earlier timeline events, not shown" in output

    few = json.loads(invoke("show", iid, "-o", "json", "--series", "2", "--events", "1", db=db_url,
                            check=True).output)
    assert [s["status"] for s in few["series"]] == ["firing", "firing"] and few["series_count"] == 30
    assert [e["kind"] for e in few["events"]] == ["alert_resolved"] and few["event_count"] == 36
    assert invoke("show", iid, "--series", "-1", db=db_url).exit_code == 2  # a usage error, one line


def _series_table(output: str) -> str:
    """The series table of `show`'s output (the timeline below names series too)."""
    return output.split("alert series", 1)[1].split("timeline", 1)[0]


def test_bulk_ack_reports_each_id_and_fails_if_any_failed(seeded):
    ids = [r["id"] for r in json.loads(invoke("list", "-o", "json", db=seeded).output)]
    invoke("resolve", str(ids[0]), db=seeded)
    result = invoke("ack", str(ids[1]), str(ids[0]), "999999999", "-o", "json", db=seeded)
    assert result.exit_code == 1
    outcomes = {o["id"]: o for o in json.loads(result.output)}
    assert outcomes[ids[1]]["ok"] and outcomes[ids[1]]["status"] == "acknowledged"
    assert not outcomes[ids[0]]["ok"] and outcomes[ids[0]]["message"] == f"incident {ids[0]} is resolved: cannot ack it"
    assert outcomes[999999999]["message"] == "incident 999999999 not found"


def test_a_transition_cycle_prints_alike_in_every_format_and_reopen_leaves_the_row_as_before(seeded, engine):
    from sqlalchemy import select

    from incidentctl.db.schema import incidents
    iid = json.loads(invoke("list", "--alertname", "HighLatency", "-o", "json", db=seeded).output)[0]["id"]

    def row():
        with engine.connect() as conn:
            return dict(conn.execute(select(incidents).where(incidents.c.id == iid)).one()._mapping)

    before = row()
    assert invoke("ack", str(iid), "--by", "alice", db=seeded).output == f"incident {iid}: acknowledged\n"
    assert json.loads(invoke("resolve", str(iid), "--by", "bob", "-o", "json", db=seeded).output) == [
        {"id": iid, "ok": True, "status": "resolved", "message": f"incident {iid}: resolved"}]
    assert row()["active_key"] is None and row()["acknowledged_by"] == "alice"
    assert invoke("reopen", str(iid), "--by", "carol", "-o", "csv", db=seeded).output.splitlines() == [
        "id,ok,status,message", f"{iid},True,open,incident {iid}: open"]
    # Open again as it was before the ack: resolution and acknowledgement forgotten, one reopen more.
    assert row() == {**before, "reopen_count": before["reopen_count"] + 1}


@pytest.mark.parametrize("args, message", [
    (["list", "--since", "yesterday"], "not a duration or ISO time"),
    (["list", "--label", "team"], "not a label filter"),
    (["list", "--severity", "urgent"], "is not one of"),
    (["list", "--status", "closed"], "closed"),
])
def test_usage_errors_exit_2(db_url, args, message):
    result = invoke(*args, env={"INCIDENTCTL_DATABASE_URL": db_url})
    assert result.exit_code == 2
    assert message in result.output


def test_every_command_has_help_and_a_docs_section():
    docs = (ROOT / "docs" / "CLI.md").read_text()
    for command in ("process", "list", "show", "ack", "resolve", "reopen", "note"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and len(result.output) > 200, command
        assert f"## `incidentctl {command}`" in docs, command


@pytest.mark.slow
def test_end_to_end_through_the_console_script(engine, cli_env, fixture_bodies):
    env = {**cli_env, "COLUMNS": "200"}
    firing = fixture_bodies["grafana/grafana9_zulip_firing_3alerts_2rules.json"]
    resolved = fixture_bodies["grafana/grafana9_zulip_resolved_single.json"]
    single = fixture_bodies["grafana/grafana9_zulip_firing_single_valueString.json"]
    store(engine, [(T0, single), (T0 + timedelta(minutes=1), firing), (T0 + timedelta(minutes=2), b"oops"),
                   (T0 + timedelta(minutes=3), resolved)])
    done = run_cli("process", "--output", "json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"rows": 4, "alerts": 5, "opened": 2, "updated": 3, "reopened": 0,
                                       "resolved": 0, "ignored": 0, "errors": 1, "conflicts_retried": 0,
                                       "actions_applied": 0, "actions_refused": 0}
    listed = json.loads(run_cli("list", "--output", "json", env=env).stdout)
    assert sorted((r["alertname"], r["series_firing"], r["series_count"]) for r in listed) == [
        ("Second webhook test", 1, 1), ("Test alert", 2, 3)]
    test_alert = next(r for r in listed if r["alertname"] == "Test alert")
    shown = run_cli("show", str(test_alert["id"]), env=env)
    assert shown.returncode == 0 and "d8a21484c9c25a60" in shown.stdout and "alert_resolved" in shown.stdout
    line = run_cli("process", env=env)
    assert line.stdout.strip() == "processed 0 rows, 0 alerts, 0 opened, 0 updated, 0 reopened, 0 resolved, " \
                                  "0 ignored, 0 errors"


@pytest.mark.slow
def test_cli_errors_through_the_console_script(engine, cli_env, fixture_bodies):
    env = {**cli_env, "COLUMNS": "200"}
    store(engine, [(T0, fixture_bodies["grafana/grafana9_zulip_firing_single_valueString.json"])])
    run_cli("process", env=env)
    iid = json.loads(run_cli("list", "-o", "json", env=env).stdout)[0]["id"]
    unknown = run_cli("show", "424242", env=env)
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "error: incident 424242 not found")
    assert run_cli("resolve", str(iid), "--by", "ops", env=env).returncode == 0
    again = run_cli("ack", str(iid), env=env)
    assert again.returncode == 1 and f"incident {iid} is resolved: cannot ack it" in again.stderr
    bad_since = run_cli("list", "--since", "soon", env=env)
    assert bad_since.returncode == 2 and "--since" in bad_since.stderr
    bad_label = run_cli("list", "--label", "=x", env=env)
    assert bad_label.returncode == 2 and "--label" in bad_label.stderr


def test_list_and_show_say_which_incidents_are_silenced_now(seeded):
    added = invoke("silence", "add", "--match", "namespace=shop", "--duration", "2h",
                   "--comment", "shop maintenance", "--by", "alice", "--output", "json", db=seeded)
    assert added.exit_code == 0, added.output
    rows = {r["alertname"]: r for r in json.loads(invoke("list", "--output", "json", db=seeded).output)}
    silenced = {name for name, r in rows.items() if r["silenced_by"]}
    assert silenced == {"HighLatency", "PodCrash"}  # namespace=shop; DiskFull (db) and Old are not
    shown = invoke("show", str(rows["PodCrash"]["id"]), db=seeded)
    assert "silenced" in shown.output and f"by silence #{rows['PodCrash']['silenced_by']}" in shown.output
    assert "(silenced #" in invoke("list", db=seeded).output
    disk = json.loads(invoke("show", str(rows["DiskFull"]["id"]), "-o", "json", db=seeded).output)
    assert disk["silenced_by"] is None


def test_label_filter_follows_the_common_labels(db_url, engine):
    # A second series without the label makes it no longer common: the incident stops matching.
    store_spaced(engine, [am_body("HighLatency", "eu1", "shop", "api", team="core")])
    assert invoke("process", db=db_url).exit_code == 0
    assert listing(db_url, "--label", "team=core") == ["HighLatency"]
    other = json.loads(am_body("HighLatency", "eu1", "shop", "api", team="core"))
    other["alerts"][0]["labels"]["instance"] = "b"  # another series of the same incident…
    del other["alerts"][0]["labels"]["team"]  # …that carries no team label
    store_spaced(engine, [json.dumps(other).encode()], start=T0 + timedelta(minutes=5))
    assert invoke("process", db=db_url).exit_code == 0
    assert listing(db_url, "--label", "team=core") == []
    assert listing(db_url, "--label", "alertname=HighLatency") == ["HighLatency"]


def test_label_filter_matches_long_values_exactly(db_url, engine):
    # The index holds the first 191 characters; the filter still compares whole values.
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    store_spaced(engine, [am_body("A", "eu1", "shop", "api", team=long_a),
                          am_body("B", "eu1", "shop", "web", team=long_b)])
    assert invoke("process", db=db_url).exit_code == 0
    assert listing(db_url, "--label", f"team={long_a}", "--status", "all") == ["A"]
    assert listing(db_url, "--label", f"team={long_b}") == ["B"]
    assert listing(db_url, "--label", "team=" + "x" * 300) == []


def test_status_choices_are_the_statuses_and_all():
    assert [choice.value for choice in StatusChoice] == [*IncidentStatus, "all"]
