"""`incidentctl serve` as a real process over real HTTP, on SQLite and MariaDB."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.engine import make_url

from incidentctl.db.schema import grafana_alerts
from incidentctl.ingest.archive import largest_body_for
from incidentctl.ingest.receiver.auth import sign
from tests.support.factories import count_rows
from tests.support.servers import ServeProcess, TcpProxy, serve_env

pytestmark = pytest.mark.slow

GRAFANA = "grafana/grafana9_zulip_firing_3alerts_2rules.json"


@pytest.fixture
def server(incidentctl_bin, cli_env, tmp_path):
    with ServeProcess(incidentctl_bin, serve_env(cli_env), tmp_path / "serve.log") as s:
        yield s


def stored(engine, row_id):
    with engine.connect() as conn:
        return conn.execute(select(grafana_alerts).where(grafana_alerts.c.id == row_id)).one()._mapping


def test_every_fixture_posted_over_http_reads_back_byte_identical(server, engine, fixture_bodies):
    for name, body in fixture_bodies.items():
        r = requests.post(server.url + "/webhook/grafana", data=body,
                          headers={"Content-Type": "application/json", "User-Agent": "Grafana"})
        assert r.status_code == 200, (name, r.text)
        row = stored(engine, r.json()["id"])
        assert row["body"] == body, name
        assert (row["source"], row["remote_addr"], row["user_agent"]) == (name.split("/")[0], "127.0.0.1", "Grafana")
    assert count_rows(engine, grafana_alerts) == len(fixture_bodies)


def _raw_post(url: str, path: str, head: bytes, body_parts: list[bytes], pause: float = 0.0) -> bytes:
    """A hand-written HTTP request (for chunked or slow bodies); returns the raw response."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
        for part in body_parts:
            s.sendall(part)
            time.sleep(pause)
        response = b""
        while chunk := s.recv(65536):
            response += chunk
            if b"\r\n\r\n" in response and response.endswith(b"\n"):
                break
        return response


def _chunked(data: bytes, size: int = 1 << 20) -> list[bytes]:
    parts = [b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size]) for i in range(0, len(data), size)]
    return parts + [b"0\r\n\r\n"]


def test_bad_input_matrix_over_http(server, engine, fixture_bodies):
    eleven_mib = b"x" * (11 << 20)
    # (case, body, headers, status, kept): every case is followed by a health check.
    cases = [
        ("invalid JSON", b'{"alerts": [', {"Content-Type": "application/json"}, 400, True),
        ("empty body", b"", {"Content-Type": "application/json"}, 400, True),
        ("non-UTF-8 bytes", b'{"title": "\xff\xfe"}', {"Content-Type": "application/json"}, 400, True),
        ("JSON array", b"[1,2,3]", {}, 400, True),
        ("JSON scalar", b"true", {}, 400, True),
        ("deeply nested JSON", b"{\"a\":" * 100_000 + b"1" + b"}" * 100_000, {}, 400, True),
        ("wrong types", json.dumps({"version": "4", "alerts": [{"status": 1, "labels": []}]}).encode(), {}, 202, True),
        ("custom template text", b"Alert: CPU high on web-1", {"Content-Type": "text/plain"}, 400, True),
        ("missing Content-Type", fixture_bodies[GRAFANA], {"Content-Type": ""}, 200, True),
        ("11 MiB body", eleven_mib, {"Content-Type": "application/json"}, 413, False),
    ]
    for case, body, headers, status, kept in cases:
        before = count_rows(engine, grafana_alerts)
        r = requests.post(server.url + "/webhook/grafana", data=body, headers=headers)
        assert r.status_code == status, (case, r.text)
        if kept:
            assert stored(engine, r.json()["id"])["body"] == body, case
            assert count_rows(engine, grafana_alerts) == before + 1, case
        else:
            assert count_rows(engine, grafana_alerts) == before, case
        assert requests.get(server.url + "/health").status_code == 200, f"unhealthy after {case}"
    # 11 MiB sent chunked, with no Content-Length: refused once the limit is passed
    before = count_rows(engine, grafana_alerts)
    response = _raw_post(server.url, "/webhook/grafana", b"Transfer-Encoding: chunked\r\n", _chunked(eleven_mib))
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert count_rows(engine, grafana_alerts) == before
    assert requests.get(server.url + "/health").status_code == 200


def test_auth_bearer_and_hmac_with_timestamp_over_http(incidentctl_bin, cli_env, tmp_path, engine, fixture_bodies):
    env = serve_env(cli_env, INCIDENTCTL_AUTH_BEARER_TOKEN="tok-123", INCIDENTCTL_HMAC_SECRET="hk",
                    INCIDENTCTL_HMAC_TIMESTAMP_HEADER="X-Grafana-Alerting-Timestamp")
    body = fixture_bodies[GRAFANA]

    def headers(token="tok-123", secret="hk", ts=None):
        ts = int(time.time()) if ts is None else ts
        return {"Authorization": f"Bearer {token}", "X-Grafana-Alerting-Timestamp": str(ts),
                "X-Grafana-Alerting-Signature": sign(secret, f"{ts}:".encode() + body)}

    with ServeProcess(incidentctl_bin, env, tmp_path / "serve.log") as server:
        url = server.url + "/webhook/grafana"
        cases = [
            ("missing token", {}, 401),
            ("wrong token", headers(token="nope"), 401),
            ("wrong HMAC", headers(secret="other"), 401),
            ("stale HMAC timestamp", headers(ts=int(time.time()) - 3600), 401),
            ("all right", headers(), 200),
        ]
        for case, hdrs, status in cases:
            r = requests.post(url, data=body, headers=hdrs)
            assert r.status_code == status, (case, r.text)
        assert count_rows(engine, grafana_alerts) == 1
        log = server.log()
    assert "tok-123" not in log and "hk" not in log.replace("hk=", "")


def test_twenty_threads_fifty_requests_each_store_exactly_one_thousand_rows(server, engine, fixture_bodies):
    body = fixture_bodies[GRAFANA]

    def client(n: int) -> list[int]:
        with requests.Session() as s:
            ids = []
            for _ in range(50):
                r = s.post(server.url + "/webhook/grafana", data=body, headers={"Content-Type": "application/json"})
                assert r.status_code == 200, r.text
                ids.append(r.json()["id"])
            return ids

    with ThreadPoolExecutor(20) as pool:
        ids = [i for chunk in pool.map(client, range(20)) for i in chunk]
    assert len(ids) == len(set(ids)) == 1000
    assert count_rows(engine, grafana_alerts) == 1000


def test_sigterm_lets_the_in_flight_request_finish(incidentctl_bin, cli_env, tmp_path, engine, fixture_bodies):
    body = fixture_bodies[GRAFANA]
    server = ServeProcess(incidentctl_bin, serve_env(cli_env), tmp_path / "serve.log")
    parts = [body[i:i + 500] for i in range(0, len(body), 500)]
    result = {}
    sender = threading.Thread(target=lambda: result.setdefault("response", _raw_post(
        server.url, "/webhook/grafana", b"Content-Length: %d\r\nContent-Type: application/json\r\n" % len(body),
        parts, pause=0.3)))
    sender.start()
    time.sleep(0.5)  # the request is in flight: headers sent, body trickling in
    started = time.monotonic()
    code = server.terminate()
    sender.join(10)
    assert code == 0
    assert time.monotonic() - started < 10
    response = result["response"]
    assert response.startswith(b"HTTP/1.1 200"), response[:300]
    row_id = json.loads(response.split(b"\r\n\r\n", 1)[1])["id"]
    assert stored(engine, row_id)["body"] == body


@pytest.mark.backends("mysql")
def test_database_down_gives_503_quickly_and_the_receiver_recovers(incidentctl_bin, cli_env, tmp_path, db_url,
                                                                   engine, fixture_bodies):
    real = make_url(db_url)
    proxy = TcpProxy(real.host, real.port or 3306)  # starts down: the database is "stopped"
    env = serve_env(cli_env, INCIDENTCTL_DATABASE_URL=real.set(host="127.0.0.1", port=proxy.port)
                    .render_as_string(hide_password=False), INCIDENTCTL_DB_CONNECT_TIMEOUT="2")
    body = fixture_bodies[GRAFANA]
    with ServeProcess(incidentctl_bin, env, tmp_path / "serve.log") as server:
        url = server.url + "/webhook/grafana"

        def assert_down():
            started = time.monotonic()
            r = requests.post(url, data=body, timeout=30)
            assert r.status_code == 503, r.text
            assert time.monotonic() - started < 5
            assert requests.get(server.url + "/health", timeout=30).status_code == 503

        assert_down()  # down since start: the receiver still starts and answers
        proxy.up()
        r = requests.post(url, data=body)
        assert r.status_code == 200, r.text
        proxy.down()  # stopped while the receiver holds pooled connections
        assert_down()
        proxy.up()
        deadline = time.monotonic() + 10
        while requests.post(url, data=body).status_code != 200:
            assert time.monotonic() < deadline, "receiver did not recover"
            time.sleep(0.2)
        assert requests.get(server.url + "/health").status_code == 200
        metrics = requests.get(server.url + "/metrics").text
    proxy.down()
    assert 'incidentctl_http_requests_total{code="503",endpoint="webhook"}' in metrics
    assert count_rows(engine, grafana_alerts) >= 2


def test_access_log_shows_no_query_value_and_no_secret(incidentctl_bin, cli_env, tmp_path, engine, fixture_bodies):
    token = "Tk7vQ2xZ9pLm4Wn8"
    env = serve_env(cli_env, INCIDENTCTL_AUTH_BEARER_TOKEN=token, INCIDENTCTL_LOG_LEVEL="INFO")
    body = fixture_bodies[GRAFANA]
    with ServeProcess(incidentctl_bin, env, tmp_path / "serve.log", ["--access-log"]) as server:
        stored = requests.post(server.url + f"/webhook/grafana?token={token}&org=1", data=body,
                               headers={"Authorization": f"Bearer {token}"})
        missing = requests.post(server.url + f"/hooks/{token}?secret=Qx5Rt", data=b"{}")
        assert (stored.status_code, missing.status_code) == (200, 404)
        server.terminate()
        log = server.log_path.read_text()
    assert '"POST /webhook/grafana?token=***&org=*** HTTP/1.1" 200' in log
    assert '"POST /hooks/***?secret=*** HTTP/1.1" 404' in log
    assert "refused 404 POST /hooks/*** from 127.0.0.1 (body 2 bytes declared): no such endpoint: /hooks/***;" in log
    assert token not in log and "Qx5Rt" not in log


@pytest.mark.backends("mysql")
def test_serve_stores_every_body_it_admits_and_lowers_a_limit_the_database_cannot_hold(
        incidentctl_bin, cli_env, tmp_path, engine, fixture_bodies):
    with engine.connect() as conn:
        packet = conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar()
    largest = largest_body_for(packet, sent_ahead=True)
    env = serve_env(cli_env, INCIDENTCTL_MAX_BODY_BYTES=str(packet + (4 << 20)))  # more than the server holds
    big = b'{"alerts": [], "pad": "' + b"\\n" * ((largest - 25) // 2) + b'"}'
    big += b" " * (largest - len(big))
    small = fixture_bodies[GRAFANA]
    with ServeProcess(incidentctl_bin, env, tmp_path / "serve.log") as server:
        url = server.url + "/webhook/grafana"
        with ThreadPoolExecutor(8) as pool:  # the largest body the receiver admits, among small ones
            futures = [pool.submit(requests.post, url, data=b) for b in [small] * 10 + [big] + [small] * 10]
            answers = [f.result() for f in futures]
        assert [a.status_code for a in answers] == [200] * 21, [a.text[:200] for a in answers]
        assert [stored(engine, a.json()["id"])["body"] for a in answers] == [small] * 10 + [big] + [small] * 10
        assert requests.post(url, data=big + b" ").status_code == 413
        log = server.log()
    assert f"max_allowed_packet = {packet}" in log and f"bodies over {largest} bytes are refused with 413" in log
