"""The action inbox in tests: a running receiver that takes Slack clicks, and the inbox's rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, select

from incidentctl.db.schema import action_inbox
from incidentctl.ingest.receiver.app import Receiver
from tests.support import T0


@contextmanager
def clicking_receiver(engine: Engine, signing_secret: str) -> Iterator[Receiver]:
    """A started receiver on `engine` that verifies Slack requests with `signing_secret`, its clock at T0."""
    receiver = Receiver(engine, max_body_bytes=256 * 1024, write_timeout=5.0, clock=lambda: T0,
                        slack_signing_secret=signing_secret)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def inbox(engine: Engine) -> list[dict]:
    """Every inbox row, oldest first."""
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(action_inbox).order_by(action_inbox.c.id))]
