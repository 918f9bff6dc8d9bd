"""incidentctl on the 3-node MariaDB Galera cluster (bench/galera/cluster.py, started once per
session): receivers on two nodes while the third is killed, a commit outlasting its socket
timeout behind a frozen node, two `run` workers on two nodes with the applier killed, two
`notify` on two nodes, the Slack app's thread replies queued from two nodes, the lease raced
from three nodes, doctor, and a node cut off from the others (commands, doctor, `run`).

Reads that compare nodes use wsrep_sync_wait=1, so a node has applied every commit it knows of."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from datetime import datetime, timezone

import pytest
import requests
from sqlalchemy import Engine, create_engine, func, select, text

from incidentctl.config import load_settings
from incidentctl.db.engine import make_engine
from incidentctl.db.lease import Lease, holder
from incidentctl.db.migrations import upgrade
from incidentctl.db.schema import deliveries, grafana_alerts, incidents, notifications
from incidentctl.incidents.model import OutboxState, Rules
from incidentctl.incidents.processor import backlog
from incidentctl.ingest.archive import raw_alert
from incidentctl.ingest.receiver.writer import GroupCommitWriter
from incidentctl.ops.doctor import doctor
from tests.support import FIXTURES
from tests.support.cli import console_script, db_env, run_cli
from tests.support.processing import database_incidents, expected_incidents, process_all, snapshot, store
from tests.support.servers import ServeProcess, serve_env
from tests.support.slack_fake import FakeSlack
from tests.support.synthetic_history import history

pytestmark = [pytest.mark.slow, pytest.mark.galera]

LEASE_TTL = 3.0
PROCESS_INTERVAL = 0.5


@pytest.fixture
def urls(galera_cluster):
    """A fresh database with the schema on the cluster: {node number: its URL on that node}."""
    name = f"ict_galera_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(galera_cluster.node(1).url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    found = {n: f"{galera_cluster.node(n).url}/{name}?charset=utf8mb4" for n in (1, 2, 3)}
    first = make_engine(found[1])
    upgrade(first)
    first.dispose()
    yield found
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    admin.dispose()


def synced(url: str) -> Engine:
    """An engine whose reads wait until the node has applied every commit the cluster certified."""
    return create_engine(url, pool_pre_ping=True,
                         connect_args={"init_command": "SET SESSION wsrep_sync_wait = 1", "connect_timeout": 5})


def test_receivers_on_two_nodes_store_each_answered_body_once_while_the_third_is_killed(galera_cluster, urls, tmp_path):
    template = json.loads((FIXTURES / "grafana/grafana9_zulip_firing_3alerts_2rules.json").read_bytes())
    bodies = [json.dumps({**template, "message": f"load {n}"}).encode() for n in range(400)]
    answers: dict[int, list[int]] = {n: [] for n in range(len(bodies))}
    env = {n: serve_env(dict(os.environ), INCIDENTCTL_DATABASE_URL=urls[n]) for n in (1, 2)}
    with ServeProcess(console_script(), env[1], tmp_path / "r1.log") as r1, \
            ServeProcess(console_script(), env[2], tmp_path / "r2.log") as r2:

        def sender(base: str, numbers: list[int]) -> None:
            with requests.Session() as session:
                for n in numbers:
                    while True:  # as Grafana does: retry until a 2xx
                        try:
                            status = session.post(base + "/webhook/grafana", data=bodies[n], timeout=30).status_code
                        except requests.RequestException:
                            status = 0
                        answers[n].append(status)
                        if 200 <= status < 300:
                            break
                        time.sleep(0.2)

        threads = [threading.Thread(target=sender, args=(r.url, list(range(k, len(bodies), 8))))
                   for k, r in enumerate([r1, r2] * 4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        galera_cluster.kill(3)
        time.sleep(2.0)
        galera_cluster.start(3)  # rejoins (IST) while the load goes on
        for t in threads:
            t.join(180)
        assert not any(t.is_alive() for t in threads)
        galera_cluster.wait_synced(3)
        metrics = requests.get(r1.url + "/metrics", timeout=5).text + requests.get(r2.url + "/metrics", timeout=5).text
    assert all(200 <= codes[-1] < 300 for codes in answers.values())
    stored = []
    for n in (1, 2, 3):
        e = synced(urls[n])
        with e.connect() as conn:
            stored.append(sorted(conn.execute(select(grafana_alerts.c.body_sha256, func.count())
                                              .group_by(grafana_alerts.c.body_sha256)).all()))
        e.dispose()
    assert stored[0] == stored[1] == stored[2]  # the counts converge on every node, node 3 included
    # A 2xx means stored and a 503 not stored, so a body answered only so is stored once. A request
    # the sender gave up on (its timeout: status 0) may have been committed all the same, and its
    # retry stores the body again: at-least-once (docs/OPERATIONS.md), never more than that.
    count = dict(stored[0])
    assert len(count) == len(bodies)
    wrong = {n: (count[hashlib.sha256(body).hexdigest()], answers[n]) for n, body in enumerate(bodies)
             if not 1 <= count[hashlib.sha256(body).hexdigest()] <= 1 + answers[n].count(0)}
    joined = [line for line in galera_cluster.node(3).error_log.read_text(errors="replace").splitlines()
              if re.search(r"\b[IS]ST\b", line)][-5:]
    assert not wrong, (f"body: (times stored, answers) {wrong}\nnode 3 joined: {joined}\n"
                       + "".join((tmp_path / log).read_text()[-2000:] for log in ("r1.log", "r2.log")))
    assert "incidentctl_database_conflicts_retried" in metrics


def test_a_commit_stalled_past_the_read_timeout_by_a_frozen_node_is_answered_as_stored(galera_cluster, urls, caplog):
    # Node 3 frozen: node 1's commit waits to certify until node 3 is evicted (~5 s), past the
    # writer's read timeout (2 s here, 10 s in `serve`), and then commits. Answered 503, the
    # sender would store the body again.
    engine = make_engine(urls[1], io_timeout=2)
    writer = GroupCommitWriter(engine, retry_within=20)
    writer.start()
    try:
        row = raw_alert(b'{"frozen": "node 3"}', received_at=datetime.now(timezone.utc))
        with galera_cluster.paused(3):
            row_id = writer.submit(row).result(60)
    finally:
        writer.stop()
        engine.dispose()
        galera_cluster.wait_synced(3)
    assert any("the answer to the commit of 1 row(s) was lost" in r.message and "it committed" in r.message
               for r in caplog.records)
    for n in (1, 2, 3):
        e = synced(urls[n])
        with e.connect() as conn:
            assert conn.execute(select(grafana_alerts.c.id)).scalars().all() == [row_id]
        e.dispose()


def _worker(urls: dict[int, str], n: int, log_path) -> subprocess.Popen:
    env = {**os.environ, **db_env(urls[n]), "INCIDENTCTL_PROCESS_INTERVAL": str(PROCESS_INTERVAL),
           "INCIDENTCTL_LEASE_TTL": str(LEASE_TTL), "INCIDENTCTL_BATCH_SIZE": "5", "INCIDENTCTL_LOG_LEVEL": "INFO",
           "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([console_script(), "run"], env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)


def _wait(condition, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_run_workers_on_two_nodes_one_killed_mid_batch_equal_a_single_server(
        galera_cluster, urls, mysql_server, tmp_path):
    rows = list(history(series=40, minutes=180, seed=11))  # recurring label sets: fire, resolve, flap
    reference = make_engine(mysql_server.create_database("galera_reference"))
    upgrade(reference)
    store(reference, rows)
    process_all(reference)
    expected = snapshot(reference)
    reference.dispose()

    watch = synced(urls[3])
    store(watch, rows)
    workers = {n: _worker(urls, n, tmp_path / f"run{n}.log") for n in (1, 2)}
    try:
        def applying():
            lease = holder(watch)
            with watch.connect() as conn:
                done = conn.scalar(select(func.count()).where(grafana_alerts.c.processed_at.is_not(None)))
            return lease if lease is not None and lease.live(datetime.now(timezone.utc)) and done >= 20 else None

        lease = _wait(applying, 60, "a worker applying batches")
        pid = int(lease.owner.split(":")[1])
        victim = next(n for n, p in workers.items() if p.pid == pid)
        workers[victim].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        workers[victim].wait()
        survivor = workers[3 - victim]
        taken = _wait(lambda: (h := holder(watch)) is not None and h.owner != lease.owner and h, 30, "a takeover")
        takeover = time.monotonic() - killed_at
        assert taken.epoch > lease.epoch
        assert takeover <= LEASE_TTL + PROCESS_INTERVAL + 3.0  # the ttl, a turn, and a loaded machine's slack
        _wait(lambda: backlog(watch) == 0, 180, "the backlog to drain", step=0.5)
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(60) == 0
    finally:
        for p in workers.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    log = (tmp_path / f"run{3 - victim}.log").read_text(errors="replace")
    assert " failed: " not in log, log[-3000:]
    assert snapshot(watch) == expected  # incidents, series, events, outbox: row by row
    watch.dispose()


def test_two_notify_on_two_nodes_send_each_change_once(urls, tmp_path):
    writer = synced(urls[1])
    store(writer, list(history(series=30, minutes=120, seed=5)))
    process_all(writer)
    with writer.connect() as conn:
        changes = conn.scalar(select(func.count()).select_from(notifications))
    assert changes > 10
    with FakeSlack(slow_seconds=1.0) as slack:
        env = {n: {**os.environ, **db_env(urls[n]), "SLACK_WEBHOOK_URL": slack.url("ok")} for n in (1, 2)}
        for _ in range(3):  # both at once, three times
            runs = [subprocess.Popen([console_script(), "notify"], env=env[n], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE) for n in (1, 2)]
            outs = [p.communicate(timeout=120) for p in runs]
            assert [p.returncode for p in runs] == [0, 0], outs
        sent_bodies = len(slack.bodies("ok"))
    with writer.connect() as conn:
        states = dict(conn.execute(select(notifications.c.state, func.count())
                                   .group_by(notifications.c.state)).all())
        ok = conn.execute(select(func.count(), func.sum(deliveries.c.changes))
                          .where(deliveries.c.outcome == "ok")).one()
    writer.dispose()
    assert states == {OutboxState.SENT: changes}
    assert ok[0] == sent_bodies and ok[1] == changes  # every change in exactly one digest Slack received


def test_slack_runs_on_two_nodes_queue_one_reply_per_message_for_a_note_and_a_silence(urls):
    from datetime import timedelta

    from incidentctl.db.schema import slack_message_incidents, slack_messages, slack_replies
    from incidentctl.incidents.actions import add_note
    from incidentctl.notify.silences import Matcher, add_silence
    from incidentctl.notify.slack_store import queue_replies, take_in_silences
    from tests.support import T0
    from tests.support.factories import add_incidents_with_changes, outbox_rows

    writer, other = synced(urls[1]), synced(urls[2])
    now = T0 + timedelta(minutes=1)
    changes = add_incidents_with_changes(writer, 4, created_at=now)
    incident_ids = sorted({outbox_rows(writer)[c]["incident_id"] for c in changes})
    with writer.begin() as conn:
        for n in range(3):  # three messages, each showing every incident
            conn.execute(slack_messages.insert().values(
                id=n + 1, route="default", channel="C0ALERTS", ts=f"1000.00010{n}", posted_at=T0, base={},
                lines={}, changes_seen=0, changes_shown=0, state="live", attempts=0))
            conn.execute(slack_message_incidents.insert(), [{"message_id": n + 1, "incident_id": i}
                                                            for i in incident_ids])
    add_note(writer, incident_ids[0], "on it", by="alice", now=now)
    silence = add_silence(writer, [Matcher("service", "api")], starts_at=now, ends_at=now + timedelta(hours=1),
                          comment="deploy", created_by="mo", now=now)
    gate = threading.Barrier(4)

    def run(engine) -> None:
        gate.wait()
        queue_replies(engine, T0, now)
        take_in_silences(engine, T0, now)

    threads = [threading.Thread(target=run, args=(e,)) for e in (writer, other, writer, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    r = slack_replies.c
    with writer.connect() as conn:
        pairs = conn.execute(select(r.message_id, r.notification_id, r.silence_id)).all()
    writer.dispose()
    other.dispose()
    assert len(pairs) == len(set(pairs))
    assert sorted(m for m, _, sid in pairs if sid == silence["id"]) == [1, 2, 3]
    assert sorted(m for m, nid, _ in pairs if nid is not None) == [1, 2, 3]  # the note (the changes: silenced)


def test_the_lease_raced_from_three_nodes_has_one_holder_per_epoch(urls):
    engines = {n: make_engine(urls[n]) for n in (1, 2, 3)}
    epochs: list[tuple[int, int]] = []
    lock = threading.Lock()
    inside = []
    overlaps = []

    def worker(n: int) -> None:
        lease = Lease(engines[n], ttl=10, wait=60, heartbeat=False)
        for _ in range(5):
            with lease:
                with lock:
                    if inside:
                        overlaps.append((n, list(inside)))
                    inside.append(n)
                    epochs.append((lease.epoch, n))
                time.sleep(0.02)
                with lock:
                    inside.remove(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for e in engines.values():
        e.dispose()
    assert overlaps == []
    assert sorted(e for e, _ in epochs) == list(range(1, 16))  # 15 acquisitions, each its own epoch


def test_doctor_reports_the_node_and_the_lease(urls):
    engine = make_engine(urls[2])
    with Lease(engine, owner="host-x:42:doctor", heartbeat=False):
        report = doctor(load_settings({"INCIDENTCTL_DATABASE_URL": urls[2]}), engine, datetime.now(timezone.utc))
    engine.dispose()
    checks = {c.name: c for c in report.checks}
    assert checks["cluster"].level == "ok", checks["cluster"].message
    assert "Synced, Primary component of 3 node(s)" in checks["cluster"].message
    assert checks["cluster"].detail["node"] == "node2"
    assert "held by host-x:42:doctor" in checks["lease"].message


def test_a_node_cut_off_from_the_others_is_named_as_such_while_the_others_go_on(galera_cluster, urls):
    env = {n: {**os.environ, **db_env(urls[n])} for n in (1, 3)}
    with galera_cluster.isolated(3):
        listed = run_cli("list", env=env[3])
        checked = run_cli("doctor", "--output", "json", env=env[3])
        elsewhere = run_cli("list", env=env[1])
    assert listed.returncode == 3 and listed.stdout == ""
    assert listed.stderr.count("\n") == 1 and "not in the Primary component (it lost quorum)" in listed.stderr
    assert checked.returncode == 3
    checks = {c["name"]: c for c in json.loads(checked.stdout)["checks"]}
    assert checks["database"]["level"] == "error" and checks["cluster"]["level"] == "error"
    assert "non-Primary component of 1 node(s)" in checks["cluster"]["message"]
    assert elsewhere.returncode == 0, elsewhere.stderr


def test_run_on_a_node_cut_off_logs_a_line_a_failure_and_goes_on_once_it_rejoins(galera_cluster, urls, tmp_path):
    log_path = tmp_path / "run3.log"
    worker = _worker(urls, 3, log_path)
    body = (FIXTURES / "grafana/grafana9_zulip_firing_3alerts_2rules.json").read_bytes()
    first = make_engine(urls[1])
    try:
        _wait(lambda: b"process: rows=" in log_path.read_bytes(), 60, "a first `process` run")
        with galera_cluster.isolated(3):
            _wait(lambda: log_path.read_bytes().count(b"process failed") >= 3, 60, "failed runs on the cut-off node")
        (row_id,) = store(first, [(datetime.now(timezone.utc), body)])

        def processed() -> bool:
            with first.connect() as conn:
                return conn.execute(select(grafana_alerts.c.processed_at)
                                    .where(grafana_alerts.c.id == row_id)).scalar() is not None

        _wait(processed, 60, "the worker on node 3 to process a row once it rejoined")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        first.dispose()
    logged = log_path.read_text()
    assert "Traceback" not in logged, logged[-3000:]
    assert "not in the Primary component (it lost quorum)" in logged


def test_processing_moving_between_nodes_never_reuses_an_incident_id(urls):
    """New incidents take the ids their node's AUTO_INCREMENT counter gives next (reserve_ids):
    the queue processed a third on node 1, a third on node 2, the rest on node 1 again, each node
    opening incidents after the other's, gives every incident an id of its own, with nothing
    failed or retried, and the incidents one uninterrupted run decides."""
    bodies = list(history(series=40, minutes=120, seed=23))
    engines = {n: make_engine(urls[n]) for n in (1, 2)}
    try:
        store(engines[1], bodies)
        summaries = []
        for n, limit in ((1, len(bodies) // 3), (2, len(bodies) // 3), (1, None)):
            with synced(urls[n]).connect() as conn:  # this node has applied what the other wrote
                conn.execute(text("SELECT 1"))
            summaries.append(process_all(engines[n], batch_size=25, limit=limit))
        assert sum(s.rows for s in summaries) == len(bodies)
        assert all(s.opened > 0 and s.errors == 0 and s.conflicts_retried == 0 for s in summaries)
        reader = synced(urls[1])
        with reader.connect() as conn:
            ids = list(conn.scalars(select(incidents.c.id)))
        assert len(ids) == len(set(ids))
        rules = Rules.configured(load_settings({}))
        assert database_incidents(reader) == expected_incidents(bodies, rules.group_by,
                                                                rules.reopen_window.total_seconds())
        reader.dispose()
    finally:
        for e in engines.values():
            e.dispose()
