"""simulate: the grouping over history in memory, current vs proposed rules, writing nothing."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select

from incidentctl.config import load_settings
from incidentctl.db.schema import incidents
from incidentctl.history.simulate import simulate
from incidentctl.incidents.model import Rules
from tests.support.cli import invoke
from tests.support.processing import checksums, process_all, store
from tests.support.synthetic_history import history

SETTINGS = load_settings({})
CURRENT = Rules(tuple(SETTINGS.group_by), timedelta(seconds=SETTINGS.reopen_window))


def test_current_rules_predict_what_process_makes(engine):
    # The simulation under the current rules counts exactly the incidents and reopens `process`
    # writes for the same rows; grouping by alertname alone gives fewer, larger incidents.
    store(engine, history(series=40, minutes=120, seed=5))
    result = simulate(engine, [CURRENT, Rules(("alertname",), CURRENT.reopen_window)])
    process_all(engine)
    with engine.connect() as conn:
        made, reopens = conn.execute(select(func.count(), func.sum(incidents.c.reopen_count))).one()
    current, by_alertname = result.outcomes
    assert (current.incidents, current.reopens) == (made, reopens) and made > 3
    assert by_alertname.incidents < current.incidents
    assert sum(current.per_day.values()) == current.incidents
    assert result.alerts == sum(current.alerts_by_fingerprint.values())


def test_simulate_writes_nothing(engine, db_url):
    store(engine, history(series=20, minutes=60, seed=2))
    process_all(engine, limit=10)  # a partly processed database
    before = checksums(engine)
    result = invoke("simulate", "--group-by", "alertname", "--reopen-window", "2h",
                    "--since", "2026-01-01T00:00:00Z", "-o", "json", env={"INCIDENTCTL_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    current, proposed = data["rules"]
    assert proposed["group_by"] == ["alertname"] and proposed["reopen_window_s"] == 7200
    assert proposed["incidents"] <= current["incidents"] and data["rows"] > 0
    assert checksums(engine) == before
    table = invoke("simulate", "--group-by", "fingerprint", "--since", "2026-01-01T00:00:00Z",
                   env={"INCIDENTCTL_DATABASE_URL": db_url})
    assert table.exit_code == 0 and "Top fingerprints by alerts, proposed rules" in table.stdout
    assert checksums(engine) == before
    bad = invoke("simulate", "--reopen-window", "soon", env={"INCIDENTCTL_DATABASE_URL": db_url})
    assert bad.exit_code == 2
