#!/usr/bin/env python3
"""A 3-node MariaDB Galera cluster on loopback, for tests and benchmarks. Standard library only.

    python bench/galera/cluster.py up | down | status | wait | kill N | start N

Nodes are numbered 1..3; node 1 bootstraps the cluster. With base port B (INCIDENTCTL_GALERA_BASE_PORT,
default 4306) node N serves SQL on B+N-1 and uses B+10000+10*(N-1) for Galera group traffic, +1 for
IST and +2 for the rsync SST, so clusters with bases 100 apart never meet. Files live under
INCIDENTCTL_GALERA_DIR (default <tmp>/incidentctl-galera-B); `down` removes them. See README.md here.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SIZE = 3
DEFAULT_BASE_PORT = 4306
MAX_BASE_PORT = 65535 - 10000 - 10 * 2 - 2  # node 3's SST port is the highest
PROVIDER_PATHS = ("/usr/lib/galera/libgalera_smm.so", "/usr/lib/libgalera_smm.so",
                  "/usr/lib64/galera-4/libgalera_smm.so", "/usr/lib64/galera/libgalera_smm.so")
TOOLS = ("mariadbd", "mariadb-install-db", "mariadb", "rsync", "wsrep_sst_rsync", "ss")
INSTALL_HINT = "apt-get install mariadb-server galera-4 rsync iproute2"
STATUS_NAMES = ("wsrep_cluster_size", "wsrep_cluster_status", "wsrep_local_state_comment", "wsrep_ready")


class ClusterError(Exception):
    """The cluster or one of its nodes could not be set up, started, reached or stopped."""


@dataclass(frozen=True)
class Node:
    """Where one node lives and listens."""

    number: int
    dir: Path
    sql_port: int
    gcomm_port: int

    @property
    def ist_port(self) -> int:
        return self.gcomm_port + 1

    @property
    def sst_port(self) -> int:
        return self.gcomm_port + 2

    @property
    def ports(self) -> tuple[int, ...]:
        return self.sql_port, self.gcomm_port, self.ist_port, self.sst_port

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.sql_port}"

    datadir = property(lambda self: self.dir / "data")
    socket = property(lambda self: self.dir / "mysqld.sock")
    defaults_file = property(lambda self: self.dir / "my.cnf")
    error_log = property(lambda self: self.dir / "error.log")
    pid_file = property(lambda self: self.dir / "launch.pid")


def find_tools() -> dict[str, str]:
    """Paths of the programs and the Galera provider the cluster needs; raises ClusterError naming
    what is missing."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])
    found = {name: shutil.which(name, path=search) for name in TOOLS}
    provider = os.environ.get("INCIDENTCTL_GALERA_PROVIDER") or next(
        (p for p in PROVIDER_PATHS if os.path.exists(p)), None)
    found["libgalera_smm.so"] = provider if provider and os.path.exists(provider) else None
    missing = [name for name, path in found.items() if not path]
    if missing:
        raise ClusterError(f"missing for a Galera cluster: {', '.join(missing)} ({INSTALL_HINT})")
    return found


def server_user() -> str:
    """The account mariadbd runs as. As root that is `mysql`: mariadbd refuses root without
    --user=root, and the rsync daemon a joiner starts for SST would, as root, switch to `nobody`
    (rsyncd's default uid) and could not write the datadir. Otherwise the current user."""
    if os.geteuid() == 0:
        try:
            return pwd.getpwnam("mysql").pw_name
        except KeyError:
            raise ClusterError("running as root needs the `mysql` account (it comes with mariadb-server)") from None
    return pwd.getpwuid(os.geteuid()).pw_name


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Cluster:
    """Three Galera nodes under `base_dir`. Every method works from the files there, so a cluster
    started by one process (the CLI) can be inspected, killed and stopped by another."""

    def __init__(self, base_dir: str | Path | None = None, base_port: int | None = None):
        self.base_port = int(base_port or os.environ.get("INCIDENTCTL_GALERA_BASE_PORT") or DEFAULT_BASE_PORT)
        if not 1024 <= self.base_port <= MAX_BASE_PORT:
            raise ClusterError(f"base port must be 1024..{MAX_BASE_PORT}, not {self.base_port}")
        self.base_dir = Path(base_dir or os.environ.get("INCIDENTCTL_GALERA_DIR")
                             or Path(tempfile.gettempdir()) / f"incidentctl-galera-{self.base_port}").absolute()
        self.nodes = [Node(n, self.base_dir / f"node{n}", self.base_port + n - 1,
                           self.base_port + 10000 + 10 * (n - 1)) for n in range(1, SIZE + 1)]
        self._children: dict[int, subprocess.Popen] = {}

    def node(self, number: int) -> Node:
        if not 1 <= number <= SIZE:
            raise ClusterError(f"no node {number}: nodes are 1..{SIZE}")
        return self.nodes[number - 1]

    # -- lifecycle --------------------------------------------------------------------------------

    def up(self, timeout: float = 180.0) -> Cluster:
        """Starts a fresh cluster (new datadirs) and waits until all nodes are Synced; when all
        three already run, only waits. Raises ClusterError."""
        running = self.running()
        if len(running) == SIZE:
            self.wait_synced(SIZE, timeout)
            return self
        if running:
            raise ClusterError(f"nodes {running} of {self.base_dir} are running: run `down` first")
        tools = find_tools()
        busy = [p for node in self.nodes for p in node.ports if not port_free(p)]
        if busy:
            raise ClusterError(f"ports {busy} are taken: choose another INCIDENTCTL_GALERA_BASE_PORT")
        self._remove_files()
        user = server_user()
        self._prepare(tools, user)
        first = self.node(1)
        as_user = [f"--user={user}"] if os.geteuid() == 0 else []  # only root may name one
        install = subprocess.run(
            [tools["mariadb-install-db"], "--no-defaults", f"--datadir={first.datadir}", *as_user,
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if install.returncode:
            raise ClusterError(f"mariadb-install-db failed for node 1:\n{install.stdout[-2000:]}")
        deadline = time.monotonic() + timeout
        self._spawn(first, bootstrap=True)
        self._wait([1], 1, deadline)
        for node in self.nodes[1:]:  # joiners start empty and receive node 1's datadir by SST
            self._spawn(node, bootstrap=False)
            self._wait_in_view(node.number, deadline)
        self._wait(list(range(1, SIZE + 1)), SIZE, deadline)
        return self

    def down(self, timeout: float = 30.0) -> None:
        """Stops every node (SIGTERM, then SIGKILL after `timeout`) and removes the nodes' files.
        One node after the other: nodes leaving together each wait seconds for the others' goodbye."""
        for n in range(SIZE, 0, -1):
            pid = self._pid(n)
            if pid is None:
                continue
            _signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self._pid(n) and time.monotonic() < deadline:
                time.sleep(0.1)
            _signal(pid, signal.SIGKILL, group=True)  # still running, or an SST script or rsync left behind
            self._reap(n, timeout=10)
        self._remove_files()

    def kill(self, number: int) -> None:
        """SIGKILLs a node (and any SST helper it started), as a crashed host would lose it."""
        pid = self._pid(number)
        if pid is None:
            raise ClusterError(f"node {number} is not running")
        _signal(pid, signal.SIGKILL, group=True)
        self._reap(number, timeout=10)

    @contextlib.contextmanager
    def paused(self, number: int):
        """Freezes a node (SIGSTOP) for the `with` block, as a host stalled by its hypervisor or a
        swap storm would be, then lets it run on (SIGCONT). Until the others evict it (about
        evs.suspect_timeout, 5 s) their commits wait for it; afterwards it rejoins by itself."""
        pid = self._pid(number)
        if pid is None:
            raise ClusterError(f"node {number} is not running")
        _signal(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            _signal(pid, signal.SIGCONT)

    @contextlib.contextmanager
    def isolated(self, number: int, timeout: float = 60.0):
        """Cuts a node off from the others for the `with` block (Galera's gmcast.isolate), as a
        network partition would: alone, it leaves the Primary component and refuses queries
        (1047) while the other two go on. Afterwards it rejoins, and the block's end waits until
        all are Synced again."""
        node = self.node(number)
        self._provider_option(node, "gmcast.isolate=1")
        deadline = time.monotonic() + timeout
        while self._wsrep_status(node).get("wsrep_cluster_status") == "Primary":
            if time.monotonic() > deadline:
                raise ClusterError(f"node {number} still in the Primary component after {timeout:g}s")
            time.sleep(0.2)
        try:
            yield
        finally:
            self._provider_option(node, "gmcast.isolate=0")
            self.wait_synced(SIZE, timeout)

    def _provider_option(self, node: Node, option: str) -> None:
        out = _sql(node, f"SET GLOBAL wsrep_provider_options = '{option}'")
        if out.returncode:
            raise ClusterError(f"node {node.number}: setting {option} failed: {out.stderr.strip()}")

    def start(self, number: int, timeout: float = 180.0) -> None:
        """Starts a stopped node and waits until it is Synced with all running nodes. It rejoins
        the running ones (IST when their gcache still holds what it missed, else SST); with none
        running it bootstraps a new primary component from its own data."""
        node = self.node(number)
        if self._pid(number):
            raise ClusterError(f"node {number} is already running")
        if not node.datadir.is_dir():
            raise ClusterError(f"node {number} has no datadir in {node.dir}: run `up` first")
        busy = [p for p in node.ports if not port_free(p)]
        if busy:
            raise ClusterError(f"ports {busy} of node {number} are still taken")
        others = self.running()
        if not others:
            _mark_safe_to_bootstrap(node.datadir / "grastate.dat")
        self._spawn(node, bootstrap=not others, extra=self._recover_position(node))
        members = sorted([*others, number])
        self._wait(members, len(members), time.monotonic() + timeout)

    def wait_synced(self, size: int = SIZE, timeout: float = 120.0) -> None:
        """Waits until exactly `size` nodes run and each sees a Primary cluster of `size`, is
        Synced and ready. Raises ClusterError (with the states seen) on timeout or when one dies."""
        self._wait(self.running(), size, time.monotonic() + timeout)

    # -- inspection -------------------------------------------------------------------------------

    def running(self) -> list[int]:
        return [n for n in range(1, SIZE + 1) if self._pid(n)]

    def status(self) -> list[dict]:
        """One dict per node: number, port, pid (None when stopped) and its wsrep status values."""
        rows = []
        for node in self.nodes:
            pid = self._pid(node.number)
            rows.append({"node": node.number, "port": node.sql_port, "pid": pid,
                         **(self._wsrep_status(node) if pid else {})})
        return rows

    def _wsrep_status(self, node: Node) -> dict[str, str]:
        names = ", ".join(f"'{n}'" for n in STATUS_NAMES)
        try:
            out = _sql(node, f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
        except subprocess.TimeoutExpired:
            return {}
        if out.returncode:
            return {}
        return {name.lower(): value for name, _, value in (line.partition("\t") for line in out.stdout.splitlines())}

    def _wait(self, members: list[int], size: int, deadline: float) -> None:
        seen: dict[int, dict] = {}
        while True:
            self._check_alive(members, f"a synced cluster of {size}")
            for n in members:
                seen[n] = self._wsrep_status(self.node(n))
            if len(self.running()) == size and all(_synced(seen[n], size) for n in members):
                return
            if time.monotonic() > deadline:
                states = "; ".join(f"node {n}: {seen[n] or 'not answering'}" for n in members)
                logs = "".join(f"\n{self.node(n).error_log}:\n{log_tail(self.node(n).error_log, 8)}"
                               for n in members if not _synced(seen[n], size))
                raise ClusterError(f"no synced cluster of {size} in time ({states}){logs}")
            time.sleep(0.5)

    def _wait_in_view(self, members: int, deadline: float) -> None:
        """Until node 1 counts `members` nodes, the newest one still receiving its SST perhaps.
        Joiners go in one by one: two at once keep the group unstable for seconds."""
        while self._wsrep_status(self.node(1)).get("wsrep_cluster_size") != str(members):
            self._check_alive([1, members], f"node {members} to join")
            if time.monotonic() > deadline:
                raise ClusterError(f"node {members} did not join node 1 in time; see {self.node(members).error_log}")
            time.sleep(0.2)

    def _check_alive(self, members: list[int], waiting_for: str) -> None:
        for n in members:
            if not self._pid(n):
                node = self.node(n)
                raise ClusterError(f"node {n} stopped while waiting for {waiting_for}; "
                                   f"see {node.error_log}:\n{log_tail(node.error_log)}")

    # -- processes and files ----------------------------------------------------------------------

    def _prepare(self, tools: dict[str, str], user: str) -> None:
        account = pwd.getpwnam(user)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o755)
        _check_reachable(self.base_dir, account)
        gcomm = ",".join(f"127.0.0.1:{node.gcomm_port}" for node in self.nodes)
        for node in self.nodes:
            node.datadir.mkdir(parents=True)
            for path in (node.dir, node.datadir):
                os.chown(path, account.pw_uid, account.pw_gid)
            node.defaults_file.write_text(_config(node, tools["libgalera_smm.so"], gcomm, user,
                                                  f"incidentctl-{self.base_port}"))

    def _recover_position(self, node: Node) -> list[str]:
        """After a crash grastate.dat holds seqno -1, and a node started so would ask for a full
        SST. As galera_recovery does for systemd, read the last committed position from InnoDB
        (mariadbd --wsrep-recover) and start from it: the node then catches up by IST."""
        grastate = node.datadir / "grastate.dat"
        if not grastate.exists() or not re.search(r"^seqno:\s*-1\s*$", grastate.read_text(), re.M):
            return []
        run = subprocess.run([_mariadbd(), f"--defaults-file={node.defaults_file}", "--wsrep-recover",
                              "--disable-log-error"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=120)
        with open(node.error_log, "a") as log:
            log.write(run.stdout)
        if run.returncode:
            raise ClusterError(f"wsrep position recovery of node {node.number} failed; see {node.error_log}:\n"
                               f"{log_tail(node.error_log)}")
        found = re.search(r"WSREP: Recovered position: (\S+)", run.stdout)
        return [f"--wsrep-start-position={found.group(1)}"] if found else []

    def _spawn(self, node: Node, bootstrap: bool, extra: list[str] = ()) -> None:
        # --defaults-file must come first; it also keeps /etc/mysql (the 3306 server's) out
        args = [_mariadbd(), f"--defaults-file={node.defaults_file}", *extra]
        if bootstrap:
            args.append("--wsrep-new-cluster")
        with open(node.error_log, "ab") as log:
            # its own session: a Ctrl-C of the caller does not reach it, and kill() takes its SST helpers too
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self._children[node.number] = proc
        node.pid_file.write_text(f"{proc.pid}\n")

    def _pid(self, number: int) -> int | None:
        """The node's mariadbd pid when it is alive (not a zombie, and really this node's)."""
        child = self._children.get(number)
        if child is not None and child.poll() is not None:
            del self._children[number]
        node = self.node(number)
        try:
            pid = int(node.pid_file.read_text())
            comm, _, rest = Path(f"/proc/{pid}/stat").read_text().partition(" (")[2].rpartition(") ")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        state, session = rest.split()[0], int(rest.split()[3])
        # cmdline reads empty for a moment while mariadbd maps its memory: then its name and its
        # own session (start_new_session) have to do
        ours = str(node.defaults_file).encode() in cmdline if cmdline else comm == "mariadbd" and session == pid
        return pid if ours and state != "Z" else None

    def _reap(self, number: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._pid(number) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._pid(number):
            raise ClusterError(f"node {number} did not stop")

    def _remove_files(self) -> None:
        """Removes the node directories only, and base_dir when nothing else is in it."""
        for node in self.nodes:
            shutil.rmtree(node.dir, ignore_errors=True)
        if self.base_dir.is_dir() and not any(self.base_dir.iterdir()):
            self.base_dir.rmdir()


def _sql(node: Node, statement: str) -> subprocess.CompletedProcess:
    """`statement` run as root on the node's socket by the mariadb client (rows tab-separated)."""
    cmd = [shutil.which("mariadb") or "mariadb", "--no-defaults", "--protocol=socket", f"--socket={node.socket}",
           "-uroot", "-N", "-B", "--connect-timeout=2", "-e", statement]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10)


def _mariadbd() -> str:
    return shutil.which("mariadbd", path=os.pathsep.join(["/usr/sbin", "/usr/bin", os.environ.get("PATH", "")]))


def _config(node: Node, provider: str, gcomm: str, user: str, cluster_name: str) -> str:
    return f"""\
[mysqld]
{f"user = {user}" if os.geteuid() == 0 else ""}
datadir = {node.datadir}
socket = {node.socket}
pid-file = {node.dir / "mariadbd.pid"}
bind-address = 127.0.0.1
port = {node.sql_port}
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
default-storage-engine = InnoDB
performance_schema = OFF
innodb_buffer_pool_size = 64M
innodb_log_file_size = 32M
# Galera needs row events and interleaved auto-increment locks
binlog_format = ROW
innodb_autoinc_lock_mode = 2
# durability comes from the other nodes: a commit is in the OS cache before it returns
innodb_flush_log_at_trx_commit = 2
wsrep_on = ON
wsrep_provider = {provider}
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:{node.gcomm_port}; ist.recv_addr=127.0.0.1:{node.ist_port}; gcache.size=64M"
wsrep_cluster_name = {cluster_name}
wsrep_cluster_address = gcomm://{gcomm}
wsrep_node_name = node{node.number}
wsrep_node_address = 127.0.0.1:{node.gcomm_port}
wsrep_sst_method = rsync
wsrep_sst_receive_address = 127.0.0.1:{node.sst_port}
wsrep_slave_threads = 2
"""


def _synced(status: dict, size: int) -> bool:
    return (status.get("wsrep_cluster_size") == str(size) and status.get("wsrep_cluster_status") == "Primary"
            and status.get("wsrep_local_state_comment") == "Synced" and status.get("wsrep_ready") == "ON")


def _mark_safe_to_bootstrap(grastate: Path) -> None:
    """Galera refuses to bootstrap from a node that was not the last to leave; restarting a whole
    test cluster from a chosen node is what is wanted here."""
    if grastate.exists():
        text = re.sub(r"^safe_to_bootstrap:\s*0", "safe_to_bootstrap: 1", grastate.read_text(), flags=re.M)
        grastate.write_text(text)


def _check_reachable(path: Path, account: pwd.struct_passwd) -> None:
    """The server account must be able to enter every directory above its files."""
    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if account.pw_name in g.gr_mem}
    for parent in [path, *path.parents]:
        st = parent.stat()
        bit = (stat.S_IXUSR if st.st_uid == account.pw_uid else
               stat.S_IXGRP if st.st_gid in groups else stat.S_IXOTH)
        if not st.st_mode & bit:
            raise ClusterError(f"{account.pw_name} cannot enter {parent}: choose a base dir under /tmp "
                               "(INCIDENTCTL_GALERA_DIR)")


def _signal(pid: int, sig: int, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError):
        (os.killpg if group else os.kill)(pid, sig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help="base directory (INCIDENTCTL_GALERA_DIR)")
    parser.add_argument("--base-port", type=int, help="first SQL port (INCIDENTCTL_GALERA_BASE_PORT, default 4306)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait (default 180)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start a fresh cluster and wait until it is synced")
    commands.add_parser("down", help="stop every node and remove the datadirs")
    commands.add_parser("status", help="show each node's state; exit 1 unless all are synced")
    commands.add_parser("wait", help="wait until all nodes are synced")
    for name, text in (("kill", "SIGKILL node N"), ("start", "start node N and wait until it rejoined")):
        commands.add_parser(name, help=text).add_argument("n", type=int, help="node number, 1..3")
    args = parser.parse_args(argv)
    try:
        cluster = Cluster(args.dir, args.base_port)
        if args.command == "up":
            started = time.monotonic()
            cluster.up(args.timeout)
            print(f"galera: {SIZE} nodes synced in {time.monotonic() - started:.1f}s")
        elif args.command == "down":
            cluster.down()
        elif args.command == "wait":
            cluster.wait_synced(SIZE, args.timeout)
        elif args.command == "kill":
            cluster.kill(args.n)
        elif args.command == "start":
            cluster.start(args.n, args.timeout)
        if args.command in ("up", "status", "wait", "start"):
            rows = cluster.status()
            for row in rows:
                print(f"node {row['node']}  {cluster.node(row['node']).url}  pid {row['pid'] or '-'}  "
                      f"{row.get('wsrep_local_state_comment', 'down')}  size {row.get('wsrep_cluster_size', '-')}")
            if args.command == "status" and not all(_synced(row, SIZE) for row in rows):
                return 1
    except ClusterError as exc:
        print(f"galera: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
