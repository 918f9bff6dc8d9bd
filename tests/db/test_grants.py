"""The least-privilege grants in docs/OPERATIONS.md, run as written on MariaDB.

The receiver's user can start (schema check) and store webhooks the way the receiver does, and
cannot read incidents or change stored rows; Grafana's user reads and cannot write.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from incidentctl.db.engine import ensure_schema, make_engine
from incidentctl.db.schema import grafana_alerts, incidents
from incidentctl.ingest.archive import insert_raw_alerts, raw_alert
from incidentctl.ingest.signatures import claim, forget_expired, signature
from tests.support import ROOT

OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
DENIED = (OperationalError, ProgrammingError)  # 1142 "command denied" arrives as either, by driver version


def documented_grants(role: str) -> tuple[str, list[str]]:
    """(user name, statements) of the ```sql block starting `-- role: <role>`."""
    block = re.search(rf"```sql\n-- role: {role}\n(.*?)```", OPERATIONS.read_text(), re.S)
    assert block, f"no `-- role: {role}` block in docs/OPERATIONS.md"
    statements = [s.strip() for s in block.group(1).split(";") if s.strip()]
    user = re.search(r"CREATE USER '([^']+)'", statements[0]).group(1)
    return user, statements


@pytest.fixture
def as_role(db_url):
    """Creates the documented user for a role on this test's database; drops it afterwards."""
    url = make_url(db_url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    created, engines = [], []

    def make(role: str):
        user, statements = documented_grants(role)
        name, password = f"ict_{role[:4]}_{secrets.token_hex(3)}", secrets.token_urlsafe(12)
        with admin.connect() as conn:
            for statement in statements:
                statement = (statement.replace(f"'{user}'", f"'{name}'").replace("'change-me'", f"'{password}'")
                             .replace("incidentctl.", f"`{url.database}`."))
                conn.execute(text(statement))
        created.append(name)
        engine = make_engine(url.set(username=name, password=password))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()
    with admin.connect() as conn:
        for name in created:
            conn.execute(text(f"DROP USER IF EXISTS '{name}'@'%'"))
    admin.dispose()


@pytest.mark.backends("mysql")
def test_receiver_grants_store_webhooks_and_nothing_else(as_role, engine, fixture_bodies):
    receiver = as_role("receiver")
    ensure_schema(receiver)  # what `serve` does at start
    now = datetime.now(timezone.utc)
    bodies = list(fixture_bodies.values())[:3]
    with receiver.begin() as conn:  # one row, then several (the multi-row INSERT … RETURNING path)
        ids = insert_raw_alerts(conn, [raw_alert(bodies[0], received_at=now)])
        ids += insert_raw_alerts(conn, [raw_alert(b, received_at=now) for b in bodies])
    with engine.connect() as conn:  # stored byte for byte, as the owner sees it
        stored = conn.execute(select(grafana_alerts.c.body).where(grafana_alerts.c.id.in_(ids))
                              .order_by(grafana_alerts.c.id)).scalars().all()
    assert stored == [bodies[0], *bodies]
    with receiver.connect() as conn, pytest.raises(DENIED, match="1142"):  # cannot read incidents
        conn.execute(select(incidents.c.id)).all()
    with receiver.connect() as conn, pytest.raises(DENIED, match="1142"):  # cannot rewrite history
        conn.execute(grafana_alerts.update().values(processed_at=now))
    with receiver.connect() as conn, pytest.raises(DENIED, match="1142"):  # nor delete it
        conn.execute(grafana_alerts.delete())
    used = signature("grafana-hmac", "abc", now - timedelta(hours=1))
    with receiver.begin() as conn:  # signed webhooks: signatures recorded, the expired deleted
        assert claim(conn, [used], now) == {used.key}
    with receiver.connect() as conn:
        assert forget_expired(conn, now) == 1


@pytest.mark.backends("mysql")
def test_grafana_grants_read_only(as_role):
    reader = as_role("grafana")
    with reader.connect() as conn:
        assert conn.execute(select(incidents.c.id)).all() == []
        with pytest.raises(DENIED, match="1142"):
            conn.execute(text("DELETE FROM incidents"))
