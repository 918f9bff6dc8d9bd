"""Conventions every command follows: `-o` is the output format, help shows defaults and no
`<bool>`, a bad value names its option in one line, a command refuses a format it cannot print."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.support.cli import command_tree, invoke
from tests.support.processing import store_spaced

COMMANDS = command_tree()


def _options(command):
    return [p for p in command.params if p.param_type_name == "option"]


def test_o_is_only_ever_the_output_format():
    seen = 0
    for path, command, _ in COMMANDS:
        for param in _options(command):
            if "-o" in param.opts or "-o" in param.secondary_opts:
                seen += 1
                assert param.name == "output" and "--output" in param.opts, (
                    f"incidentctl {' '.join(path)}: -o is {param.opts}, not --output")
    assert seen > 20


def test_export_writes_to_file_not_to_o(tmp_path, monkeypatch):
    (export,) = [c for p, c, _ in COMMANDS if p == ("export",)]
    (file_option,) = [p for p in _options(export) if "--file" in p.opts]
    assert "-f" in file_option.opts and "--out" in file_option.opts  # --out kept: it always meant the file


@pytest.mark.parametrize("path", [p for p, _, _ in COMMANDS], ids=lambda p: " ".join(p) or "incidentctl")
def test_help_shows_defaults_and_no_bool_metavar(path):
    result = invoke(*path, "--help", env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "BOOLEAN" not in result.output
    (command, ctx) = next((c, x) for p, c, x in COMMANDS if p == path)
    for param in _options(command):
        opts, help_text = param.get_help_record(ctx)
        assert opts.split(",")[0].split()[0] in result.output  # the record is what --help prints
        if param.is_flag:
            assert "<" not in opts, opts  # a flag takes no value
            continue
        shows = (param.default is not None and param.default != []) or isinstance(param.show_default, str)
        if shows:
            assert "[default: " in help_text, f"incidentctl {' '.join(path)} {opts}: no default shown"
        # a default belongs in [default: …], where every option puts it, not in the prose
        assert "default:" not in help_text.split("[")[0].lower(), f"{' '.join(path)} {opts}: {help_text}"


@pytest.fixture
def sqlite_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return {"INCIDENTCTL_DATABASE_URL": f"sqlite+pysqlite:///{tmp_path / 'x.db'}", "COLUMNS": "80"}


# (arguments, the option the one-line error must name, a word of the explanation)
BAD_VALUES = [
    (["report", "--since", "2y"], "'--since'", "not a duration"),
    (["report", "--until", "later"], "'--until'", "not a duration"),
    (["report", "--since", "1d", "--until", "2d"], "'--until'", "after --since"),
    (["simulate", "--since", "soon"], "'--since'", "not a duration"),
    (["simulate", "--reopen-window", "forever"], "'--reopen-window'", ""),
    (["list", "--since", "yesterday"], "'--since'", "not a duration"),
    (["list", "--severity", "P9"], "'--severity'", "not one of"),
    (["export", "--until", "x"], "'--until'", "not a duration"),
    (["purge", "--older-than", "old"], "'--older-than'", ""),
    (["replay", "-", "--received-at", "yesterday"], "'--received-at'", "ISO 8601"),
    (["grafana", "contact-point", "--url", "ftp://x"], "'--url'", "http(s)"),
    (["export", "-o", "json"], "'--output' / '-o'", "the file is --file/-f PATH"),
    (["export", "-o", "backup.jsonl"], "'--output' / '-o'", "the file is --file/-f PATH"),
    (["simulate", "-o", "csv"], "'--output' / '-o'", "prints table or json"),
    (["rebuild", "-o", "csv"], "'--output' / '-o'", "prints table or json"),
    (["db", "status", "-o", "csv"], "'--output' / '-o'", "prints table or json"),
    (["notify", "-o", "csv"], "'--output' / '-o'", "prints table or json"),
    (["replay", "-", "-o", "csv"], "'--output' / '-o'", "prints table or json"),
    (["outbox", "retry", "-o", "csv"], "'--output' / '-o'", "prints table or json"),
    (["list", "-o", "yaml"], "'--output' / '-o'", "yaml"),
]


@pytest.mark.parametrize("args,option,why", BAD_VALUES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_a_bad_value_is_one_line_naming_its_option(sqlite_env, tmp_path, args, option, why):
    result = invoke(*args, env=sqlite_env)
    assert result.exit_code == 2, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert line.startswith(f"Error: Invalid value for {option}: ") and why in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["x.db"])  # `export -o json` wrote no `json`


def test_export_takes_file_or_standard_output_and_jsonl_format(db_url, engine, tmp_path, fixture_bodies):
    store_spaced(engine, list(fixture_bodies.values())[:3])
    env = {"INCIDENTCTL_DATABASE_URL": db_url}
    to_stdout = invoke("export", "-o", "jsonl", env=env)
    assert to_stdout.exit_code == 0, to_stdout.output
    lines = [line for line in to_stdout.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 3
    for flag in ("--file", "-f", "--out"):
        target = tmp_path / f"export{flag}.jsonl"
        result = invoke("export", flag, str(target), env=env)
        assert result.exit_code == 0, result.output
        assert target.read_text().splitlines() == lines


@pytest.fixture
def seeded(db_url, engine):
    firing = {"status": "firing", "labels": {"alertname": "Latency", "cluster": "eu1", "severity": "warning"},
              "annotations": {}, "startsAt": "2026-01-05T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}
    resolved = {**firing, "status": "resolved", "endsAt": "2026-01-05T09:10:00Z"}
    store_spaced(engine, [json.dumps({"version": "4", "status": a["status"], "alerts": [a]}).encode()
                          for a in (firing, resolved)])
    env = {"INCIDENTCTL_DATABASE_URL": db_url, "USER": "tester", "LOGNAME": "tester"}
    assert invoke("process", env=env).exit_code == 0
    return env


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_show_csv_is_the_timeline(seeded):
    (incident,) = json.loads(invoke("list", "--status", "all", "-o", "json", env=seeded).stdout)
    result = invoke("show", str(incident["id"]), "-o", "csv", env=seeded)
    assert result.exit_code == 0, result.output
    rows = _csv(result.stdout)
    events = json.loads(invoke("show", str(incident["id"]), "-o", "json", env=seeded).stdout)["events"]
    assert [(r["id"], r["kind"], r["at"]) for r in rows] == [(str(e["id"]), e["kind"], e["at"]) for e in events]
    assert rows[0]["kind"] == "opened" and rows[0]["at"] == "2026-01-05T09:00:00Z" and rows[0]["raw_alert_id"]
    assert rows[-1]["kind"] == "resolved" and rows[0]["actor"] == "incidentctl"


def test_commands_that_print_one_object_give_a_csv_row(seeded):
    (incident,) = json.loads(invoke("list", "--status", "all", "-o", "json", env=seeded).stdout)
    noted = invoke("note", str(incident["id"]), "checked", "-o", "csv", env=seeded)
    assert _csv(noted.stdout) == [{"id": str(incident["id"]), "ok": "True"}]
    added = invoke("silence", "add", "--match", "cluster=eu1", "--duration", "1h", "--comment", "x",
                   "-o", "csv", env=seeded)
    (row,) = _csv(added.stdout)
    assert row["matchers"] and row["created_by"] == "tester"
    settings = _csv(invoke("config", "-o", "csv", env=seeded).stdout)
    assert {"name", "env", "value", "source"} == set(settings[0]) and len(settings) > 10  # no text line before


# (environment or config, command, exit code, the one line on stderr): the core's errors,
# raised by the settings or by a command, end every command the same way
CORE_ERRORS = [
    ({"INCIDENTCTL_BATCH_SIZE": "many"}, ["list"], 2,
     "error: environment variable INCIDENTCTL_BATCH_SIZE: invalid value"),
    ({"INCIDENTCTL_DATABASE_URL": "postgresql://db/x"}, ["list"], 2, "unsupported database 'postgresql'"),
    ({"INCIDENTCTL_CONFIG": "missing.toml"}, ["process"], 2, "error: config file not found: missing.toml"),
    ({}, ["show", "424242"], 1, "error: incident 424242 not found"),
    ({}, ["silence", "add", "-m", "team", "--duration", "1h", "--comment", "x"], 2, "expected name=value"),
]


@pytest.mark.parametrize("env, args, code, line", CORE_ERRORS,
                         ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_a_core_error_is_one_line_and_its_exit_code(sqlite_env, env, args, code, line):
    result = invoke(*args, env={**sqlite_env, **env})
    assert result.exit_code == code, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1 and line in result.stderr, result.stderr
