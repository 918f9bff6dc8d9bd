"""The Dockerfile (no Docker engine here): every path it copies exists and reaches the build
context, every `incidentctl` command it runs exists with its options, and its HEALTHCHECK
really tells a healthy receiver from one answering 503."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from incidentctl.config import SETTINGS_BY_NAME
from tests.support import ROOT
from tests.support.cli import command_tree


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        lines.append(current)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def resolve(argv: list[str]):
    """The (click) command `incidentctl argv…` runs, its options checked."""
    commands = {path: command for path, command, _ in command_tree()}
    path, words = (), list(argv)
    while words and hasattr(commands[path], "list_commands"):  # a group (typer vendors its own click)
        name = words.pop(0)
        path += (name,)
        assert path in commands, f"no command `{name}` in `incidentctl {' '.join(argv)}`"
    command = commands[path]
    known = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for word in words:
        if word.startswith("-"):
            assert word.split("=")[0] in known, f"`incidentctl {' '.join(argv)}`: unknown option {word}"
    return command


DOCKERFILE = instructions(ROOT / "Dockerfile")


def _ignored(path: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    return any(fnmatch.fnmatch(path, p) or path.split("/")[0] == p for p in patterns)


def test_copy_sources_exist_and_are_in_the_build_context():
    copies = [exec_form(args) for op, args in DOCKERFILE if op in ("COPY", "ADD")]
    assert copies
    sources = [s for words in copies for s in words[:-1] if not s.startswith("--")]
    for source in sources:
        assert (ROOT / source).exists(), f"COPY source {source} does not exist"
        assert not _ignored(source), f"COPY source {source} is excluded by .dockerignore"
    # `pip install .` needs what pyproject.toml names: the readme and the package.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["readme"] in sources and "pyproject.toml" in sources and "incidentctl" in sources


def test_base_image_user_port_and_entrypoint():
    ops = dict(DOCKERFILE)  # last of each wins, as in Docker
    assert [a for op, a in DOCKERFILE if op == "FROM"] == ["python:3.11-slim"]
    assert ops["USER"] not in ("root", "0") and any("useradd" in a for op, a in DOCKERFILE if op == "RUN")
    assert any(a.startswith("pip install .") for op, a in DOCKERFILE if op == "RUN")
    assert ops["EXPOSE"] == str(SETTINGS_BY_NAME["port"].default)
    assert exec_form(ops["ENTRYPOINT"]) == ["incidentctl"]
    assert exec_form(ops["CMD"]) == ["serve", "--host", "0.0.0.0"]


def _resolve_all(commands: list[list[str]]) -> None:
    for argv in commands:
        resolve(argv)


def test_every_incidentctl_command_it_names_exists():
    assert exec_form(dict(DOCKERFILE)["ENTRYPOINT"]) == ["incidentctl"]
    commands = [exec_form(dict(DOCKERFILE)["CMD"])]  # CMD is appended to the ENTRYPOINT
    for op, args in DOCKERFILE:
        if op == "RUN" and "incidentctl " in args:
            for part in args.split("&&"):
                words = shlex.split(part)
                if words and words[0] == "incidentctl":
                    commands.append(words[1:])
    _resolve_all(commands)


def test_deployment_docs_name_only_real_commands_and_options():
    # `incidentctl …` in inline code, systemd ExecStart= lines and `docker run … incidentctl:latest …`.
    commands = []
    for doc in ("DEPLOYMENT.md", "OPERATIONS.md"):
        text = (ROOT / "docs" / doc).read_text()
        spans = re.findall(r"`incidentctl ([^`]+)`", text)
        spans += re.findall(r"^ExecStart=\S*/incidentctl (.+)$", text, re.M)
        spans += re.findall(r"incidentctl:latest ([a-z][^\n#]*)", text)
        for span in spans:
            words = shlex.split(span.split(">")[0].split("#")[0])
            if words:
                commands.append(words)
    assert len(commands) > 10
    _resolve_all(commands)


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status, exit_code", [
    (200, 0),  # healthy receiver: healthy container
    (503, 1),  # database down: /health answers 503, the container is unhealthy
])
@pytest.mark.slow
def test_healthcheck_command_tells_healthy_from_unhealthy(status, exit_code):
    args = dict(DOCKERFILE)["HEALTHCHECK"]
    command = exec_form(args.split("CMD", 1)[1].strip())
    assert command[0] == "python"  # the slim image has no curl
    handler = type("Handler", (_Health,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done = subprocess.run([sys.executable, *command[1:]], capture_output=True, timeout=30,
                              env={"INCIDENTCTL_PORT": str(server.server_address[1])})
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == exit_code, done.stderr
