"""Helpers shared by the benchmarks: a scratch MariaDB database, a running receiver, wrk."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
MYSQL_SERVER_URL = os.environ.get("INCIDENTCTL_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
INCIDENTCTL = str(Path(sys.executable).parent / "incidentctl")


def scratch_database(name: str) -> str:
    """Drops and creates `name` on the bench server; returns its URL."""
    admin = create_engine(MYSQL_SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    admin.dispose()
    return make_url(MYSQL_SERVER_URL).set(database=name).render_as_string(hide_password=False)


def byte_compiled(binary: Path) -> None:
    """Compiles `binary`'s package to bytecode, as installing a wheel does. An editable install
    run with PYTHONDONTWRITEBYTECODE=1 (this project's CI machines set it) would compile every
    module again at each start (~70 ms of CPU), and the console script's start-up is part of
    each figure."""
    code = ("import compileall, os, sys, incidentctl; "
            "sys.exit(not compileall.compile_dir(os.path.dirname(incidentctl.__file__), quiet=1))")
    # -I: not the current directory's package, which may be another checkout of it
    subprocess.run([str(binary.parent / "python"), "-I", "-c", code], check=True)


def drop_database(name: str) -> None:
    admin = create_engine(MYSQL_SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_receiver(db_url: str, port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "INCIDENTCTL_DATABASE_URL": db_url, "INCIDENTCTL_LOG_LEVEL": "WARNING", **(env or {})}
    proc = subprocess.Popen([INCIDENTCTL, "serve", "--port", str(port)], env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("receiver did not become healthy")


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get)…", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
        return shutil.which("wrk") or "wrk"
    raise SystemExit("wrk is needed: apt-get install wrk")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> dict:
    """Requests/s, latency percentiles (ms) and non-2xx count from `wrk --latency` output."""
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        figures[f"p{pct}_ms"] = float(m.group(1)) * _UNITS[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    figures["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors:.*", output)
    figures["socket_errors"] = errors.group(0) if errors else ""
    figures["requests"] = int(re.search(r"(\d+) requests in", output).group(1))
    return figures


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {sys.version.split()[0]}"
