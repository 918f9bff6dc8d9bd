"""The local 3-node MariaDB Galera cluster (bench/galera/cluster.py) and the behaviour of Galera
that incidentctl has to live with on it: writes anywhere are read everywhere, a node killed with
SIGKILL rejoins and catches up, and two nodes updating one row concurrently make one commit fail
with 1213 (certification failure). Reads use wsrep_sync_wait=1: without it a read on another
node may not yet see a commit that has already returned."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pymysql
import pytest
from sqlalchemy import create_engine, text

from tests.support.galera import CLUSTER_SCRIPT, galera

pytestmark = [pytest.mark.slow, pytest.mark.galera]

DB = f"galera_test_{os.getpid()}"


def engine(cluster, n: int, database: str = DB):
    return create_engine(f"{cluster.node(n).url}/{database}", isolation_level="AUTOCOMMIT",
                         connect_args={"init_command": "SET SESSION wsrep_sync_wait = 1"})


def rows(cluster, n: int) -> list[tuple]:
    e = engine(cluster, n, database="")  # the database itself may still be on its way
    with e.connect() as conn:
        result = list(conn.execute(text(f"SELECT id, node, v FROM `{DB}`.r ORDER BY id")))
    e.dispose()
    return result


def cli(cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CLUSTER_SCRIPT), "--dir", str(cluster.base_dir),
                           "--base-port", str(cluster.base_port), *args],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def table(galera_cluster):
    """A fresh database with table r(id, node, v), created on node 1; dropped afterwards."""
    admin = create_engine(galera_cluster.node(1).url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{DB}`"))
        conn.execute(text(f"CREATE DATABASE `{DB}`"))
        conn.execute(text(f"CREATE TABLE `{DB}`.r (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                          "node INT NOT NULL, v INT NOT NULL) ENGINE=InnoDB"))
    for n in (2, 3):  # a causal read: the DDL has been applied there too
        assert rows(galera_cluster, n) == []
    yield
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{DB}`"))
    admin.dispose()


def test_a_write_on_node_1_is_read_on_nodes_2_and_3(galera_cluster, table):
    e = engine(galera_cluster, 1)
    with e.connect() as conn:
        conn.execute(text("INSERT INTO r (node, v) VALUES (1, 42)"))
    e.dispose()
    assert [(r.node, r.v) for r in rows(galera_cluster, 2)] == [(1, 42)]
    assert rows(galera_cluster, 3) == rows(galera_cluster, 2) == rows(galera_cluster, 1)


def test_the_cli_reports_each_node_synced(galera_cluster):
    run = cli(galera_cluster, "status")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 3 and all("Synced  size 3" in line for line in lines), run.stdout
    assert galera_cluster.node(2).url in lines[1]


def test_a_killed_node_rejoins_and_converges(galera_cluster, table):
    cluster = galera_cluster
    node3 = cluster.node(3)
    try:
        cluster.kill(3)
        assert cluster.running() == [1, 2]
        status = cli(cluster, "status")
        assert status.returncode == 1 and "node 3" in status.stdout and "down" in status.stdout, status.stdout
        # writes go on on both survivors; the first waits until the group has evicted node 3
        for n in (1, 2, 1, 2):
            e = engine(cluster, n)
            with e.connect() as conn:
                for v in range(25):
                    conn.execute(text("INSERT INTO r (node, v) VALUES (:n, :v)"), {"n": n, "v": v})
            e.dispose()
        cluster.wait_synced(2, timeout=60)
        log_before = node3.error_log.stat().st_size
        cluster.start(3)
    finally:
        if 3 not in cluster.running():
            cluster.start(3)
    assert cluster.running() == [1, 2, 3]
    expected = rows(cluster, 1)
    assert len(expected) == 100
    assert rows(cluster, 2) == expected and rows(cluster, 3) == expected
    # it caught up by IST from its own recovered position, not by copying a whole datadir
    assert "IST received" in node3.error_log.read_text(errors="replace")[log_before:]


def test_concurrent_updates_of_one_row_on_two_nodes_fail_one_commit_with_1213(galera_cluster, table):
    cluster = galera_cluster
    e1 = engine(cluster, 1)
    with e1.connect() as conn:
        conn.execute(text("INSERT INTO r (id, node, v) VALUES (1, 0, 0)"))
    # plain connections: the two transactions must interleave exactly so
    one, two = (pymysql.connect(host="127.0.0.1", port=cluster.node(n).sql_port, user="root", database=DB,
                                autocommit=False) for n in (1, 2))
    try:
        with one.cursor() as c1, two.cursor() as c2:
            c1.execute("UPDATE r SET node = 1, v = 1 WHERE id = 1")
            c2.execute("UPDATE r SET node = 2, v = 2 WHERE id = 1")  # no local lock: node 2 knows nothing yet
            one.commit()  # certified first, so it wins
            with pytest.raises(pymysql.err.OperationalError) as lost:
                c2.execute("SELECT 1")  # node 2 has rolled its transaction back (brute-force abort)
                two.commit()
        assert lost.value.args[0] == 1213, lost.value  # ER_LOCK_DEADLOCK: the caller must retry
    finally:
        one.close()
        two.close()
    for n in (1, 2, 3):
        assert [(r.node, r.v) for r in rows(cluster, n)] == [(1, 1)]
    e1.dispose()


@pytest.mark.parametrize("args, message", [
    (["kill", "3"], "node 3 is not running"),  # nothing started under this directory
    (["start", "4"], "no node 4"),
    (["start", "2"], "has no datadir"),
    (["--base-port", "60000", "up"], "base port must be"),  # its Galera ports would pass 65535
])
def test_cli_errors_are_one_clear_line_and_exit_1(tmp_path, args, message):
    run = subprocess.run([sys.executable, str(CLUSTER_SCRIPT), "--dir", str(tmp_path / "none"), "--base-port", "5906",
                          *args], capture_output=True, text=True, timeout=60)  # a later --base-port wins
    assert run.returncode == 1 and run.stderr.startswith("galera: ") and message in run.stderr, run.stderr


def test_cli_up_refuses_ports_in_use(tmp_path):
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 5907))  # node 2's SQL port with base 5906
            taken.listen()
        except OSError:
            pass  # taken already
        run = subprocess.run([sys.executable, str(CLUSTER_SCRIPT), "--dir", str(tmp_path / "c"),
                              "--base-port", "5906", "up"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "ports [5907" in run.stderr and "INCIDENTCTL_GALERA_BASE_PORT" in run.stderr, \
        run.stderr
    assert not (tmp_path / "c").exists()  # nothing was started or written


def test_two_clusters_100_ports_apart_share_no_port():
    a, b = (galera.Cluster("/nonexistent", base) for base in (4306, 4406))
    ports_a = [p for node in a.nodes for p in node.ports]
    ports_b = [p for node in b.nodes for p in node.ports]
    assert ports_a[:4] == [4306, 14306, 14307, 14308]  # node 1: SQL, group, IST, SST
    assert len(set(ports_a)) == 12 and not set(ports_a) & set(ports_b)
    assert a.node(3).url == "mysql+pymysql://root@127.0.0.1:4308"
