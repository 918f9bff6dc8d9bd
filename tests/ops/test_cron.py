"""cron/: every file parses, and every `incidentctl …` command it names exists in the real CLI."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT
from tests.support.cli import invoke

CRON = ROOT / "cron"
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
ENV_LINE = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")
COMMAND = re.compile(r"(?<![\w/-])incidentctl\s+([a-z][a-z-]*)(?:\s+([a-z][a-z-]*))?")


def crontab_commands(path: Path) -> list[str]:
    commands = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#") or ENV_LINE.match(line):
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6, f"{path.name}:{n}: expected 5 time fields and a command"
        for f in fields[:5]:
            assert CRON_FIELD.match(f), f"{path.name}:{n}: bad time field {f!r}"
        commands.append(fields[5])
    return commands


def systemd_commands(path: Path) -> list[str]:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text(), source=str(path))
    assert "Unit" in parser, f"{path.name}: no [Unit]"
    kind = path.suffix[1:].capitalize()
    assert kind in parser, f"{path.name}: no [{kind}]"
    if kind == "Timer":
        unit = parser["Timer"]["Unit"]
        assert (path.parent / unit).exists(), f"{path.name}: its unit {unit} is not in cron/systemd"
    # configparser keeps only the last of repeated keys; systemd runs every ExecStart in order.
    return [line.split("=", 1)[1] for line in path.read_text().splitlines() if line.startswith("ExecStart=")]


def manifest_commands(path: Path) -> list[str]:
    commands = []
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs, f"{path.name}: empty"
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc) and doc["metadata"]["name"], path.name
        pod = doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment" else (
            doc["spec"]["jobTemplate"]["spec"]["template"]["spec"] if doc["kind"] == "CronJob" else None)
        if doc["kind"] == "Service":
            assert doc["spec"]["selector"] and doc["spec"]["ports"]
        if pod is None:
            continue
        for container in pod["containers"]:
            assert container["image"] == "incidentctl:latest"
            argv = container.get("command", []) + container.get("args", [])
            commands.append(" ".join(argv))
            if "serve" in argv:
                for probe in ("readinessProbe", "livenessProbe"):
                    assert container[probe]["httpGet"]["path"] == "/health", f"{path.name}: {probe}"
    return commands


FILES = sorted(p for p in CRON.rglob("*") if p.is_file() and p.name != "README.md")


def commands_of(path: Path) -> list[str]:
    if path.name.startswith("crontab"):
        return crontab_commands(path)
    if path.suffix in (".service", ".timer"):
        return systemd_commands(path)
    if path.suffix == ".yaml":
        return manifest_commands(path)
    raise AssertionError(f"no parser for {path}")


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CRON)))
def test_file_parses(path):
    commands_of(path)  # raises on a file that does not parse


def named_commands() -> set[tuple[str, ...]]:
    """(command[, subcommand]) for every command the files run, and every `incidentctl …` quoted
    in backticks in their comments and README."""
    texts = [c for path in FILES for c in commands_of(path)]
    for path in [*FILES, CRON / "README.md"]:
        texts += re.findall(r"`(incidentctl [^`]+)`", path.read_text())
    return {tuple(x for x in m.groups() if x) for text in texts for m in COMMAND.finditer(text)}


def test_files_name_the_expected_commands():
    tops = {c[0] for c in named_commands()}
    assert {"serve", "process", "notify", "run"} <= tops


@pytest.mark.parametrize("command", sorted(named_commands()), ids=" ".join)
def test_named_command_exists(command):
    result = invoke(*command, "--help")
    if result.exit_code != 0 and len(command) == 2:
        # the second word was an argument, not a subcommand: the command itself must exist
        result = invoke(command[0], "--help")
    assert result.exit_code == 0, f"`incidentctl {shlex.join(command)}` does not exist: {result.stderr}"
    assert "Usage:" in result.stdout
