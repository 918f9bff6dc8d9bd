"""noise: a generated history with known noisy rules (tests/support/noisy_history.py) is
processed, people acknowledge some incidents, and `incidentctl noise` must find the noisy rules,
suggest the fix each calls for, and agree with `incidentctl simulate` of the same change."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from incidentctl.config import load_settings
from incidentctl.db.schema import incidents, notifications
from incidentctl.history.noise import build_noise
from tests.support.cli import invoke
from tests.support.noisy_history import END, START, load
from tests.support.processing import checksums

SINCE, UNTIL = START - timedelta(hours=1), END + timedelta(days=1)
WINDOW = ["--since", SINCE.isoformat(), "--until", UNTIL.isoformat()]


@pytest.fixture
def history(loaded, db_url):
    loaded(load)  # the history is processed once a session; each test reads a copy
    return {"db_url": db_url, "env": {"INCIDENTCTL_DATABASE_URL": db_url}}


def cli_json(env, *args):
    result = invoke(*args, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def by_kind(rule: dict) -> dict:
    return {s["kind"]: s for s in rule["suggestions"]}


def test_noise_finds_the_noisy_rules_and_the_fix_each_calls_for(history, engine):
    before = checksums(engine)
    data = cli_json(history["env"], "noise", *WINDOW, "-o", "json")
    assert checksums(engine) == before  # reads only
    rules = {r["alertname"]: r for r in data["rules"]}
    assert {name for name, r in rules.items() if r["noisy"]} == {"Blip", "Flap", "Nightly", "Spread"}
    assert not rules["Real"]["noisy"] and rules["Real"]["acted_on"] == 2
    blip, flap, nightly, spread = (rules[n] for n in ("Blip", "Flap", "Nightly", "Spread"))
    assert (blip["incidents"], blip["pages"], blip["acted_on"], blip["self_resolved"]) == (80, 80, 8, 72)
    assert flap["incidents"] == 10 and flap["flaps"] == flap["pages"] - 10 >= 90
    assert nightly["periodic_window"] == "daily 02:00-03:00 UTC" and nightly["median_firing_s"] == 1800
    assert sum(nightly["hour_of_week"]) == 10 and spread["pages"] == 400
    assert set(by_kind(blip)) >= {"notify_after"} and "keep_firing" in by_kind(flap)
    assert "silence" in by_kind(nightly) and by_kind(spread)["group_by"]["backtested"]
    assert data["backtest"]["replayed_rules"] == ["Spread"] and data["backtest"]["rows"] == 800
    # the acknowledged long Blips: announced later by the threshold, never lost
    notify_after = by_kind(blip)["notify_after"]
    assert notify_after["change"] == "notify after 3m"
    assert notify_after["acted_on"] == {"incidents": 8, "delayed": 8, "median_delay_s": 180.0, "never_announced": 0}
    assert "the 8 incidents a person acted on would have been announced a median 3m later" in notify_after["summary"]
    assert by_kind(nightly)["silence"]["after"]["pages"] == 0
    group = by_kind(spread)["group_by"]
    assert (group["change"], group["before"]["opened"], group["after"]["opened"]) == (
        "group by alertname,cluster,namespace", 400, 40)
    # deterministic: the same report twice
    assert cli_json(history["env"], "noise", *WINDOW, "-o", "json")["rules"] == data["rules"]


@pytest.mark.parametrize("rule, kind, options", [
    ("Blip", "notify_after", lambda s: ["--notify-after", s["change"].split()[-1]]),
    ("Flap", "keep_firing", lambda s: ["--keep-firing", s["change"].split()[-1]]),
    ("Nightly", "silence", lambda s: ["--silence-window", s["change"].removeprefix("silence ")]),
    ("Spread", "group_by", lambda s: ["--group-by", s["change"].split()[-1]]),
])
def test_backtest_agrees_with_simulate_of_the_same_change(history, rule, kind, options):
    # noise backtests from the stored outbox (or a replay of the rule's rows only); simulate
    # replays the whole archive through the decision. Same change, same figures.
    data = cli_json(history["env"], "noise", *WINDOW, "-o", "json")
    suggestion = by_kind(next(r for r in data["rules"] if r["alertname"] == rule))[kind]
    simulated = cli_json(history["env"], "simulate", "--alertname", rule, *options(suggestion), *WINDOW, "-o", "json")
    current, proposed = simulated["rules"]
    assert current["announced"]["pages"] == suggestion["before"]["pages"]
    assert proposed["announced"]["pages"] == suggestion["after"]["pages"] < suggestion["before"]["pages"]
    if kind == "group_by":
        assert (current["incidents"], proposed["incidents"]) == (suggestion["before"]["opened"],
                                                                 suggestion["after"]["opened"])
    else:
        assert simulated["acted_on"] == suggestion["acted_on"]


def test_table_output_and_usage_errors(history):
    result = invoke("noise", *WINDOW, env=history["env"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.startswith("│ Blip") or "Blip " in line for line in lines)
    assert "Blip: suggested fixes, backtested on the window" in result.stdout
    assert "• notify after 3m: would have sent" in result.stdout
    assert "grouping replayed for Spread (800 raw rows)" in result.stdout
    for args in (["--within", "soon"], ["--since", "2y"], ["-o", "csv"], ["--until", SINCE.isoformat()]):
        bad = invoke("noise", *args, env=history["env"])
        assert bad.exit_code == 2 and "Traceback" not in bad.output, args


def test_replay_budget_leaves_an_estimate(history, engine):
    report = build_noise(engine, load_settings({}), since=SINCE, until=UNTIL, replay_rows=100)
    spread = next(r for r in report.rules if r.alertname == "Spread")
    (group,) = [s for s in spread.suggestions if s.kind == "group_by"]
    assert not group.backtested and "not replayed: over --replay-rows 100 raw rows" in group.summary
    assert report.replayed == [] and report.replayed_rows == 0


def test_pages_count_what_reached_slack_or_will(history, engine):
    # a page a silence suppressed, or a threshold holds, is not a page
    with engine.begin() as conn:
        first = conn.execute(select(notifications.c.id).join(incidents).where(
            incidents.c.alertname == "Nightly", notifications.c.change == "opened").order_by(notifications.c.id)
            .limit(2)).scalars().all()
        conn.execute(notifications.update().where(notifications.c.id == first[0]).values(state="suppressed",
                                                                                           silence_id=1))
        conn.execute(notifications.update().where(notifications.c.id == first[1]).values(
            last_error="held: route default: firing 1m, below the threshold (fired 5m)"))
    report = build_noise(engine, load_settings({}), since=SINCE, until=UNTIL, replay=0)
    nightly = next(r for r in report.rules if r.alertname == "Nightly")
    assert nightly.pages == 8


@pytest.mark.parametrize("args, option", [
    (["--notify-after", "soon"], "--notify-after"),
    (["--notify-after", "0"], "--notify-after"),  # every condition off
    (["--notify-min-severity", "P1"], "--notify-min-severity"),
    (["--notify-min-alerts", "-1"], "--notify-min-alerts"),
    (["--keep-firing", "a while"], "--keep-firing"),
    (["--silence-window", "nightly"], "--silence-window"),
])
def test_simulate_refuses_bad_notify_options(db_url, args, option):
    result = invoke("simulate", *args, env={"INCIDENTCTL_DATABASE_URL": db_url})
    assert result.exit_code == 2 and f"'{option}'" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_noise_through_the_console_script(history, incidentctl_bin, cli_env):
    import subprocess

    run = subprocess.run([incidentctl_bin, "noise", *WINDOW, "-o", "json"], env=cli_env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["noisy"] == 4 and [r["alertname"] for r in data["rules"]][-1] == "Real"
    piped = subprocess.run([incidentctl_bin, "noise", *WINDOW], env=cli_env, capture_output=True, text=True,
                           timeout=120)
    # piped: every table row on one line, whole, for grep
    assert piped.returncode == 0 and any(line.startswith("│ Nightly ") and "daily 02:00-03:00 UTC" in line
                                         for line in piped.stdout.splitlines())
