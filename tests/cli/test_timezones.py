"""Times in a person's zone: `display_timezone` and `--tz` change what tables and messages show;
storage and JSON/CSV stay UTC; an ISO time typed without an offset is read in that zone."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest

from incidentctl.cli.output import local_time, set_display_zone
from incidentctl.config import ConfigError, load_settings, zone_name
from tests.cli.test_cli_conventions import COMMANDS
from tests.support.cli import invoke
from tests.support.processing import store_spaced

# Every command a user can run, by whether its table or messages can show a time of day. A new
# command must be put in one of the two: one that shows times takes --tz, one that does not
# does not take it (an option that changes nothing misleads).
SHOWS_TIMES = {
    "list", "show", "related", "watch", "report", "notify", "purge", "rebuild", "demo",
    "outbox list", "silence add", "silence list", "noise", "token list",
}
NO_TIMES = {
    "config", "ack", "resolve", "reopen", "note", "serve", "doctor", "process", "run", "export", "replay",
    "simulate", "db upgrade", "db status", "db ddl", "outbox retry", "silence expire",
    "grafana dashboard", "grafana datasource", "grafana contact-point", "grafana provider", "slack manifest",
    "token add", "token revoke",
}


def _leaves() -> dict[str, object]:
    return {" ".join(path): command for path, command, _ in COMMANDS if path and not hasattr(command, "commands")}


def test_every_command_that_shows_times_takes_tz():
    leaves = _leaves()
    unclassified = set(leaves) - SHOWS_TIMES - NO_TIMES
    assert not unclassified, f"say in SHOWS_TIMES or NO_TIMES whether these show times: {sorted(unclassified)}"
    assert not (SHOWS_TIMES & NO_TIMES)
    for name, command in leaves.items():
        has_tz = any("--tz" in p.opts for p in command.params)
        if name in SHOWS_TIMES:
            assert has_tz, f"incidentctl {name} shows times but takes no --tz"
        else:
            assert not has_tz, f"incidentctl {name} shows no time: --tz would change nothing"
    assert {"watch", "related"} <= set(leaves)  # the new commands are classified, not just listed


# (stored UTC time, zone, what a table shows)
LOCAL_TIMES = [
    (datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc), "UTC", "2026-01-05 09:00:00 UTC"),
    (datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc), "Europe/Berlin", "2026-01-05 10:00:00 CET"),
    (datetime(2026, 7, 5, 9, 0, tzinfo=timezone.utc), "Europe/Berlin", "2026-07-05 11:00:00 CEST"),  # summer time
    (datetime(2026, 1, 5, 3, 30, tzinfo=timezone.utc), "America/New_York", "2026-01-04 22:30:00 EST"),  # day before
    (datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc), "Asia/Kolkata", "2026-01-05 14:30:00 IST"),  # half-hour offset
    # no abbreviation
    (datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc), "America/Sao_Paulo", "2026-01-05 06:00:00 -03"),
]


@pytest.mark.parametrize("moment,zone,shown", LOCAL_TIMES)
def test_local_time(moment, zone, shown):
    set_display_zone(zone)
    try:
        assert local_time(moment) == shown
    finally:
        set_display_zone("UTC")


# (typed, the setting's value, or None when refused)
ZONE_NAMES = [
    ("UTC", "UTC"),
    ("Europe/Berlin", "Europe/Berlin"),
    ("europe/berlin", "Europe/Berlin"),  # spelled as the zone database does
    ("utc", "UTC"),
    (" Asia/Tokyo ", "Asia/Tokyo"),
    ("Mars/Olympus_Mons", None),
    ("", None),
    ("/etc/passwd", None),  # a path is not a zone name
    ("../../etc/passwd", None),
    ("CET+1", None),
]


@pytest.mark.parametrize("typed,name", ZONE_NAMES)
def test_zone_names(typed, name):
    if name is None:
        with pytest.raises(ValueError, match="unknown time zone"):
            zone_name(typed)
    else:
        assert zone_name(typed) == name


def test_a_bad_display_timezone_is_a_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError, match="INCIDENTCTL_DISPLAY_TIMEZONE: invalid value for display_timezone"):
        load_settings(environ={"INCIDENTCTL_DISPLAY_TIMEZONE": "Mars/Base"})
    env = {"INCIDENTCTL_DATABASE_URL": f"sqlite+pysqlite:///{tmp_path / 'x.db'}",
           "INCIDENTCTL_DISPLAY_TIMEZONE": "Mars/Base"}
    result = invoke("list", env=env)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: environment variable INCIDENTCTL_DISPLAY_TIMEZONE: invalid value for display_timezone: unknown time "
        "zone 'Mars/Base' (use an IANA name such as UTC or Europe/Berlin)"]
    config = tmp_path / "c.toml"
    config.write_text('display_timezone = "Europe/Narnia"\n')
    result = invoke("--config", str(config), "list", env={k: v for k, v in env.items()
                                                                       if k != "INCIDENTCTL_DISPLAY_TIMEZONE"})
    assert result.exit_code == 2 and "Europe/Narnia" in result.output and len(result.output.strip().splitlines()) == 1


def test_a_bad_tz_is_a_usage_error_naming_it(tmp_path):
    env = {"INCIDENTCTL_DATABASE_URL": f"sqlite+pysqlite:///{tmp_path / 'x.db'}"}
    result = invoke("list", "--tz", "Nowhere/Town", env=env)
    assert result.exit_code == 2
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert line.startswith("Error: Invalid value for '--tz': unknown time zone 'Nowhere/Town'")


def _alert(start: str) -> bytes:
    alert = {"status": "firing", "labels": {"alertname": "Latency", "cluster": "eu1", "severity": "critical"},
             "annotations": {}, "startsAt": start, "endsAt": "0001-01-01T00:00:00Z"}
    return json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()


@pytest.fixture
def seeded(db_url, engine):
    store_spaced(engine, [_alert("2026-01-05T09:00:00Z"), _alert("2026-01-05T09:00:00Z")])
    env = {"INCIDENTCTL_DATABASE_URL": db_url, "COLUMNS": "200", "USER": "tester", "LOGNAME": "tester"}
    assert invoke("process", env=env).exit_code == 0
    (incident,) = json.loads(invoke("list", "-o", "json", env=env).output)
    return env, incident["id"]


def test_show_in_a_zone_while_json_and_csv_stay_utc(seeded):
    env, iid = seeded
    default = invoke("show", str(iid), env=env).output
    assert "opened 2026-01-05 09:00:00 UTC" in " ".join(default.split())
    berlin = invoke("show", str(iid), "--tz", "Europe/Berlin", env=env).output
    assert "opened 2026-01-05 10:00:00 CET" in " ".join(berlin.split())
    assert "2026-01-05 10:00:00 CET" in berlin.split("timeline")[1]  # the timeline too
    by_setting = invoke("show", str(iid), env={**env, "INCIDENTCTL_DISPLAY_TIMEZONE": "Asia/Tokyo"})
    assert "opened 2026-01-05 18:00:00 JST" in " ".join(by_setting.output.split())
    tz_wins = invoke("show", str(iid), "--tz", "UTC", env={**env, "INCIDENTCTL_DISPLAY_TIMEZONE": "Asia/Tokyo"})
    assert "opened 2026-01-05 09:00:00 UTC" in " ".join(tz_wins.output.split())
    as_json = json.loads(invoke("show", str(iid), "-o", "json", "--tz", "Europe/Berlin", env=env).output)
    assert as_json["opened_at"] == "2026-01-05T09:00:00Z" and as_json["events"][0]["at"] == "2026-01-05T09:00:00Z"
    rows = list(csv.DictReader(io.StringIO(
        invoke("show", str(iid), "-o", "csv", "--tz", "Europe/Berlin", env=env).output)))
    assert rows[0]["at"] == "2026-01-05T09:00:00Z"


def test_list_table_names_its_zone_and_since_reads_a_bare_time_in_it(seeded):
    env, iid = seeded
    table = invoke("list", "--tz", "Europe/Berlin", env=env).output
    assert "incidents (times Europe/Berlin)" in table and "01-05 10:00" in table
    # 09:30 in Berlin is 08:30 UTC: the incident (09:00 UTC) opened after it …
    assert [r["id"] for r in json.loads(invoke(
        "list", "-o", "json", "--since", "2026-01-05T09:30:00", "--tz", "Europe/Berlin", env=env).output)] == [iid]
    # … and before 09:30 UTC, read as UTC without --tz, or with an explicit offset whatever the zone
    assert json.loads(invoke("list", "-o", "json", "--since", "2026-01-05T09:30:00", env=env).output) == []
    assert json.loads(invoke("list", "-o", "json", "--since", "2026-01-05T09:30:00Z", "--tz",
                                          "Europe/Berlin", env=env).output) == []


def test_silences_in_a_zone(seeded):
    env, _ = seeded
    added = invoke("silence", "add", "-m", "cluster=eu1", "--until", "2099-06-01T12:00:00",
                                "--comment", "upgrade", "--tz", "Europe/Berlin", env=env)
    assert added.exit_code == 0, added.output
    assert "until 2099-06-01 12:00:00 CEST" in added.output  # read and shown in the zone
    (row,) = json.loads(invoke("silence", "list", "-o", "json", env=env).output)
    assert row["ends_at"] == "2099-06-01T10:00:00Z"
    listed = invoke("silence", "list", "--tz", "America/New_York", env=env).output
    assert "2099-06-01 06:00:00 EDT" in listed
