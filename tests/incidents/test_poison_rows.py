"""A row whose body is valid JSON but cannot be turned into events (a "poison row") is marked
with its error and never blocks the queue: through the receiver, `process` and `replay --process`,
on SQLite and MariaDB; and a hypothesis property over arbitrary documents."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from incidentctl.db.lease import Lease
from incidentctl.db.schema import grafana_alerts, incident_alerts, incident_events
from incidentctl.incidents import decide as grouping
from incidentctl.incidents.decide import decide_row
from incidentctl.incidents.fingerprint import FINGERPRINT_MAX
from incidentctl.incidents.parsing import PayloadError, parse_body
from incidentctl.incidents.processor import error_text
from incidentctl.ingest.receiver.app import Receiver
from tests.support.asgi import call
from tests.support.cli import invoke

RECEIVED = datetime(2026, 5, 4, 3, 2, 1, tzinfo=timezone.utc)
GROUP_BY = ("alertname", "cluster", "namespace", "service")


def am(alertname: str, *, labels: dict | None = None, status: str = "firing", **alert) -> bytes:
    """An Alertmanager v4 body with one alert; `labels` and `alert` fields are added as given."""
    body = {"status": status, "labels": {"alertname": alertname, "cluster": "eu1", "service": "api", **(labels or {})},
            "annotations": {"summary": f"{alertname} is bad"}, "startsAt": "2026-05-04T03:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", **alert}
    # ensure_ascii (json's default) writes a lone surrogate as the escape `\ud800`, as a sender would
    return json.dumps({"version": "4", "status": status, "alerts": [body]}).encode()


# Valid JSON, archived with 200 by the receiver; each raised inside `process` before this fix
# (in parsing, fingerprinting or, on MariaDB, in the batch's INSERT) and stopped the queue.
POISON = {
    # a lone surrogate in a label value without a payload fingerprint: the label fingerprint fails
    "surrogate-label": am("Poison", labels={"instance": "\ud800"}),
    # with a payload fingerprint, a surrogate in a label outside group_by fails only the write
    "surrogate-label-with-fingerprint": am("Poison", labels={"instance": "db-\udfff"}, fingerprint="0123456789abcdef"),
    # ... and in an annotation
    "surrogate-annotation": am("Poison", annotations={"summary": "\udc80 broken"}),
    # a fingerprint wider than the column: MariaDB refuses the row ("Data too long")
    "long-fingerprint": am("Poison", fingerprint="f" * (FINGERPRINT_MAX + 1)),
    # a time that overflows when moved to UTC
    "time-overflow": am("Poison", startsAt="9999-12-31T23:59:59-01:00"),
    # legacy tags that are not an object
    "legacy-tags-array": json.dumps({"ruleId": 4, "ruleName": "Poison", "state": "alerting",
                                     "tags": ["a", "b"]}).encode(),
    # legacy evalMatches whose metric has a lone surrogate: the `values` annotation carries it
    "legacy-surrogate-metric": json.dumps({"ruleId": 4, "ruleName": "Poison", "state": "alerting",
                                           "evalMatches": [{"metric": "\ud800", "value": 1}]}).encode(),
}


def raw_rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(grafana_alerts.c.id, grafana_alerts.c.processed_at, grafana_alerts.c.process_error)
            .order_by(grafana_alerts.c.id))]


def alertnames(db_url: str) -> list[str]:
    result = invoke("list", "--status", "all", "-o", "json", db=db_url)
    assert result.exit_code == 0, result.output
    return sorted(i["alertname"] for i in json.loads(result.output))


def receive(engine, bodies) -> None:
    """POSTs each body to a receiver on `engine`, as Alertmanager does; each is stored (200)."""
    receiver = Receiver(engine, max_body_bytes=1 << 20, write_timeout=5.0, clock=lambda: RECEIVED)
    receiver.start()
    try:
        for body in bodies:
            response = call(receiver, "POST", "/webhook/alertmanager", body, {"Content-Type": "application/json"})
            assert response.status == 200, response.body
    finally:
        receiver.stop()


@pytest.mark.parametrize("poison", POISON, ids=list(POISON))
def test_poison_row_between_good_ones_through_receiver_and_process(engine, db_url, poison):
    receive(engine, [am("Before"), POISON[poison], am("After")])

    result = invoke("process", "-o", "json", db=db_url)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["rows"], summary["opened"], summary["errors"]) == (3, 2, 1)
    assert alertnames(db_url) == ["After", "Before"]
    before, bad, after = raw_rows(engine)
    assert before["process_error"] is None and after["process_error"] is None
    assert bad["processed_at"] is not None and bad["process_error"]
    assert "Traceback" not in bad["process_error"]
    again = invoke("process", "-o", "json", db=db_url)
    assert json.loads(again.output)["rows"] == 0  # nothing left, nothing retried
    # the what-if reads the same rows and skips the poison one the same way
    simulated = invoke("simulate", "--group-by", "alertname", "--since", "2026-01-01T00:00:00Z", "-o", "json",
                       db=db_url)
    assert simulated.exit_code == 0, simulated.output
    assert json.loads(simulated.output)["unparsable_rows"] == 1


def test_poison_row_in_replay_process(engine, db_url, tmp_path):
    lines = [am("Before"), POISON["surrogate-label"], POISON["long-fingerprint"], am("After")]
    (tmp_path / "history.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = invoke("replay", str(tmp_path / "history.jsonl"), "--process", "-o", "json", db=db_url)
    assert result.exit_code == 0, result.output
    processed = json.loads(result.output)["processed"]
    assert (processed["rows"], processed["opened"], processed["errors"]) == (4, 2, 2)
    assert alertnames(db_url) == ["After", "Before"]
    errors = [r["process_error"] for r in raw_rows(engine)]
    assert errors[0] is None and errors[3] is None
    assert "lone surrogate" in errors[1] and "longer than 64" in errors[2]
    assert all(r["processed_at"] is not None for r in raw_rows(engine))


def _explode_on(label: str, monkeypatch) -> None:
    """`decide` raises for events carrying `label`: a stand-in for a bug the next payload finds."""
    real = grouping.decide

    def decide(current, event, **kw):
        if label in event.labels:
            raise RuntimeError("boom")
        return real(current, event, **kw)

    monkeypatch.setattr(grouping, "decide", decide)


def _half_poisoned() -> bytes:
    # Two alerts of one row: the first would open an incident, the second cannot be decided.
    doc = json.loads(am("Half"))
    second = dict(doc["alerts"][0], labels={**doc["alerts"][0]["labels"], "boom": "1"})
    doc["alerts"].append(second)
    return json.dumps(doc).encode()


@pytest.mark.parametrize("command", ["process", "replay"])
def test_a_row_failing_half_way_through_its_events_applies_none_of_them(engine, db_url, tmp_path, monkeypatch,
                                                                        command):
    _explode_on("boom", monkeypatch)
    bodies = [am("Before"), _half_poisoned(), am("After")]
    if command == "process":
        receiver = Receiver(engine, max_body_bytes=1 << 20, write_timeout=5.0, clock=lambda: RECEIVED)
        receiver.start()
        try:
            for body in bodies:
                assert call(receiver, "POST", "/webhook/alertmanager", body).status == 200
        finally:
            receiver.stop()
        result = invoke("process", "-o", "json", db=db_url)
        summary = json.loads(result.output)
    else:
        (tmp_path / "h.jsonl").write_bytes(b"\n".join(bodies) + b"\n")
        result = invoke("replay", str(tmp_path / "h.jsonl"), "--process", "-o", "json", db=db_url)
        summary = json.loads(result.output)["processed"]
    assert result.exit_code == 0, result.output
    assert (summary["rows"], summary["alerts"], summary["opened"], summary["errors"]) == (3, 2, 2, 1)
    assert alertnames(db_url) == ["After", "Before"]  # "Half" was never opened by its first alert
    with engine.connect() as conn:
        assert conn.scalar(select(incident_alerts.c.id).where(incident_alerts.c.labels.like('%"Half"%'))) is None
        raw_ids = set(conn.scalars(select(incident_events.c.raw_alert_id)))
    rows = raw_rows(engine)
    assert rows[1]["process_error"] == "RuntimeError: boom" and rows[1]["processed_at"] is not None
    assert rows[1]["id"] not in raw_ids
    assert rows[0]["process_error"] is None and rows[2]["process_error"] is None


# Hypothesis: arbitrary JSON documents, and documents shaped like the payloads we read with
# arbitrary strings (lone surrogates included), go through parse → fingerprint → decide.

TEXT = st.text(st.characters(exclude_categories=()), max_size=12)  # Cs (surrogates) included
SMALL = st.sampled_from(["", "a", "api", "eu1", "HighCPU", "critical", "\ud800", "é", "x" * 70])
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | TEXT | SMALL,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT | SMALL, children, max_size=4),
    max_leaves=20,
)
TIMES = st.sampled_from(["2026-05-04T03:00:00Z", "2026-05-04T02:00:00.123456789+01:00", "0001-01-01T00:00:00Z",
                         "9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00", "", "yesterday"]) | TEXT
LABELS = st.dictionaries(st.sampled_from(["alertname", "cluster", "namespace", "service", "severity", "instance"])
                         | TEXT, SMALL | TEXT, max_size=6)
ALERT = st.fixed_dictionaries(
    {"status": st.sampled_from(["firing", "resolved"]), "labels": LABELS},
    optional={"annotations": st.dictionaries(TEXT, SMALL | TEXT | ANY_JSON, max_size=3), "startsAt": TIMES,
              "endsAt": TIMES, "fingerprint": SMALL | TEXT, "generatorURL": SMALL | TEXT | ANY_JSON,
              "silenceURL": SMALL | TEXT},
)
ALERT_LIST = st.fixed_dictionaries({"alerts": st.lists(ALERT, max_size=4)},
                                   optional={"version": st.sampled_from(["1", "4"]),
                                             "status": st.sampled_from(["firing", "resolved"]), "receiver": TEXT})
LEGACY = st.fixed_dictionaries(
    {"ruleName": SMALL | ANY_JSON, "state": st.sampled_from(["alerting", "ok", "no_data", "pending"]) | TEXT},
    optional={"ruleId": st.integers(0, 3) | ANY_JSON, "tags": ANY_JSON | st.dictionaries(TEXT, ANY_JSON),
              "evalMatches": st.lists(ANY_JSON, max_size=3) | ANY_JSON, "title": SMALL | ANY_JSON,
              "message": SMALL | ANY_JSON, "ruleUrl": SMALL | ANY_JSON},
)
DOCUMENTS = st.one_of(ANY_JSON, ALERT_LIST, LEGACY)


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.slow  # 400 examples
@given(st.lists(DOCUMENTS, min_size=1, max_size=6))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_json_document_yields_events_or_a_recorded_error(documents):
    # Rows in order against the same incidents: each is either a PayloadError (stored as the
    # row's process_error) or events whose decision never raises and whose text can be stored.
    states: dict = {}
    for n, doc in enumerate(documents):
        body = json.dumps(doc).encode()
        try:
            events = parse_body(body, RECEIVED + timedelta(minutes=n))
        except PayloadError as exc:
            assert _storable(error_text(exc)) and 0 < len(error_text(exc)) <= 1000
            continue
        for event in events:
            assert len(event.fingerprint) <= FINGERPRINT_MAX
            texts = [event.fingerprint, *event.labels, *event.labels.values(), *event.annotations,
                     *event.annotations.values(), *event.links.values()]
            assert all(_storable(t) for t in texts)
        decided = decide_row(states, events, group_by=GROUP_BY, reopen_window=timedelta(minutes=30))
        assert len(decided) == len(events)
        for _, fp, decision in decided:
            if decision.changed and decision.state is not None:
                states[fp] = decision.state
                assert _storable(decision.state.title)


@pytest.mark.parametrize("exc", [RuntimeError("\ud800 in a message"), PayloadError("x" * 5000), KeyError("k")])
def test_error_text_is_always_storable_and_short(exc):
    text = error_text(exc)
    assert _storable(text) and len(text) <= 1000
    assert isinstance(exc, PayloadError) or text.startswith(type(exc).__name__ + ": ")


def _refusing_long_alertnames(url: str):
    """A database (at the current schema) that refuses an incident whose alertname is longer than 8
    characters, as a database whose schema or settings differ from ours refuses a value: MariaDB
    by a narrower column (strict mode: 1406 "Data too long"), SQLite by a trigger."""
    from incidentctl.db.engine import make_engine
    from incidentctl.db.migrations import upgrade

    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("CREATE TRIGGER refuse BEFORE INSERT ON incidents WHEN length(NEW.alertname) > 8 "
                                 "BEGIN SELECT RAISE(ABORT, 'alertname too long'); END")
        else:
            conn.exec_driver_sql("ALTER TABLE incidents MODIFY alertname VARCHAR(8)")
    return engine


def test_a_row_the_database_refuses_is_marked_and_the_rows_behind_it_apply(empty_database_url):
    url = empty_database_url()
    engine = _refusing_long_alertnames(url)
    receive(engine, [am(name) for name in ("Before", "RefusedOne", "Between", "RefusedTwo", "After")])

    result = invoke("process", "-o", "json", db=url)

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["rows"], summary["opened"], summary["errors"]) == (5, 3, 2)
    assert alertnames(url) == ["After", "Before", "Between"]
    rows = raw_rows(engine)
    assert all(r["processed_at"] is not None for r in rows)
    assert [r["process_error"] is None for r in rows] == [True, False, True, False, True]
    refusal = rows[1]["process_error"]
    assert refusal.startswith("the database refused this row's changes: ")
    assert ("Data too long for column 'alertname'" in refusal) or ("alertname too long" in refusal), refusal
    again = invoke("process", "-o", "json", db=url)
    assert json.loads(again.output)["rows"] == 0  # nothing left, nothing retried
    engine.dispose()


def test_a_database_refusing_every_row_from_some_point_stops_process_with_one_line(empty_database_url):
    # One row it takes, then none: the rows from the first refused one stay queued, unmarked.
    from incidentctl.incidents.processor import REFUSED_IN_A_ROW
    from tests.support.processing import store

    url = empty_database_url()
    engine = _refusing_long_alertnames(url)
    names = ["Before"] + [f"RefusedNumber{i}" for i in range(REFUSED_IN_A_ROW + 3)]
    store(engine, [(RECEIVED + timedelta(seconds=i), am(name)) for i, name in enumerate(names)])

    result = invoke("process", "-o", "json", db=url)

    assert result.exit_code == 3, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output, result.output
    assert f"refused the changes of {REFUSED_IN_A_ROW} rows in a row" in result.output
    assert "they stay queued" in result.output
    rows = raw_rows(engine)
    assert rows[0]["processed_at"] is not None and rows[0]["process_error"] is None
    assert all(r["processed_at"] is None and r["process_error"] is None for r in rows[1:])
    assert alertnames(url) == ["Before"]
    with engine.begin() as conn:  # the database mended: a run applies every row left
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER refuse")
        else:
            conn.exec_driver_sql("ALTER TABLE incidents MODIFY alertname VARCHAR(255)")
    mended = invoke("process", "-o", "json", db=url)
    assert mended.exit_code == 0, mended.output
    assert (json.loads(mended.output)["opened"], json.loads(mended.output)["errors"]) == (len(names) - 1, 0)
    engine.dispose()


def test_the_last_queued_row_refused_alone_is_marked_rather_than_block_the_queue(empty_database_url):
    from tests.support.processing import store

    url = empty_database_url()
    engine = _refusing_long_alertnames(url)
    store(engine, [(RECEIVED, am("Before")), (RECEIVED + timedelta(seconds=1), am("RefusedLast"))])

    result = invoke("process", "-o", "json", db=url)

    assert result.exit_code == 0, result.output
    assert (json.loads(result.output)["opened"], json.loads(result.output)["errors"]) == (1, 1)
    assert [r["process_error"] is None for r in raw_rows(engine)] == [True, False]
    engine.dispose()


def test_replay_process_applies_the_rows_around_one_the_database_refuses(empty_database_url, tmp_path):
    url = empty_database_url()
    engine = _refusing_long_alertnames(url)
    (tmp_path / "history.jsonl").write_bytes(b"\n".join([am("Before"), am("RefusedLongName"), am("After")]) + b"\n")

    result = invoke("replay", str(tmp_path / "history.jsonl"), "--process", "-o", "json", db=url)

    assert result.exit_code == 0, result.output
    replayed = json.loads(result.output)
    processed = replayed["processed"]
    assert (replayed["stored"], processed["rows"], processed["opened"], processed["errors"]) == (3, 3, 2, 1)
    assert alertnames(url) == ["After", "Before"]
    errors = [r["process_error"] for r in raw_rows(engine)]
    assert errors[0] is None and errors[2] is None
    assert errors[1].startswith("the database refused this row's changes: ")
    engine.dispose()


class CountedLease(Lease):
    """The applier lease, counting the transactions that fenced on it (each committed batch)."""

    def __init__(self, engine):
        super().__init__(engine, heartbeat=False)
        self.fenced = 0

    def fence(self, conn):
        self.fenced += 1
        super().fence(conn)


def test_once_the_refused_row_is_found_the_rows_after_it_go_in_whole_batches(empty_database_url):
    from tests.support.processing import process_all, store

    url = empty_database_url()
    engine = _refusing_long_alertnames(url)
    names = ["First", "RefusedLongName"] + [f"Next{i}" for i in range(40)]
    store(engine, [(RECEIVED + timedelta(seconds=i), am(name)) for i, name in enumerate(names)])
    lease = CountedLease(engine)

    summary = process_all(engine, lease=lease)

    assert (summary.rows, summary.opened, summary.errors) == (len(names), len(names) - 1, 1)
    # First alone, then Next0 alone (which tells the refusal is the row's), the mark, and the other
    # 39 rows in one batch: not a transaction a row for the whole batch.
    assert lease.fenced == 4
    assert [r["process_error"] is None for r in raw_rows(engine)] == [True, False] + [True] * 40
    engine.dispose()
