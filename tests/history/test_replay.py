"""export and replay: the archive out to JSON Lines and back, byte for byte, idempotently."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, select

from incidentctl.db.engine import make_engine
from incidentctl.db.migrations import upgrade
from incidentctl.db.schema import grafana_alerts
from incidentctl.history.export import export_to_file, from_record, to_record
from incidentctl.history.replay import replay
from incidentctl.ingest.archive import insert_raw_alerts, raw_alert
from tests.support import FIXTURES
from tests.support.cli import invoke, run_cli
from tests.support.factories import count_rows

# When the seeded archive was received (2026-10-01 in the assertions), with microseconds an export must keep.
RECEIVED = datetime(2026, 10, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


def CLOCK() -> datetime:
    return NOW
COMPARED = ("received_at", "source", "remote_addr", "user_agent", "content_type", "body", "body_sha256",
            "body_size", "alert_count", "status", "parse_error")
# Bodies the receiver may have stored besides the fixtures: not UTF-8, empty, a line separator
# inside a JSON string, a CRLF-terminated text, a custom template that is not JSON at all.
ODD_BODIES = [b"\xff\xfe not utf-8 \x00", b"", '{"alerts": [], "note": "a\u2028b"}'.encode(), b"text\r\n",
              b"custom template: CPU high"]


def _sqlite(tmp_path: Path, name: str):
    engine = make_engine(f"sqlite+pysqlite:///{tmp_path / name}")
    upgrade(engine)
    return engine


def _archive(engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(select(*(grafana_alerts.c[k] for k in COMPARED)).order_by(grafana_alerts.c.id))
        return [tuple(r) for r in rows]


def _mtime(path: Path) -> datetime:
    """A file's modification time, truncated to the microsecond."""
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=path.stat().st_mtime_ns // 1000)


def _seed(engine, fixture_bodies) -> None:
    alerts = []
    for n, body in enumerate([*fixture_bodies.values(), *ODD_BODIES]):
        alerts.append(raw_alert(body, received_at=RECEIVED + timedelta(minutes=n, microseconds=n),
                                remote_addr=f"10.0.0.{n}", user_agent="Grafana/11.2" if n % 2 else None,
                                content_type="application/json"))
    with engine.begin() as conn:
        insert_raw_alerts(conn, alerts)


def test_export_replay_round_trip_between_databases(engine, tmp_path, fixture_bodies):
    # SQLite → the backend under test → SQLite again: bodies, times, sources and labels identical.
    source = _sqlite(tmp_path, "source.db")
    _seed(source, fixture_bodies)
    first = export_to_file(source, tmp_path / "archive.jsonl.gz")
    assert first.rows == len(fixture_bodies) + len(ODD_BODIES)

    summary = replay(engine, [str(tmp_path / "archive.jsonl.gz")], clock=CLOCK)
    assert (summary.stored, summary.duplicates, summary.error_count) == (first.rows, 0, 0)
    assert summary.not_payloads == 4  # the non-UTF-8, empty, array-less CRLF and template bodies
    assert _archive(engine) == _archive(source)

    export_to_file(engine, tmp_path / "back.jsonl")
    back = _sqlite(tmp_path, "back.db")
    replay(back, [str(tmp_path / "back.jsonl")], clock=CLOCK)
    assert _archive(back) == _archive(source)
    for e in (source, back):
        e.dispose()


def test_replay_twice_stores_nothing_new(engine, tmp_path, fixture_bodies):
    source = _sqlite(tmp_path, "source.db")
    _seed(source, fixture_bodies)
    export_to_file(source, tmp_path / "a.jsonl")
    first = replay(engine, [str(tmp_path / "a.jsonl")], clock=CLOCK, batch_size=4)
    again = replay(engine, [str(tmp_path / "a.jsonl")], clock=CLOCK, batch_size=4)
    assert again.stored == 0 and again.duplicates == first.stored == first.read
    # The same input twice in one run: the second copy is a duplicate too.
    twice = replay(_sqlite(tmp_path, "other.db"), [str(tmp_path / "a.jsonl")] * 2, clock=CLOCK)
    assert (twice.stored, twice.duplicates) == (first.stored, first.stored)
    assert count_rows(engine, grafana_alerts) == first.stored


def test_corrupt_lines_are_reported_with_file_and_line_and_the_rest_imported(engine, tmp_path, fixture_bodies):
    good = fixture_bodies["grafana/grafana9_zulip_resolved_single.json"]
    record = to_record({"id": 7, "received_at": RECEIVED, "source": "grafana", "remote_addr": None, "user_agent": None,
                        "content_type": None, "body_sha256": hashlib.sha256(b"x").hexdigest(), "body": b"y"})
    lines = [
        json.dumps(json.loads(good)).encode(),  # 1: a body
        b'{"receiver": "x", "alerts": [',  # 2: cut off
        b"",  # 3: blank, ignored
        b"[1, 2]",  # 4: JSON but not an object
        json.dumps(record).encode(),  # 5: export record whose body does not match its hash
        json.dumps(json.loads(fixture_bodies["grafana/grafana9_zulip_firing_single_valueString.json"])).encode(),  # 6
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    summary = replay(engine, [str(path), str(tmp_path / "missing.json")], clock=CLOCK)
    assert [(e.location, e.message.split(":")[0]) for e in summary.errors] == [
        (f"{tmp_path / 'missing.json'}", "no such file or directory"),  # paths are checked first
        (f"{path}:2", "invalid JSON"),
        (f"{path}:4", "a JSON array is neither a webhook body nor an export record"),
        (f"{path}:5", "bad export record"),
    ]
    assert (summary.read, summary.stored, summary.error_count) == (6, 2, 4)
    with engine.connect() as conn:
        stored = conn.execute(select(grafana_alerts.c.body, grafana_alerts.c.source, grafana_alerts.c.received_at)
                              .order_by(grafana_alerts.c.id)).all()
    assert [r.body for r in stored] == [lines[0], lines[5]]
    assert {r.source for r in stored} == {"replay"}
    # Bodies without a time get the file's mtime plus (line − 1) µs, so they keep their order.
    mtime = _mtime(path)
    assert [r.received_at for r in stored] == [mtime, mtime + timedelta(microseconds=5)]


def test_gzip_inputs_and_a_truncated_gzip(engine, tmp_path, fixture_bodies):
    body = fixture_bodies["alertmanager/am_v4_oncall-example_firing_3alerts_numFiring-added-by-oncall.json"]
    (tmp_path / "one.json.gz").write_bytes(gzip.compress(body))
    # The same body on three lines: three requests (distinct times), not one.
    line = json.dumps(json.loads(body)).encode()
    (tmp_path / "lines.ndjson.gz").write_bytes(gzip.compress(b"\n".join([line] * 3)))
    broken = gzip.compress(b"\n".join([line.replace(b"firing", b"resolved", 1)] * 400))
    (tmp_path / "broken.jsonl.gz").write_bytes(broken[: len(broken) // 2])
    summary = replay(engine, [str(tmp_path / n) for n in ("one.json.gz", "lines.ndjson.gz", "broken.jsonl.gz")],
                     clock=CLOCK, received_at=RECEIVED)
    assert summary.error_count == 1
    assert summary.stored == summary.read - 1 > 4  # the lines before the break are kept
    error = summary.errors[0]
    assert error.location.startswith(f"{tmp_path / 'broken.jsonl.gz'}:") and "cannot read further" in error.message
    with engine.connect() as conn:
        first = conn.execute(select(grafana_alerts.c.body, grafana_alerts.c.received_at)
                             .order_by(grafana_alerts.c.id)).first()
    assert first == (body, RECEIVED)  # the .json.gz body exactly, at --received-at


def test_directory_of_json_files(engine, tmp_path, fixture_bodies):
    folder = FIXTURES
    summary = replay(engine, [str(folder)], clock=CLOCK)
    assert (summary.files, summary.stored, summary.error_count) == (len(fixture_bodies), len(fixture_bodies), 0)
    assert summary.skipped_files == 1  # README.md
    with engine.connect() as conn:
        rows = conn.execute(select(grafana_alerts.c.body, grafana_alerts.c.received_at, grafana_alerts.c.source,
                                   grafana_alerts.c.alert_count)).all()
    assert sorted(r.body for r in rows) == sorted(fixture_bodies.values())
    mtimes = {_mtime(p) for p in folder.rglob("*.json")}
    assert {r.received_at for r in rows} <= mtimes
    assert {r.source for r in rows} == {"replay"} and all(r.alert_count for r in rows)


def test_export_window_and_record_format(engine, fixture_bodies, tmp_path):
    _seed(engine, fixture_bodies)
    path = tmp_path / "window.jsonl"
    summary = export_to_file(engine, path, since=RECEIVED + timedelta(minutes=2), until=RECEIVED + timedelta(minutes=4))
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert summary.rows == len(records) == 2
    assert records[0]["received_at"] == "2026-10-01T12:02:00.123458Z"
    assert set(records[0]) == {"id", "received_at", "source", "remote_addr", "user_agent", "content_type",
                               "body_sha256", "body"}
    non_utf8 = to_record({**records[0], "received_at": RECEIVED, "body": ODD_BODIES[0],
                          "body_sha256": hashlib.sha256(ODD_BODIES[0]).hexdigest()})
    assert "body" not in non_utf8 and from_record(non_utf8).body == ODD_BODIES[0]


def test_cli_export_and_replay(db_url, tmp_path, fixture_bodies):
    env = {"INCIDENTCTL_DATABASE_URL": db_url}
    engine = make_engine(db_url)
    _seed(engine, fixture_bodies)
    out = tmp_path / "cli.jsonl.gz"
    result = invoke("export", "--since", "2026-10-01T00:00:00Z", "--file", str(out), env=env)
    assert result.exit_code == 0, result.output
    target = tmp_path / "target.db"
    env2 = {"INCIDENTCTL_DATABASE_URL": f"sqlite+pysqlite:///{target}"}
    result = invoke("replay", str(out), "--output", "json", env=env2)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stored"] == count_rows(engine, grafana_alerts)
    result = invoke("replay", str(out), str(tmp_path / "nope.jsonl"), env=env2)
    assert result.exit_code == 1  # the missing file is an error; the rest are duplicates
    assert "stored 0, duplicates" in result.stdout
    result = invoke("replay", str(out), "--received-at", "yesterday", env=env2)
    assert result.exit_code == 2 and "not an ISO 8601 time" in result.output
    engine.dispose()


@pytest.mark.slow
def test_console_script_export_pipe_replay(cli_env, db_url, tmp_path, fixture_bodies):
    engine = make_engine(db_url)
    _seed(engine, fixture_bodies)
    exported = run_cli("export", env=cli_env, text=False, check=True)
    assert len(exported.stdout.splitlines()) == count_rows(engine, grafana_alerts)
    target_env = {**cli_env, "INCIDENTCTL_DATABASE_URL": f"sqlite+pysqlite:///{tmp_path / 'piped.db'}"}
    done = run_cli("replay", "-", "-o", "json", input=exported.stdout, env=target_env, text=False, check=True)
    assert json.loads(done.stdout)["stored"] == count_rows(engine, grafana_alerts)
    target = make_engine(target_env["INCIDENTCTL_DATABASE_URL"])
    assert _archive(target) == _archive(engine)
    for e in (engine, target):
        e.dispose()
    assert os.path.exists(tmp_path / "piped.db")


def test_export_to_an_unwritable_place_is_a_clear_error_and_leaves_no_file(engine, tmp_path, fixture_bodies):
    from incidentctl.errors import ExportFileError

    _seed(engine, fixture_bodies)
    with pytest.raises(ExportFileError, match="cannot write .*missing"):
        export_to_file(engine, tmp_path / "missing" / "out.jsonl")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "out.jsonl").write_text("old")
    os.chmod(tmp_path / "ro", 0o500)
    try:
        if os.access(tmp_path / "ro", os.W_OK):  # root ignores permissions: nothing to check
            return
        with pytest.raises(ExportFileError):
            export_to_file(engine, tmp_path / "ro" / "out.jsonl")
        assert (tmp_path / "ro" / "out.jsonl").read_text() == "old"  # the previous file is untouched
    finally:
        os.chmod(tmp_path / "ro", 0o700)


@pytest.mark.slow
def test_console_script_exit_codes(cli_env, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"alerts": []}\nnot json\n')
    run = run_cli("replay", str(bad), env=cli_env)
    assert run.returncode == 1 and f"{bad}:2: invalid JSON" in run.stderr and "stored 1" in run.stdout
    run = run_cli("export", "-f", str(tmp_path / "no" / "x.jsonl"), env=cli_env)
    assert run.returncode == 1 and "cannot write" in run.stderr
    down = {**cli_env, "INCIDENTCTL_DATABASE_URL": "mysql+pymysql://nobody@127.0.0.1:1/none"}
    run = run_cli("report", env=down)
    assert run.returncode == 3 and "unavailable" in run.stderr


@given(body=st.binary(max_size=300) | st.text(max_size=100).map(str.encode),
       micros=st.integers(min_value=0, max_value=10**15))
def test_export_record_round_trips_any_body_and_time(body, micros):
    # Any bytes (UTF-8 text or not) and any microsecond survive to_record → JSON → from_record.
    moment = datetime(2000, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)
    row = {"id": 1, "received_at": moment, "source": "grafana", "remote_addr": None, "user_agent": "u",
           "content_type": None, "body_sha256": hashlib.sha256(body).hexdigest(), "body": body}
    line = json.dumps(to_record(row), ensure_ascii=False).encode()
    assert b"\n" not in line
    record = from_record(json.loads(line))
    assert (record.body, record.received_at, record.source, record.user_agent) == (body, moment, "grafana", "u")


def test_export_replay_with_process_gives_the_same_incidents(db_url, tmp_path):
    # A processed SQLite database, exported and replayed with --process into the backend under
    # test: incidents, series, timeline and outbox are the same.
    from tests.support.processing import process_all, snapshot, store
    from tests.support.synthetic_history import history

    original = _sqlite(tmp_path, "original.db")
    store(original, history(series=40, minutes=90, seed=3))
    process_all(original)
    export_to_file(original, tmp_path / "history.jsonl.gz")
    result = invoke("replay", str(tmp_path / "history.jsonl.gz"), "--process", "-o", "json",
                    env={"INCIDENTCTL_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["processed"]["rows"] == summary["stored"] > 0
    target = make_engine(db_url)
    expected = snapshot(original)
    assert len(expected["incidents"]) > 5 and expected["events"]
    assert snapshot(target) == expected
    for e in (original, target):
        e.dispose()


def _queue(engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(select(grafana_alerts.c.body_sha256, grafana_alerts.c.processed_at.is_(None),
                                   grafana_alerts.c.process_error).order_by(grafana_alerts.c.id))
        return [tuple(r) for r in rows]


def test_processing_as_it_goes_equals_replay_then_process(engine, second_engine, tmp_path, fixture_bodies):
    # replay(process_with=…) stores and processes each batch in one transaction; the result must be what
    # replay followed by `process` writes: incidents, series, timeline, outbox and the queue marks.
    # A row already waiting in the queue (received live) is processed first, in queue order; a body
    # that is not a payload is marked with its error; a second replay stores and processes nothing.
    from incidentctl.config import load_settings
    from incidentctl.incidents.model import Rules
    from tests.support.processing import process_all, snapshot, store
    from tests.support.synthetic_history import history

    rules = Rules.configured(load_settings({}))
    source = _sqlite(tmp_path, "source.db")
    rows = list(history(series=30, minutes=120, seed=11))
    store(source, rows[1:] + [(RECEIVED, b'{"alerts": "no"}')])
    export_to_file(source, tmp_path / "history.jsonl")
    other = second_engine("then")
    for target in (engine, other):
        store(target, rows[:1])  # the backlog
    summary = replay(engine, [str(tmp_path / "history.jsonl")], clock=CLOCK, batch_size=23, process_with=rules)
    replay(other, [str(tmp_path / "history.jsonl")], clock=CLOCK, batch_size=23)
    then = process_all(other)
    assert summary.processed == then and then.rows == len(rows) + 1 and then.errors == 1
    assert snapshot(engine) == snapshot(other)
    assert _archive(engine) == _archive(other)
    assert _queue(engine) == _queue(other) and not any(waiting for _, waiting, _ in _queue(engine))
    again = replay(engine, [str(tmp_path / "history.jsonl")], clock=CLOCK, process_with=rules)
    assert (again.stored, again.processed.rows) == (0, 0) and again.duplicates == len(rows)
    source.dispose()


def test_replay_and_process_leaves_no_row_waiting(engine, tmp_path):
    # `replay --process` processes rows queued before each batch with it; rows waiting after its last
    # batch (here: no batch at all, as the input holds only a bad line) are processed at the end, as
    # `process` would, so the queue is empty after it. replay(process_with=…) alone leaves them.
    from incidentctl.config import load_settings
    from incidentctl.history.replay import replay_and_process
    from incidentctl.incidents.model import Rules
    from tests.support.processing import store
    from tests.support.synthetic_history import history

    rules = Rules.configured(load_settings({}))
    store(engine, list(history(series=3, minutes=10, seed=5)))
    waiting = count_rows(engine, grafana_alerts)
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"not json\n")
    alone = replay(engine, [str(path)], clock=CLOCK, process_with=rules)
    assert alone.processed.rows == 0 and [w for _, w, _ in _queue(engine)] == [True] * waiting
    calls = []
    summary = replay_and_process(engine, [str(path)], rules, clock=CLOCK, queue_batch_size=2,
                                 queue_progress=lambda done, total: calls.append((done, total)))
    assert (summary.error_count, summary.stored, summary.processed.rows) == (1, 0, waiting)
    assert not any(w for _, w, _ in _queue(engine))
    assert calls[-1] == (waiting, waiting) and len(calls) == -(-waiting // 2)


def test_processing_as_it_goes_marks_each_batch_at_a_reading_of_the_clock(engine, tmp_path, fixture_bodies):
    # processed_at is the injected clock's, read once a batch (its rows and any queued before them).
    from incidentctl.config import load_settings
    from incidentctl.incidents.model import Rules

    path = tmp_path / "bodies.jsonl"
    path.write_bytes(b"\n".join(json.dumps(json.loads(body)).encode() for body in list(fixture_bodies.values())[:5]))
    readings = [NOW + timedelta(hours=h) for h in range(4)]  # the first is the replay's start
    replay(engine, [str(path)], clock=iter(readings).__next__, batch_size=2,
           process_with=Rules.configured(load_settings({})))
    with engine.connect() as conn:
        marks = list(conn.scalars(select(grafana_alerts.c.processed_at).order_by(grafana_alerts.c.id)))
    assert marks == [readings[1], readings[1], readings[2], readings[2], readings[3]]


def test_a_processed_batch_whose_insert_fails_leaves_nothing_behind(engine, tmp_path, fixture_bodies):
    # With processing, a batch's rows and its incident changes commit together. On MariaDB the
    # batch's events are decided on a thread of their own while its rows are inserted: when that
    # insert fails, the error reaches the caller and the batch leaves no rows, incidents or outbox
    # entries behind.
    from incidentctl.config import load_settings
    from incidentctl.db.schema import incidents, notifications
    from incidentctl.incidents.model import Rules

    def refuse_archive_rows(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO grafana_alerts"):
            raise RuntimeError("disk full")

    event.listen(engine, "before_cursor_execute", refuse_archive_rows)
    path = tmp_path / "bodies.jsonl"
    path.write_bytes(b"\n".join(json.dumps(json.loads(body)).encode() for body in fixture_bodies.values()))
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            replay(engine, [str(path)], clock=CLOCK, process_with=Rules.configured(load_settings({})))
    finally:
        event.remove(engine, "before_cursor_execute", refuse_archive_rows)
    counts = [count_rows(engine, table) for table in (grafana_alerts, incidents, notifications)]
    assert counts == [0, 0, 0]
