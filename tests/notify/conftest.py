"""Fixtures shared by the notify tests."""

from __future__ import annotations

import pytest
import requests

from incidentctl.notify.slack_api import SlackApi
from tests.support.slack_web_fake import TOKEN, FakeSlackWeb, ManualClock


@pytest.fixture(scope="module")
def slack_web():
    """A fake Slack Web API on a manual clock (it never sleeps), one per test module: (fake, clock).
    Each test resets what it needs of the fake."""
    clock = ManualClock(1000.0)
    with FakeSlackWeb(clock=clock) as fake:
        yield fake, clock


@pytest.fixture
def api(slack_web):
    """A SlackApi client of that fake, sleeping on its clock (a 429's Retry-After passes at once)."""
    fake, clock = slack_web
    with requests.Session() as session:
        yield SlackApi(session, TOKEN, base_url=fake.api_url, clock=clock, sleep=clock.advance, timeout=5)
