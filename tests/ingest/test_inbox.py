"""The action inbox's own queries, on SQLite and MariaDB: whether the applier has anything to do."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from incidentctl.db.schema import action_inbox
from incidentctl.ingest.inbox import Door, InboxRequest, InboxState, ReplyState, actions_waiting, insert_requests
from tests.support import T0

P, A, R = InboxState.PENDING, InboxState.APPLIED, InboxState.REFUSED


@pytest.mark.parametrize("rows, waiting", [
    ([], False),  # an empty inbox
    ([(P, None)], True),  # an action to apply
    ([(A, None), (R, ReplyState.FAILED), (R, ReplyState.SENT)], False),  # all decided, every reply settled
    ([(A, None), (R, ReplyState.PENDING)], True),  # decided, but a refusal's reply still owed (a retry)
    ([(A, None), (P, None)], True),  # a new action behind decided ones
], ids=["empty", "pending", "settled", "reply-owed", "pending-behind-applied"])
def test_actions_waiting(engine, rows, waiting):
    with engine.begin() as conn:
        ids = insert_requests(conn, [InboxRequest(T0, Door.API, b"{}") for _ in rows])
        for row_id, (state, reply) in zip(ids, rows, strict=True):
            conn.execute(update(action_inbox).where(action_inbox.c.id == row_id)
                         .values(state=state, reply_state=reply))
    assert actions_waiting(engine) is waiting
