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
from sqlalchemy import func, select, text

from asgi import call
from incidentctl.database import make_engine
from incidentctl.receiver.app import Receiver
from incidentctl.receiver.auth import AuthPolicy
from incidentctl.schema import grafana_alerts

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


def count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(grafana_alerts)).scalar_one()


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
    assert count(engine) == 0
    assert call(receiver, "POST", "/webhook/grafana", b"x" * 64 * 1024).status == 400  # at the limit: kept


def test_other_paths_and_methods(receiver):
    assert call(receiver, "GET", "/webhook/grafana").status == 405
    assert call(receiver, "GET", "/webhook/grafana").headers["allow"] == "POST, PUT"
    assert call(receiver, "POST", "/health").status == 405
    missing = call(receiver, "GET", "/nope")
    assert (missing.status, missing.json()["error"]) == (404, "no such endpoint: /nope")
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
        assert count(engine) == 1
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
