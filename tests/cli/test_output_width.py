"""Tables off a terminal: whole cells (grep, cron mail); COLUMNS rules when set."""

from __future__ import annotations

import json

import pytest

from incidentctl.cli.output import UNLIMITED_WIDTH, stdout_console
from tests.support.cli import run_cli
from tests.support.processing import store_spaced

ALERTNAME = "PaymentsCheckoutLatencyAboveSLOForEuropeanCustomersDuringThePeakTrafficWindow"
LABELS = {"alertname": ALERTNAME, "cluster": "prod-eu-west-1-primary", "namespace": "payments-checkout",
          "service": "payments-api-gateway", "severity": "critical"}
TITLE = f"{ALERTNAME} (prod-eu-west-1-primary/payments-checkout/payments-api-gateway)"
SUMMARY = "p99 latency of the checkout API has been above the 800 ms objective for 15 minutes in eu-west-1"


# (COLUMNS, the width tables get when stdout is not a terminal, as under pytest)
WIDTHS = [
    (None, UNLIMITED_WIDTH),  # a pipe, cron mail: never cut
    ("100", 100),  # COLUMNS rules (watch sets it)
    ("80", 80),
    ("wide", UNLIMITED_WIDTH),  # not a number: ignored, as rich ignores it
]


@pytest.mark.parametrize("columns,width", WIDTHS)
def test_stdout_console_width(monkeypatch, columns, width):
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert stdout_console().width == width


def _body() -> bytes:
    alert = {"status": "firing", "labels": LABELS, "annotations": {"summary": SUMMARY},
             "startsAt": "2026-01-05T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}
    return json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()


@pytest.mark.slow
def test_a_pipe_gets_whole_cells_and_columns_rules_when_set(engine, cli_env):
    env = {k: v for k, v in cli_env.items() if k not in ("COLUMNS", "LINES")}
    store_spaced(engine, [_body()])
    assert '"opened": 1' in run_cli("process", "-o", "json", env=env, check=True).stdout
    listed = run_cli("list", env=env, check=True).stdout  # stdout is a pipe, COLUMNS unset
    (row,) = [line for line in listed.splitlines() if "payments" in line]  # `list | grep payments`
    assert TITLE in row and "critical" in row and "…" not in listed
    (incident,) = json.loads(run_cli("list", "-o", "json", env=env, check=True).stdout)
    shown = run_cli("show", str(incident["id"]), env=env, check=True).stdout
    assert any(TITLE in line for line in shown.splitlines())
    assert any(f"summary: {SUMMARY}" in line for line in shown.splitlines())
    narrow = run_cli("list", env={**env, "COLUMNS": "80"}, check=True).stdout
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "…" not in narrow  # folded onto more lines, not cut
    assert ALERTNAME[:6] in narrow and TITLE not in narrow
