"""`make demo` runs `incidentctl demo`: the whole path on the embedded default, in a fresh folder."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from incidentctl.db.engine import make_engine
from incidentctl.db.schema import grafana_alerts, incidents, notifications
from tests.support.cli import run_cli
from tests.support.slack_fake import FakeSlack

pytestmark = pytest.mark.slow

STORY = "2 new · 1 resolved"  # per incident: the crash loop flapped, DiskAlmostFull came and went


def run_demo(tmp_path, **env_extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("INCIDENTCTL_", "DB_", "SLACK_")) and k not in ("COLUMNS", "LINES")}
    env.update(HOME=str(tmp_path), **env_extra)
    run = run_cli("demo", cwd=tmp_path, env=env, check=True)
    return run.stdout, make_engine(f"sqlite+pysqlite:///{tmp_path / '.demo' / 'incidentctl.db'}")


def test_demo_receives_processes_and_shows_the_digest_it_would_send(tmp_path):
    out, engine = run_demo(tmp_path)
    assert "→ 202" in out and out.count("→ 200") == 8
    # the story: HighLatency escalated to critical, DiskAlmostFull auto-resolved, the crash loop flapped
    assert "processed 9 rows, 12 alerts, 3 opened, 6 updated, 1 reopened, 2 resolved, 0 ignored, 1 errors" in out
    assert "notify --dry-run" in out and f"incidentctl: {STORY}" in out
    with engine.connect() as conn:
        stored = conn.execute(select(grafana_alerts.c.source, grafana_alerts.c.status)
                              .order_by(grafana_alerts.c.id)).all()
        states = conn.execute(select(notifications.c.state)).scalars().all()
        titles = conn.execute(select(incidents.c.title)).scalars().all()
    engine.dispose()
    # stdout is a pipe (as in CI or `make demo | less`): each title whole on its row, never cut
    assert len(titles) == 3 and all(any(t in line for line in out.splitlines()) for t in titles)
    assert "…" not in out
    assert [s for s, _ in stored].count("grafana") == 6
    assert stored[-1] == ("unknown", None)
    assert set(states) == {"pending"}  # a dry run marks nothing


def test_demo_sends_the_digest_when_slack_is_configured(tmp_path):
    with FakeSlack() as slack:
        out, engine = run_demo(tmp_path, SLACK_WEBHOOK_URL=slack.url("ok"))
        (message,) = slack.bodies("ok")
    assert message["text"].startswith(f"incidentctl: {STORY}")
    assert "sending" in out and "/services/ok" not in out  # the webhook URL is a secret
    with engine.connect() as conn:
        assert set(conn.execute(select(notifications.c.state)).scalars()) == {"sent"}
    engine.dispose()
