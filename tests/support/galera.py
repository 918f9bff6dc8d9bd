"""The 3-node Galera cluster of bench/galera/cluster.py for tests: `galera_cluster`, a session
fixture that starts it once on free ports and removes it at the end.

tests/conftest.py lists this module in `pytest_plugins`, so the whole session shares one cluster
(started by the first test that asks for it). Without MariaDB/Galera installed the tests skip, unless
INCIDENTCTL_TEST_REQUIRE_TOOLS=1 (CI): then they fail."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import ROOT

CLUSTER_SCRIPT = ROOT / "bench" / "galera" / "cluster.py"
REQUIRED = os.environ.get("INCIDENTCTL_TEST_REQUIRE_TOOLS") == "1"


def _load():
    spec = importlib.util.spec_from_file_location("galera_cluster", CLUSTER_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


galera = _load()


def missing_tools() -> str | None:
    """Why a cluster cannot start here (a missing program or provider), or None."""
    try:
        galera.find_tools()
    except galera.ClusterError as exc:
        return str(exc)
    return None


def unavailable(reason: str) -> None:
    """Skips, or in CI (INCIDENTCTL_TEST_REQUIRE_TOOLS=1) fails, for a cluster that cannot run."""
    if REQUIRED:
        pytest.fail(f"INCIDENTCTL_TEST_REQUIRE_TOOLS=1 but no Galera cluster: {reason}", pytrace=False)
    pytest.skip(reason)


def reserve_base_port():
    """A base port whose twelve ports are free, with a lock file held on it so that concurrent test
    sessions on this machine each take another one. INCIDENTCTL_GALERA_BASE_PORT pins it.
    Returns (base_port, open lock file)."""
    pinned = os.environ.get("INCIDENTCTL_GALERA_BASE_PORT")
    candidates = [int(pinned)] if pinned else range(4406, 5407, 100)  # 4306 is left to `make galera-up`
    for base in candidates:
        # held open on purpose: the lock lasts as long as the file stays open
        lock = open(Path(tempfile.gettempdir()) / f"incidentctl-galera-{base}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        if all(galera.port_free(p) for node in galera.Cluster("/nonexistent", base).nodes for p in node.ports):
            return base, lock
        lock.close()
    raise galera.ClusterError(f"no free Galera base port among {list(candidates)}")


@pytest.fixture(scope="session")
def galera_cluster():
    """A running 3-node cluster (nodes 1..3, all Synced). A test that stops a node starts it again."""
    reason = missing_tools()
    if reason:
        unavailable(reason)
    try:
        base_port, lock = reserve_base_port()
    except galera.ClusterError as exc:
        unavailable(str(exc))
    cluster = galera.Cluster(tempfile.mkdtemp(prefix="incidentctl-galera-test-"), base_port)
    try:
        try:
            cluster.up()
        except galera.ClusterError as exc:
            unavailable(str(exc))
        yield cluster
    finally:
        cluster.down()
        lock.close()
