"""doctor on Galera: the node's wsrep values → a verdict (pure), and the applier lease's holder."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import pytest

from incidentctl.config import load_settings
from incidentctl.db.lease import Holder, Lease
from incidentctl.ops.cluster import cluster_check, galera_status
from incidentctl.ops.doctor import check_lease, doctor

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
HEALTHY = {"wsrep_on": "ON", "wsrep_ready": "ON", "wsrep_cluster_status": "Primary",
           "wsrep_local_state_comment": "Synced", "wsrep_cluster_size": "3", "wsrep_flow_control_paused": "0.001",
           "wsrep_node_name": "node2"}


class Case(NamedTuple):
    status: dict
    level: str
    says: str


CASES = {
    # MySQL 8 or SQLite: no wsrep values at all
    "no_wsrep_values": Case({}, "ok", "not a Galera node"),
    # a plain MariaDB server has wsrep variables, switched off
    "plain_mariadb": Case({"wsrep_on": "OFF", "wsrep_ready": "OFF"}, "ok", "single server"),
    "healthy_node": Case(HEALTHY, "ok", "Synced, Primary component of 3 node(s)"),
    # quorum lost (split brain, or the others died): refuses writes
    "non_primary": Case(HEALTHY | {"wsrep_cluster_status": "non-Primary", "wsrep_ready": "OFF"}, "error",
                        "not in the Primary component"),
    "disconnected": Case(HEALTHY | {"wsrep_cluster_status": "Disconnected"}, "error", "lost quorum"),
    # joining: in the component but not yet accepting queries
    "not_ready": Case(HEALTHY | {"wsrep_ready": "OFF", "wsrep_local_state_comment": "Joiner"}, "error",
                      "wsrep_ready is OFF"),
    # serving an SST to a joiner: works, may lag
    "donor": Case(HEALTHY | {"wsrep_local_state_comment": "Donor/Desynced"}, "warn", "not Synced"),
    "joined_catching_up": Case(HEALTHY | {"wsrep_local_state_comment": "Joined"}, "warn", "not Synced"),
    # the last node standing
    "alone": Case(HEALTHY | {"wsrep_cluster_size": "1"}, "warn", "alone in its cluster"),
    # a slow node pauses the cluster a fifth of the time
    "flow_control": Case(HEALTHY | {"wsrep_flow_control_paused": "0.2"}, "warn", "flow control pauses"),
    "flow_control_just_under": Case(HEALTHY | {"wsrep_flow_control_paused": "0.099"}, "ok", "paused 10%"),
    # garbage values do not crash the check
    "unparsable_numbers": Case(HEALTHY | {"wsrep_cluster_size": "x", "wsrep_flow_control_paused": "y"}, "ok",
                               "of None node(s)"),
    "two_problems_at_once": Case(HEALTHY | {"wsrep_local_state_comment": "Donor/Desynced", "wsrep_cluster_size": "1"},
                                 "warn", "it may lag the others; it is alone"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_cluster_check(case):
    level, message, detail = cluster_check(case.status)
    assert level == case.level and case.says in message
    assert detail["galera"] == (case.status.get("wsrep_on") == "ON")


def holder(owner="host-a:7:ab12", acquired=-90, expires=10) -> Holder:
    return Holder("applier", owner, 4, NOW + timedelta(seconds=acquired), NOW, NOW + timedelta(seconds=expires))


LEASES = {
    "never_taken": (None, "never taken"),
    "held": (holder(), "held by host-a:7:ab12 for 1m (epoch 4, expires in 10s"),
    "released_or_expired": (holder(expires=-30), "free: last held by host-a:7:ab12 (epoch 4), taken 1m ago, "
                                                 "ended 30s ago"),
}


@pytest.mark.parametrize("row, says", LEASES.values(), ids=LEASES.keys())
def test_check_lease(row, says):
    check = check_lease(row, NOW)
    assert check.level == "ok" and says in check.message


def test_single_server_or_sqlite_reports_no_cluster_and_the_lease(engine, db_url):
    with engine.connect() as conn:
        assert cluster_check(galera_status(conn))[0] == "ok"
    with Lease(engine, owner="host-b:9:cd34", heartbeat=False):
        report = {c.name: c for c in doctor(load_settings({"INCIDENTCTL_DATABASE_URL": db_url}), engine,
                                            datetime.now(timezone.utc)).checks}
    assert report["cluster"].message.startswith("not a Galera node")
    assert "held by host-b:9:cd34" in report["lease"].message and report["lease"].detail["epoch"] == 1
