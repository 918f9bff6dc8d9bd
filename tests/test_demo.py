"""`make demo` runs `incidentctl demo`: the whole path on the embedded default, in a fresh folder."""

from __future__ import annotations

import os
import subprocess

from sqlalchemy import select

from incidentctl.database import make_engine
from incidentctl.schema import grafana_alerts


def test_demo_receives_the_story_over_http_and_shows_it(incidentctl_bin, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INCIDENTCTL_", "DB_", "SLACK_"))}
    env["HOME"] = str(tmp_path)
    run = subprocess.run([incidentctl_bin, "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "→ 202" in run.stdout and run.stdout.count("→ 200") == 8
    # the story: HighLatency escalated to critical, DiskAlmostFull auto-resolved, the crash loop flapped
    assert "processed 9 rows, 12 alerts, 3 opened, 6 updated, 1 reopened, 2 resolved, 0 ignored, 1 errors" in run.stdout
    engine = make_engine(f"sqlite+pysqlite:///{tmp_path / '.demo' / 'incidentctl.db'}")
    with engine.connect() as conn:
        stored = conn.execute(select(grafana_alerts.c.source, grafana_alerts.c.status)
                              .order_by(grafana_alerts.c.id)).all()
    engine.dispose()
    assert [s for s, _ in stored].count("grafana") == 6
    assert stored[-1] == ("unknown", None)
