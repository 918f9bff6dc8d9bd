"""Fixtures shared by the notify tests."""

from __future__ import annotations

import pytest

from tests.support.slack_web_fake import FakeSlackWeb, ManualClock


@pytest.fixture(scope="module")
def slack_web():
    """A fake Slack Web API on a manual clock (it never sleeps), one per test module: (fake, clock).
    Each test resets what it needs of the fake."""
    clock = ManualClock(1000.0)
    with FakeSlackWeb(clock=clock) as fake:
        yield fake, clock
