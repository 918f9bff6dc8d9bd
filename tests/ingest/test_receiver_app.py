"""The receiver app in-process (no socket), on SQLite and MariaDB: what is stored, byte for
byte, and what each kind of request is answered."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import select, text

from incidentctl.db.engine import make_engine
from incidentctl.db.schema import grafana_alerts
from incidentctl.ingest.receiver.app import Receiver
from incidentctl.ingest.receiver.auth import AuthPolicy, sign
from tests.support.asgi import call
from tests.support.factories import count_rows

FIXED = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=timezone.utc)
GRAFANA = "grafana/grafana9_zulip_firing_3alerts_2rules.json"


def make_receiver(engine, **kw):
    options = dict(max_body_bytes=64 * 1024, write_timeout=5.0, clock=lambda: FIXED)
    options.update(kw)
    receiver = Receiver(engine, **options)
    receiver.start()
    return receiver


@pytest.fixture
def receiver(engine):
    r = make_receiver(engine)
    yield r
    r.stop()


def rows(engine):
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(grafana_alerts).order_by(grafana_alerts.c.id))]


def test_fixture_bodies_stored_byte_for_byte_with_their_label(receiver, engine, fixture_bodies):
    answers = {}
    for name, body in fixture_bodies.items():
        r = call(receiver, "POST", "/webhook/grafana", body,
                 {"content-type": "application/json", "user-agent": "Grafana"})
        assert r.status == 200, (name, r.body)
        answers[name] = r.json()
    stored = {row["id"]: row for row in rows(engine)}
    assert len(stored) == len(fixture_bodies)
    for name, body in fixture_bodies.items():
        row = stored[answers[name]["id"]]
        assert row["body"] == body, name
        assert row["body_size"] == len(body)
        assert row["received_at"] == FIXED  # microseconds kept, UTC
        assert (row["remote_addr"], row["user_agent"], row["content_type"]) == (
            "203.0.113.7", "Grafana", "application/json")
        assert row["source"] == answers[name]["source"] == name.split("/")[0]
        assert row["processed_at"] is None and row["parse_error"] is None


def test_alias_path_put_and_chunked_body(receiver, engine, fixture_bodies):
    body = fixture_bodies["alertmanager/am_v4_k8s_resolved_single_truncatedAlerts.json"]
    r = call(receiver, "PUT", "/webhook/alertmanager/", chunks=[body[:100], body[100:1000], body[1000:]])
    assert r.status == 200
    assert rows(engine)[0]["body"] == body


# (case, body, status) — every one is stored, with its parse error
STORED_BUT_NOT_KNOWN = [
    ("invalid json", b"{nope", 400),
    ("empty", b"", 400),
    ("not utf-8", b"\xff\xfe\x00garbage", 400),
    ("array", b"[]", 400),
    ("deep nesting", b"[" * 30_000 + b"]" * 30_000, 400),
    ("custom template object", b'{"text": "disk full"}', 202),
    ("wrong types", json.dumps({"version": "4", "alerts": [{"status": "firing", "labels": {"a": 1}}]}).encode(), 202),
]


@pytest.mark.parametrize("case,body,status", STORED_BUT_NOT_KNOWN, ids=[c[0] for c in STORED_BUT_NOT_KNOWN])
def test_unknown_bodies_are_stored_with_their_error(receiver, engine, case, body, status):
    r = call(receiver, "POST", "/webhook/grafana", body)
    assert r.status == status
    answer = r.json()
    assert answer["stored"] is True and answer["parse_error"]
    (row,) = rows(engine)
    assert (row["id"], row["body"], row["parse_error"]) == (answer["id"], body, answer["parse_error"])
    assert call(receiver, "GET", "/health").status == 200


def test_body_over_the_limit_is_refused_unread_and_not_stored(receiver, engine):
    big = b"x" * (64 * 1024 + 1)
    declared = call(receiver, "POST", "/webhook/grafana", big, {"content-length": str(len(big))})
    streamed = call(receiver, "POST", "/webhook/grafana", chunks=[big[:40_000], big[40_000:]])
    assert (declared.status, streamed.status) == (413, 413)
    assert declared.headers["connection"] == "close"
    assert count_rows(engine, grafana_alerts) == 0
    assert call(receiver, "POST", "/webhook/grafana", b"x" * 64 * 1024).status == 400  # at the limit: kept


def test_other_paths_and_methods(receiver):
    assert call(receiver, "GET", "/webhook/grafana").status == 405
    assert call(receiver, "GET", "/webhook/grafana").headers["allow"] == "POST, PUT"
    assert call(receiver, "POST", "/health").status == 405
    assert call(receiver, "POST", "/health").headers["allow"] == "GET, HEAD"
    for method in ("GET", "POST", "PUT"):  # an unknown path is a 404 whatever the method
        missing = call(receiver, method, "/webhook/grafna", b"{}")
        assert missing.status == 404, method
        assert missing.json()["error"] == ("no such endpoint: /webhook/grafna; webhooks go to POST /webhook/grafana "
                                           "(or /webhook/alertmanager)")
    root = call(receiver, "GET", "/").json()
    assert root["name"] == "incidentctl" and "POST /webhook/grafana" in root["endpoints"]


def test_metrics_count_requests_bodies_bytes(receiver, fixture_bodies):
    body = fixture_bodies[GRAFANA]
    call(receiver, "POST", "/webhook/grafana", body)
    call(receiver, "POST", "/webhook/grafana", b"nope")
    metrics = call(receiver, "GET", "/metrics")
    assert metrics.status == 200 and metrics.headers["content-type"].startswith("text/plain")
    text_ = metrics.body.decode()
    assert 'incidentctl_http_requests_total{code="200",endpoint="webhook"} 1.0' in text_
    assert 'incidentctl_http_requests_total{code="400",endpoint="webhook"} 1.0' in text_
    assert 'incidentctl_webhook_bodies_stored_total{source="grafana"} 1.0' in text_
    assert f"incidentctl_webhook_bytes_stored_total {float(len(body) + 4)}" in text_
    assert 'incidentctl_http_request_duration_seconds_count{endpoint="webhook"} 2.0' in text_


def test_auth_refusals_are_401_and_not_stored(engine, fixture_bodies):
    policy = AuthPolicy(basic_user="grafana", basic_password="pw")
    receiver = make_receiver(engine, auth=policy)
    try:
        body = fixture_bodies[GRAFANA]
        missing = call(receiver, "POST", "/webhook/grafana", body)
        wrong = call(receiver, "POST", "/webhook/grafana", body,
                     {"authorization": "Basic " + base64.b64encode(b"grafana:nope").decode()})
        right = call(receiver, "POST", "/webhook/grafana", body,
                     {"authorization": "Basic " + base64.b64encode(b"grafana:pw").decode()})
        assert (missing.status, wrong.status, right.status) == (401, 401, 200)
        assert missing.headers["www-authenticate"] == 'Basic realm="incidentctl"'
        assert "pw" not in wrong.body.decode().replace("wrong", "")
        assert count_rows(engine, grafana_alerts) == 1
    finally:
        receiver.stop()


def test_health_is_503_when_the_database_is_unreachable(tmp_path):
    engine = make_engine("mysql+pymysql://root@127.0.0.1:1/nothing", connect_timeout=1)
    receiver = make_receiver(engine)
    try:
        started = time.monotonic()
        health = call(receiver, "GET", "/health")
        webhook = call(receiver, "POST", "/webhook/grafana", b"{}")
        assert (health.status, webhook.status) == (503, 503)
        assert time.monotonic() - started < 5
        assert "not stored, retry" in webhook.json()["error"]
        assert webhook.headers["retry-after"] == "5"
    finally:
        receiver.stop()
        engine.dispose()


class TableLock:
    """Holds a write lock on grafana_alerts from another connection, as a long job would."""

    def __init__(self, db_url: str):
        self.db_url = db_url

    def __enter__(self):
        if self.db_url.startswith("sqlite"):
            self.conn = sqlite3.connect(self.db_url.split("///", 1)[1], isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.engine = make_engine(self.db_url)
            self.conn = self.engine.connect()
            self.conn.execute(text("LOCK TABLES grafana_alerts WRITE"))
        return self

    def __exit__(self, *exc):
        if self.db_url.startswith("sqlite"):
            self.conn.execute("ROLLBACK")
            self.conn.close()
        else:
            self.conn.execute(text("UNLOCK TABLES"))
            self.conn.close()
            self.engine.dispose()


def test_a_busy_database_gives_503_for_queued_rows_and_never_stores_them(engine, db_url, fixture_bodies):
    receiver = make_receiver(engine, write_timeout=0.5)
    body = fixture_bodies[GRAFANA]
    results = {}

    def post(key):
        started = time.monotonic()
        results[key] = (call(receiver, "POST", "/webhook/grafana", body), time.monotonic() - started)

    try:
        with TableLock(db_url):
            first = threading.Thread(target=post, args=("in-flight",))
            first.start()
            time.sleep(0.3)  # the writer is now blocked on the lock with the first row
            post("queued")  # waits behind it, gives up after write_timeout
            time.sleep(0.5)
        first.join(15)
        in_flight, _ = results["in-flight"]
        queued, queued_wait = results["queued"]
        assert queued.status == 503 and queued_wait < 2.0
        assert in_flight.status == 200  # the row being written when the lock went away
        assert [r["id"] for r in rows(engine)] == [in_flight.json()["id"]]  # the 503 one never stored
        assert call(receiver, "POST", "/webhook/grafana", body).status == 200  # recovered
    finally:
        receiver.stop()


def gathered(receiver, requests: list[tuple[str, bytes, dict]]) -> list:
    """Answers to `requests` (path, body, headers) sent at once to a receiver whose writer starts
    only when all of them wait in its queue: they are committed as one group."""
    answers: list = [None] * len(requests)

    def post(n: int) -> None:
        path, body, headers = requests[n]
        answers[n] = call(receiver, "POST", path, body, headers)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(requests))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while receiver.writer._queue.qsize() < len(requests):
        assert time.monotonic() < deadline, "requests did not reach the writer"
        time.sleep(0.01)
    receiver.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_a_body_just_under_the_limit_is_stored_with_its_group(engine, fixture_bodies):
    # A 12 MiB body is 24 MiB as a hex literal, beyond MariaDB's 16 MiB max_allowed_packet: it is
    # sent ahead in pieces, and the small bodies committed in the same group are stored with it.
    limit = 12 << 20
    head, tail = b'{"version": "4", "alerts": [], "pad": "', b'"}'
    big = head + b'\\"' * ((limit - 1 - len(head) - len(tail)) // 2) + tail
    big += b" " * (limit - 1 - len(big))  # exactly one byte under the limit
    small = [fixture_bodies[GRAFANA], b'{"text": "disk full"}', fixture_bodies[GRAFANA] + b" "]
    bodies = [small[0], big, small[1], small[2]]
    receiver = Receiver(engine, max_body_bytes=limit, write_timeout=30.0, clock=lambda: FIXED)
    try:
        answers = gathered(receiver, [("/webhook/grafana", b, {}) for b in bodies])
    finally:
        receiver.stop()
    assert [a.status // 100 for a in answers] == [2, 2, 2, 2], [a.body[:200] for a in answers]
    stored = {row["id"]: row["body"] for row in rows(engine)}
    assert [stored[a.json()["id"]] for a in answers] == bodies
    assert len(big) == limit - 1


@pytest.fixture
def poison_trigger(engine, backend):
    """A trigger refusing any row whose body is b"poison": a failure one row causes."""
    with engine.begin() as conn:
        if backend == "sqlite":
            conn.execute(text("CREATE TRIGGER poison BEFORE INSERT ON grafana_alerts WHEN NEW.body = X'706f69736f6e' "
                              "BEGIN SELECT RAISE(ABORT, 'poison body refused'); END"))
        else:
            conn.execute(text("CREATE TRIGGER poison BEFORE INSERT ON grafana_alerts FOR EACH ROW BEGIN "
                              "IF NEW.body = X'706f69736f6e' THEN "
                              "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poison body refused'; END IF; END"))
    yield
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER poison"))


def test_one_refused_row_does_not_answer_for_its_group(engine, fixture_bodies, poison_trigger, caplog):
    body = fixture_bodies[GRAFANA]
    receiver = Receiver(engine, max_body_bytes=64 * 1024, write_timeout=5.0, clock=lambda: FIXED)
    try:
        with caplog.at_level("DEBUG", logger="incidentctl.ingest.receiver.writer"):
            answers = gathered(receiver, [("/webhook/grafana", b, {}) for b in (body, b"poison", body + b" ", b"{}")])
        assert [a.status for a in answers] == [200, 503, 200, 202]
        assert "poison body refused" in answers[1].json()["error"] and answers[1].headers["retry-after"] == "5"
        stored = {row["id"]: row["body"] for row in rows(engine)}
        assert sorted(stored.values()) == sorted([body, body + b" ", b"{}"])
        assert [stored[answers[n].json()["id"]] for n in (0, 2, 3)] == [body, body + b" ", b"{}"]
        assert "writing them one by one" in caplog.text
        assert call(receiver, "POST", "/webhook/grafana", body).status == 200  # and it goes on
    finally:
        receiver.stop()


HMAC_TS = AuthPolicy(hmac_secret="hmac-key-123", hmac_timestamp_header="X-Grafana-Alerting-Timestamp")


def _signed(body: bytes, ts: int, secret: str = "hmac-key-123") -> dict[str, str]:
    return {"x-grafana-alerting-timestamp": str(ts),
            "x-grafana-alerting-signature": sign(secret, f"{ts}:".encode() + body)}


def test_a_replayed_signed_request_is_answered_200_and_stored_once(engine, fixture_bodies):
    body = fixture_bodies[GRAFANA]
    ts = int(FIXED.timestamp())
    first, second = make_receiver(engine, auth=HMAC_TS), make_receiver(engine, auth=HMAC_TS)  # two replicas
    try:
        original = call(first, "POST", "/webhook/grafana", body, _signed(body, ts))
        again = call(first, "POST", "/webhook/grafana", body, _signed(body, ts))
        elsewhere = call(second, "POST", "/webhook/grafana", body, _signed(body, ts))
        resent = call(second, "POST", "/webhook/grafana", body, _signed(body, ts + 1))  # signed anew: a new request
        assert (original.status, again.status, elsewhere.status, resent.status) == (200, 200, 200, 200)
        assert original.json()["stored"] is True and "duplicate" not in original.json()
        for replay in (again, elsewhere):
            assert replay.json() == {"stored": True, "duplicate": True, "source": "grafana", "alerts": 3,
                                     "status": "firing"}
        assert [row["id"] for row in rows(engine)] == [original.json()["id"], resent.json()["id"]]
        for receiver in (first, second):
            assert "incidentctl_webhook_replays_total 1.0" in call(receiver, "GET", "/metrics").body.decode()
    finally:
        first.stop()
        second.stop()


def test_the_same_signed_request_twice_in_one_group_is_stored_once(engine, fixture_bodies):
    body = fixture_bodies[GRAFANA]
    headers = _signed(body, int(FIXED.timestamp()))
    receiver = Receiver(engine, max_body_bytes=64 * 1024, write_timeout=5.0, clock=lambda: FIXED, auth=HMAC_TS)
    try:
        answers = gathered(receiver, [("/webhook/grafana", body, headers)] * 3)
    finally:
        receiver.stop()
    assert [a.status for a in answers] == [200, 200, 200]
    assert sorted("duplicate" in a.json() for a in answers) == [False, True, True]
    assert count_rows(engine, grafana_alerts) == 1


def test_without_a_timestamp_identical_signed_bodies_are_each_stored(engine, fixture_bodies):
    # A signature over the body alone never expires, and Grafana re-sends identical bodies on
    # purpose (repeat_interval): nothing can tell a replay, so each is stored.
    body = fixture_bodies[GRAFANA]
    receiver = make_receiver(engine, auth=AuthPolicy(hmac_secret="hmac-key-123"))
    try:
        headers = {"x-grafana-alerting-signature": sign("hmac-key-123", body)}
        assert [call(receiver, "POST", "/webhook/grafana", body, headers).status for _ in range(2)] == [200, 200]
        assert count_rows(engine, grafana_alerts) == 2
    finally:
        receiver.stop()


def test_every_refusal_is_one_warning_line_without_secrets(engine, fixture_bodies, caplog):
    token = "bearer-s3cret-value"
    receiver = make_receiver(engine, auth=AuthPolicy(bearer_token=token))
    body = fixture_bodies[GRAFANA]
    auth = {"authorization": f"Bearer {token}"}
    # (method, path, body, headers, status, what the line says)
    cases = [
        ("POST", "/webhook/grafana", body, {"authorization": "Bearer wrong-guess-4711"}, 401,
         f"(body {len(body)} bytes declared): unauthorized: wrong bearer token"),
        ("POST", "/webhook/grafana", body, {}, 401, "unauthorized: missing Authorization header"),
        ("POST", f"/hooks/{token}", b"{}", auth, 404, "no such endpoint: /hooks/***; webhooks go to POST"),
        ("GET", "/webhook/grafana", b"", auth, 405, "/webhook/grafana takes POST or PUT, not GET"),
        ("POST", "/webhook/grafana", b"x" * (64 * 1024 + 1), auth, 413, "body larger than 65536 bytes"),
        ("POST", "/webhook/grafana", b"{nope", auth, 400, "(body 5 bytes): stored as #"),
    ]
    try:
        for method, path, data, headers, status, says in cases:
            caplog.clear()
            with caplog.at_level("WARNING", logger="incidentctl.ingest.receiver"):
                headers = {**headers, "content-length": str(len(data))}
                assert call(receiver, method, path, data, headers).status == status, (method, path)
            (line,) = [r.getMessage() for r in caplog.records]
            assert line.startswith(f"refused {status} {method} ") and "from 203.0.113.7" in line, line
            assert says in line, line
            assert token not in line and "wrong-guess-4711" not in line, line
        caplog.clear()
        with caplog.at_level("WARNING", logger="incidentctl.ingest.receiver"):
            assert call(receiver, "POST", "/webhook/grafana", body, auth).status == 200
        assert caplog.records == []  # a stored webhook is not a refusal
    finally:
        receiver.stop()


def test_a_503_is_logged_with_its_reason(caplog):
    engine = make_engine("mysql+pymysql://root:db-pass-42@127.0.0.1:1/nothing", connect_timeout=1)
    receiver = make_receiver(engine)
    try:
        with caplog.at_level("WARNING", logger="incidentctl.ingest.receiver.app"):
            assert call(receiver, "POST", "/webhook/grafana", b"{}").status == 503
            assert call(receiver, "GET", "/health").status == 503
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 2 and "db-pass-42" not in caplog.text
        assert lines[0].startswith("refused 503 POST /webhook/grafana from 203.0.113.7 (body 2 bytes): database ")
        assert "not stored, retry" in lines[0]
        assert lines[1].startswith("refused 503 GET /health from 203.0.113.7 (body unread): unhealthy: database ")
    finally:
        receiver.stop()
        engine.dispose()


def test_an_unexpected_error_in_the_writer_fails_its_rows_and_the_writer_goes_on(engine):
    from concurrent.futures import Future

    from incidentctl.errors import DatabaseUnavailable
    from incidentctl.ingest.archive import raw_alert
    from incidentctl.ingest.receiver.writer import GroupCommitWriter

    calls = []

    def on_commit(rows):  # a bug after the commit, the first time only
        calls.append(rows)
        if len(calls) == 1:
            raise RuntimeError("bug")

    writer = GroupCommitWriter(engine, on_commit=on_commit)
    writer.start()
    try:
        first: Future = writer.submit(raw_alert(b"{}", received_at=FIXED))
        with pytest.raises(DatabaseUnavailable, match="bug"):
            first.result(10)
        assert isinstance(writer.submit(raw_alert(b"{}", received_at=FIXED)).result(10), int)
    finally:
        writer.stop()


def test_a_group_commit_that_conflicts_is_written_again_and_counted(engine):
    from incidentctl.ingest.archive import raw_alert
    from incidentctl.ingest.receiver.writer import GroupCommitWriter
    from tests.support.conflicts import conflicting

    codes: list[int] = []
    writer = GroupCommitWriter(engine, on_conflict=codes.append)
    writer.start()
    try:
        with conflicting(engine, "INSERT INTO grafana_alerts", times=2, code=1205) as failed:
            row_id = writer.submit(raw_alert(b'{"a": 1}', received_at=FIXED)).result(30)
    finally:
        writer.stop()
    assert isinstance(row_id, int) and len(failed) == 2 and codes == [1205, 1205]
    assert count_rows(engine, grafana_alerts) == 1


def test_a_conflict_answers_2xx_after_the_retry_and_shows_in_metrics(receiver, engine, fixture_bodies):
    from tests.support.conflicts import conflicting

    with conflicting(engine, "INSERT INTO grafana_alerts") as failed:
        response = call(receiver, "POST", "/webhook/grafana", fixture_bodies[GRAFANA])
    assert response.status == 200 and len(failed) == 1 and len(rows(engine)) == 1
    metrics = call(receiver, "GET", "/metrics").body.decode()
    assert 'incidentctl_database_conflicts_retried_total{code="1213"} 1.0' in metrics
    assert "incidentctl_database_errors_total 0.0" in metrics


@pytest.mark.backends("mysql")
@pytest.mark.parametrize(("server_does", "status", "stored"), [("COMMIT", 200, 1), ("ROLLBACK", 503, 0)])
def test_a_commit_whose_answer_was_lost_is_answered_by_what_the_server_did(
        receiver, engine, fixture_bodies, caplog, server_does, status, stored):
    # As when a Galera node stalls a COMMIT past the client's read timeout, then commits: a 503
    # would make the sender store the body a second time.
    from tests.support.lost_answers import lose_the_answer

    with lose_the_answer(engine, server_does) as lost:
        response = call(receiver, "POST", "/webhook/grafana", fixture_bodies[GRAFANA])
    assert len(lost) == 1 and response.status == status
    assert len(rows(engine)) == stored
    if stored:
        assert response.json()["id"] == rows(engine)[0]["id"]
    said = "it committed: answered as stored" if stored else "it did not commit: answered 503"
    assert any("the answer to the commit of 1 row(s) was lost" in r.message and said in r.message
               for r in caplog.records)
    outcome = "committed" if stored else "rolled_back"
    metrics = call(receiver, "GET", "/metrics").body.decode()
    assert f'incidentctl_database_commit_answers_lost_total{{outcome="{outcome}"}} 1.0' in metrics
