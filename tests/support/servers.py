"""Real processes and sockets for tests: `incidentctl serve` as a subprocess, and a TCP proxy
that can cut the receiver off from its database and bring it back."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """`incidentctl serve` on a free port; `url` is its base URL. Stops with SIGTERM."""

    def __init__(self, incidentctl_bin: str, env: dict[str, str], log_path: Path, extra_args: list[str] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 — the server's log while it runs; stop() closes it
        self.proc = subprocess.Popen(
            [incidentctl_bin, "serve", "--port", str(self.port), *extra_args],
            env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"incidentctl serve exited {self.proc.returncode}: {self.log()}")
            try:
                requests.get(self.url + "/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"incidentctl serve did not start: {self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def terminate(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.terminate()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `down()` drops every connection and refuses new
    ones (as a stopped database does), `up()` listens again on the same port."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener:
            listener.close()
        for c in conns:
            _close(c)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    _close(client), _close(upstream)
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src), _close(dst)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


def serve_env(base_env: dict[str, str], **settings: str) -> dict[str, str]:
    env = dict(base_env)
    env.update({k: str(v) for k, v in settings.items()})
    env.setdefault("INCIDENTCTL_LOG_LEVEL", "WARNING")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class AlertmanagerProcess:
    """A real Prometheus Alertmanager on loopback whose only receiver is a webhook to `url`.

    `http_config` is the receiver's YAML http_config block (auth), already indented for it."""

    BINARY_NAMES = ("prometheus-alertmanager", "alertmanager")

    def __init__(self, binary: str, workdir: Path, webhook_url: str, http_config: str = ""):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "alertmanager.yml"
        config.write_text(f"""
route:
  receiver: incidentctl
  group_by: ['alertname', 'cluster']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: incidentctl
    webhook_configs:
      - url: '{webhook_url}'
        send_resolved: true
{http_config}
""")
        (workdir / "am-data").mkdir(exist_ok=True)
        self.log_path = workdir / "alertmanager.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 — Alertmanager's log while it runs; stop() closes it
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={workdir / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {self.log()}")
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"alertmanager did not start: {self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self._log.close()

    def __enter__(self) -> AlertmanagerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
