"""The Galera node behind a connection, for `doctor`: is it part of a Primary component, Synced,
ready for writes, how big is the cluster and how much does flow control pause it.

`galera_status(conn)` reads the values (nothing on SQLite or MySQL; wsrep_on OFF on a plain
MariaDB); `cluster_check(status)` turns them into a doctor Check, a pure function.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, text

from incidentctl.db.capabilities import capabilities

NAMES = ("wsrep_on", "wsrep_ready", "wsrep_cluster_status", "wsrep_local_state_comment", "wsrep_cluster_size",
         "wsrep_flow_control_paused", "wsrep_cluster_state_uuid", "wsrep_node_name")
FLOW_CONTROL_WARN = 0.1  # a tenth of the time paused: a slow node holds every writer back


_STATEMENTS = ("SHOW GLOBAL VARIABLES LIKE 'wsrep\\_%'", "SHOW GLOBAL STATUS LIKE 'wsrep\\_%'")


def galera_status(conn: Connection) -> dict[str, str]:
    """The node's wsrep variables and status values by lower-case name; empty when the database is
    not MariaDB/MySQL (SQLite), or a MySQL without them."""
    if not capabilities(conn).row_locks:  # SQLite: one file, no server
        return {}
    return _named(row for statement in _STATEMENTS for row in conn.execute(text(statement)))


def galera_status_of_refusing_node(engine: Engine, connect_timeout: int = 3) -> dict[str, str]:
    """`galera_status` of a server that refuses to open a session: a Galera node outside the Primary
    component answers GALERA_NOT_READY (1047) even to the ROLLBACK SQLAlchemy sends on a first connection, but
    still answers SHOW. Read on a bare driver connection; empty when even that fails."""
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    try:
        raw = engine.dialect.loaded_dbapi.connect(*cargs, **{"connect_timeout": connect_timeout, **cparams})
    except Exception:  # down as well: nothing to add to the database check
        return {}
    try:
        cursor = raw.cursor()
        rows = []
        for statement in _STATEMENTS:
            cursor.execute(statement)
            rows += cursor.fetchall()
        return _named(rows)
    except Exception:  # a server that does not answer SHOW is no Galera node to describe
        return {}
    finally:
        raw.close()


def _named(rows: Iterable) -> dict[str, str]:
    return {name.lower(): str(value) for name, value in rows if name.lower() in NAMES}


def cluster_check(status: Mapping[str, str]) -> tuple[str, str, dict[str, Any]]:
    """(level ok|warn|error, message, detail) for a node's wsrep values. Not a Galera node: ok.
    Not ready, or not in the Primary component (it refuses writes: quorum lost): error. Not
    Synced (a donor, joiner or desynced node), alone in its cluster, or paused by flow control
    more than FLOW_CONTROL_WARN of the time: warn."""
    if status.get("wsrep_on", "OFF").upper() != "ON":
        return "ok", "not a Galera node (single server)", {"galera": False}
    ready = status.get("wsrep_ready", "OFF").upper() == "ON"
    component = status.get("wsrep_cluster_status", "?")
    state = status.get("wsrep_local_state_comment", "?")
    size = _int(status.get("wsrep_cluster_size"))
    paused = _float(status.get("wsrep_flow_control_paused"))
    detail = {"galera": True, "node": status.get("wsrep_node_name"), "ready": ready, "cluster_status": component,
              "local_state": state, "cluster_size": size, "flow_control_paused": paused}
    summary = (f"node {status.get('wsrep_node_name') or '?'}: {state}, {component} component of {size} node(s), "
               f"flow control paused {paused:.0%} of the time")
    if component != "Primary":
        return "error", (f"{summary} — this node is not in the Primary component (it lost quorum) and refuses "
                         "writes: point workers and receivers at a node of the Primary component"), detail
    if not ready:
        return "error", f"{summary} — wsrep_ready is OFF: the node does not accept queries yet", detail
    problems = []
    if state != "Synced":
        problems.append(f"the node is {state}, not Synced (state transfer or desync): it may lag the others")
    if size is not None and size < 2:
        problems.append("it is alone in its cluster: a node loss now loses the service")
    if paused >= FLOW_CONTROL_WARN:
        problems.append("flow control pauses replication often: a slow node holds back every writer")
    if problems:
        return "warn", f"{summary} — " + "; ".join(problems), detail
    return "ok", summary, detail


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _float(raw: str | None) -> float:
    try:
        return float(raw) if raw is not None else 0.0
    except ValueError:
        return 0.0
