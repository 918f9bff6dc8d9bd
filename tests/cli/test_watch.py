"""`incidentctl watch`: what changed since the last refresh (pure), the one-statement overview on
both databases, plain output off a terminal, and the live view in a real pseudo-terminal (tmux)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from incidentctl.cli.watch import CHANGED, NEW, Changes, compare, view
from incidentctl.db.schema import series_labels
from incidentctl.incidents.listing import IncidentFilter
from incidentctl.incidents.overview import Overview, overview
from tests.support.cli import invoke
from tests.support.factories import add_incident
from tests.support.processing import store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def row(iid: int, **changed) -> dict:
    base = {"id": iid, "status": "open", "severity": "warning", "series_firing": 1, "series_count": 1,
            "alert_count": 1, "acknowledged_by": None, "reopen_count": 0}
    return {**base, **changed}


# (previous rows or None, current rows, marks, gone)
COMPARES = [
    (None, [row(1), row(2)], {}, ()),  # the first refresh: nothing is news yet
    ([row(1)], [row(1)], {}, ()),  # nothing changed
    ([row(1)], [row(2), row(1)], {2: NEW}, ()),
    ([row(1), row(2)], [row(1)], {}, (2,)),  # resolved, or no longer matching
    ([row(1)], [row(1, alert_count=2)], {1: CHANGED}, ()),  # a repeat counts: the incident is alive
    ([row(1)], [row(1, status="acknowledged", acknowledged_by="ann")], {1: CHANGED}, ()),
    ([row(1)], [row(1, severity="critical")], {1: CHANGED}, ()),
    ([row(1)], [row(1, series_firing=2, series_count=2)], {1: CHANGED}, ()),
    ([row(1), row(3)], [row(2), row(1, reopen_count=1)], {2: NEW, 1: CHANGED}, (3,)),
]


@pytest.mark.parametrize("previous,current,marks,gone", COMPARES)
def test_compare(previous, current, marks, gone):
    state = None if previous is None else compare(None, previous)[1]
    changes, _ = compare(state, current)
    assert changes == Changes(marks, gone)


def test_view_names_what_went_away_and_a_database_error():
    ov = Overview([], 0, {}, None)
    screen = view(ov, Changes({}, (7, 9)), T0, timedelta(seconds=2), "database x is unavailable: gone", live=False)
    from rich.console import Console

    with open(os.devnull, "w") as sink:
        console = Console(width=200, record=True, file=sink)
        console.print(screen)
        text = console.export_text()
    assert "gone since the last refresh (resolved, or no longer matching): #7, #9" in text
    assert "database x is unavailable: gone (showing the last refresh; retrying)" in text
    assert "0 unresolved · oldest unacknowledged critical: none" in text and "Ctrl-C" not in text


@pytest.fixture
def board(engine):
    """Unresolved incidents of every severity, the oldest open critical far down the list."""
    ids = {"old_critical": add_incident(engine, title="Old critical", severity="critical", opened_at=T0),
           "acked_critical": add_incident(engine, title="Acked critical", severity="critical", status="acknowledged",
                                          opened_at=T0 - timedelta(hours=5), acknowledged_by="ann"),
           "resolved_critical": add_incident(engine, title="Gone", severity="critical", status="resolved",
                                             opened_at=T0 - timedelta(hours=9))}
    for n in range(12):
        ids[f"w{n}"] = add_incident(engine, title=f"Warning {n}", severity="warning",
                                    opened_at=T0 + timedelta(minutes=10 + n))
    ids["info"] = add_incident(engine, title="Info", severity="info", opened_at=T0 + timedelta(minutes=1),
                               labels={"cluster": "edge", "team": "db"})
    ids["new_critical"] = add_incident(engine, title="New critical", severity="critical",
                                       opened_at=T0 + timedelta(hours=1))
    with engine.begin() as conn:  # the label index `process` keeps, for --label
        conn.execute(series_labels.insert().values(incident_id=ids["info"], name="team", value="db",
                                                   opened_at=T0 + timedelta(minutes=1)))
    return ids


def test_overview_counts_everything_it_does_not_list(engine, board):
    ov = overview(engine, IncidentFilter(limit=5))
    assert [r["title"] for r in ov.rows] == ["New critical", "Warning 11", "Warning 10", "Warning 9", "Warning 8"]
    assert ov.total == 16 and ov.by_severity == {"critical": 3, "warning": 12, "info": 1}
    # the oldest *unacknowledged* critical, though not among the five listed
    assert (ov.oldest_unacked_critical["id"], ov.oldest_unacked_critical["title"]) == (board["old_critical"],
                                                                                       "Old critical")
    assert overview(engine, IncidentFilter(status="acknowledged")).by_severity == {"critical": 1}
    edge = overview(engine, IncidentFilter(cluster="edge"))
    assert (edge.total, [r["id"] for r in edge.rows], edge.oldest_unacked_critical) == (1, [board["info"]], None)
    team = overview(engine, IncidentFilter(labels=(("team", "db"),), limit=1))
    assert (team.total, team.by_severity) == (1, {"info": 1})
    none = overview(engine, IncidentFilter(cluster="nowhere"))
    assert none == Overview([], 0, {}, None)
    with pytest.raises(ValueError):
        overview(engine, IncidentFilter(status="resolved"))


def test_overview_agrees_with_counting_the_list(engine):
    rnd = random.Random(4)
    incidents = []
    for _ in range(60):
        severity = rnd.choice(("critical", "error", "warning", "info", "none"))
        status = rnd.choice(("open", "acknowledged", "resolved"))
        opened = T0 + timedelta(minutes=rnd.randint(0, 500))
        incidents.append((add_incident(engine, severity=severity, status=status, opened_at=opened), severity,
                          status, opened))
    for limit in (1, 7, 100):
        ov = overview(engine, IncidentFilter(limit=limit))
        unresolved = [i for i in incidents if i[2] != "resolved"]
        newest = sorted(unresolved, key=lambda i: (i[3], i[0]), reverse=True)[:limit]
        assert [r["id"] for r in ov.rows] == [i[0] for i in newest]
        assert ov.by_severity == dict(Counter(i[1] for i in unresolved)) and ov.total == len(unresolved)
        critical = min((i for i in unresolved if i[1] == "critical" and i[2] == "open"), key=lambda i: (i[3], i[0]))
        assert ov.oldest_unacked_critical["id"] == critical[0]


def test_one_statement_per_refresh(db_url, board):
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        result = invoke("watch", "--count", "3", "--interval", "0", "--limit", "5",
                               env={"INCIDENTCTL_DATABASE_URL": db_url, "COLUMNS": "200"})
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert result.exit_code == 0, result.output
    work = [s for s in statements if not s.startswith(("BEGIN", "COMMIT", "ROLLBACK")) and "schema_migrations" not in s]
    assert len(work) == 3 and len(set(work)) == 1 and "newest_rank" in work[0]  # one read per refresh
    # off a terminal: each refresh printed after the last, plain (no escape codes)
    assert result.output.count("incidentctl watch · ") == 3 and "\x1b[" not in result.output
    first = result.output.split("\n\n")[0]
    assert "16 unresolved: 3 critical, 12 warning, 1 info" in first
    assert f"oldest unacknowledged critical: #{board['old_critical']:d} Old critical, open" in first
    assert "unresolved incidents (times UTC, the newest 5 of 16)" in first


def test_watch_refuses_what_it_cannot_show(tmp_path):
    env = {"INCIDENTCTL_DATABASE_URL": f"sqlite+pysqlite:///{tmp_path / 'x.db'}"}
    for args, option in ((["--status", "resolved"], "'--status'"), (["--interval", "soon"], "'--interval'"),
                         (["--severity", "P9"], "'--severity'"), (["--label", "x"], "'--label'"),
                         (["--tz", "Nowhere"], "'--tz'")):
        result = invoke("watch", "--count", "1", *args, env=env)
        assert result.exit_code == 2, (args, result.output)
        assert f"Invalid value for {option}" in result.output


TMUX = shutil.which("tmux")


def am(alertname: str, start: datetime) -> bytes:
    alert = {"status": "firing", "labels": {"alertname": alertname, "cluster": "prod", "severity": "critical"},
             "annotations": {}, "startsAt": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "endsAt": "0001-01-01T00:00:00Z"}
    return json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()


class Pane:
    """A detached tmux session of its own server (socket), 160×40, running one command."""

    def __init__(self, name: str, command: str, env: dict[str, str]):
        self.socket = name
        extra = [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]
        self.tmux("new-session", "-d", "-x", "160", "-y", "40", *extra, command)

    def tmux(self, *args: str) -> str:
        return subprocess.run([TMUX, "-L", self.socket, "-f", "/dev/null", *args], check=True, capture_output=True,
                              text=True, timeout=10).stdout

    def screen(self, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []))

    def flag(self, name: str) -> str:
        return self.tmux("display", "-p", f"#{{{name}}}").strip()

    def wait_for(self, predicate, timeout: float = 30.0, escapes: bool = False) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen(escapes)
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the screen:\n{screen}")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


def _row(screen: str, title: str) -> bool:
    """Whether the screen shows a table row of the incident with this title."""
    return any(title in line and "│" in line for line in screen.splitlines())


@pytest.mark.slow
@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_watch_in_a_real_terminal(engine, cli_env, incidentctl_bin, tmp_path):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    store(engine, [(now - timedelta(minutes=9), am("DiskFull", now - timedelta(minutes=10)))])
    subprocess.run([incidentctl_bin, "process"], env=cli_env, check=True, capture_output=True, timeout=60)
    # the terminal's own size: not a COLUMNS/LINES the test run may carry into the tmux server
    command = f"env -u COLUMNS -u LINES bash -c '{incidentctl_bin} watch --interval 1; echo watch-exit=$?; sleep 600'"
    pane = Pane(f"incidentctl-test-{os.getpid()}-{tmp_path.name}", command,
                {k: v for k, v in cli_env.items() if k.startswith(("INCIDENTCTL_", "HOME"))})
    try:
        screen = pane.wait_for(lambda s: "1 unresolved: 1 critical" in s)
        assert "DiskFull (prod)" in screen and pane.flag("alternate_on") == "1"  # drawn on the alternate screen
        store(engine, [(now, am("NodeDown", now - timedelta(seconds=30)))])
        subprocess.run([incidentctl_bin, "process"], env=cli_env, check=True, capture_output=True, timeout=60)
        # the next refresh shows it, marked and in reverse video, and counts it in the header; waited
        # for until both rows are drawn (a capture can land halfway through a redraw)
        screen = pane.wait_for(lambda s: "2 unresolved" in s and _row(s, "NodeDown (prod)")
                               and _row(s, "DiskFull (prod)"), escapes=True)
        (line,) = [x for x in screen.splitlines() if "NodeDown (prod)" in x and "│" in x]  # its table row
        assert "\x1b[7m" in line and re.sub(r"\x1b\[[0-9;]*m", "", line).split("│")[1].strip() == NEW
        (old,) = [x for x in screen.splitlines() if "DiskFull (prod)" in x and "│" in x]
        assert "\x1b[7m" not in old
        # one refresh later it is no longer news
        pane.wait_for(lambda s: all("\x1b[7m" not in x for x in s.splitlines() if "NodeDown" in x), escapes=True)
        pane.tmux("send-keys", "C-c")
        screen = pane.wait_for(lambda s: "watch-exit=" in s)
        assert "watch-exit=0" in screen and "Traceback" not in screen and "Aborted" not in screen
        assert pane.flag("alternate_on") == "0" and pane.flag("cursor_flag") == "1"  # the terminal restored
    finally:
        pane.close()
