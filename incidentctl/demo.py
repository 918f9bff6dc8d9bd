"""`make demo`: the main job end to end on a throwaway embedded database.

Archives the bundled sample webhook bodies and shows what was stored. Later stages (processing,
the digest) are added here as they exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine, select

from .archive import insert_raw_alerts, raw_alert
from .context import utc_now
from .schema import grafana_alerts


@dataclass(frozen=True)
class Sample:
    name: str
    body: bytes


def bundled_samples() -> list[Sample]:
    """The sample webhook bodies shipped in incidentctl/samples, in name order."""
    folder = resources.files("incidentctl") / "samples"
    return [Sample(p.name, p.read_bytes()) for p in sorted(folder.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".json")]


def archive_samples(engine: Engine, samples: list[Sample]) -> list[int]:
    """Stores the samples as webhook requests would be stored; returns their ids."""
    with engine.begin() as conn:
        return insert_raw_alerts(
            conn,
            [raw_alert(s.body, received_at=utc_now(), user_agent="incidentctl-demo",
                       content_type="application/json") for s in samples],
        )


def archived_rows(engine: Engine) -> list[dict]:
    columns = [c for c in grafana_alerts.c if c.name != "body"]
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(*columns).order_by(grafana_alerts.c.id))]


def demo_database_path() -> Path:
    return Path(".demo") / "incidentctl.db"
