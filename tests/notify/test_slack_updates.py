"""Keeping messages current: renders coalesced per message, sent paced, fallbacks and failures."""

from __future__ import annotations

import random

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from incidentctl.notify.slack_api import SlackApi
from incidentctl.notify.slack_updates import FAILED, REPOSTED, RETRY, UPDATED, PendingUpdate, coalesce, send_updates
from tests.support.slack_web_fake import TOKEN, FakeSlackWeb, Limit, ManualClock

CHANNELS = {"C0ALERTS": "alerts", "C0OPS": "ops", "C0DB": "db"}


def u(channel: str, ts: str, seq: int, text: str | None = None) -> PendingUpdate:
    return PendingUpdate(channel, ts, seq, text or f"{channel}/{ts} v{seq}")


@pytest.mark.parametrize("updates, expected", [
    ([], []),                                                          # nothing pending
    ([u("C", "1", 1)], [("1", 1)]),                                    # one stays one
    ([u("C", "1", 1), u("C", "1", 2), u("C", "1", 3)], [("1", 3)]),    # only the newest render goes
    ([u("C", "1", 3), u("C", "1", 2)], [("1", 3)]),                    # newest by seq, not by list order
    ([u("C", "1", 5, "a"), u("C", "1", 5, "b")], [("1", 5)]),          # a tie: the later one
    ([u("C", "2", 1), u("C", "1", 2), u("C", "2", 3)], [("2", 3), ("1", 2)]),  # longest waiting first
    ([u("C", "1", 1), u("D", "1", 2)], [("1", 1), ("1", 2)]),          # same ts, other channel: another message
])
def test_coalesce(updates, expected):
    assert [(x.ts, x.seq) for x in coalesce(updates)] == expected


def test_coalesce_keeps_the_later_of_a_tie():
    assert coalesce([u("C", "1", 5, "a"), u("C", "1", 5, "b")])[0].text == "b"


@given(st.lists(st.tuples(st.sampled_from(["C1", "C2"]), st.sampled_from(["1", "2", "3"]), st.integers(0, 50))))
def test_coalesce_sends_each_messages_newest_render_once(items):
    updates = [u(c, ts, seq) for c, ts, seq in items]
    out = coalesce(updates)
    assert len({x.key for x in out}) == len(out) == len({x.key for x in updates})
    for x in out:
        assert x.seq == max(y.seq for y in updates if y.key == x.key)


# -- against the fake ------------------------------------------------------------------------

@pytest.fixture
def world(request):
    limits = getattr(request, "param", None)
    clock = ManualClock(1000.0)
    with FakeSlackWeb(clock=clock, channels=CHANNELS, limits=limits) as fake, requests.Session() as session:
        api = SlackApi(session, TOKEN, base_url=fake.api_url, clock=clock, sleep=clock.advance, timeout=5)
        yield fake, clock, api


def post_messages(api, n: int) -> list[tuple[str, str]]:
    channels = sorted(CHANNELS)
    return [api.post_message(channels[i % len(channels)], f"digest {i}") for i in range(n)]


def stream(messages, n: int, seconds: float, seed: int = 15) -> list[tuple[float, PendingUpdate]]:
    """`n` re-renders spread over `messages` and `seconds`, at random (fixed seed)."""
    rng = random.Random(seed)
    times = sorted(rng.uniform(0, seconds) for _ in range(n))
    return [(t, PendingUpdate(*rng.choice(messages), seq=i, text=f"render {i}")) for i, t in enumerate(times)]


def run_until_current(api, clock, arrivals, interval: float = 5.0) -> tuple[list, int]:
    """What a `run` loop does: every `interval`, send what arrived (and what was left to retry)."""
    start, pending, rounds, results = clock(), [], 0, []
    arrivals = list(arrivals)
    while arrivals or pending:
        while arrivals and start + arrivals[0][0] <= clock():
            pending.append(arrivals.pop(0)[1])
        done = send_updates(api, pending)
        results += done
        pending = [r.update for r in done if r.outcome == RETRY]
        assert all(r.outcome in (UPDATED, RETRY) for r in done), [r for r in done if r.outcome not in (UPDATED, RETRY)]
        clock.advance(interval)
        rounds += 1
        assert rounds < 10_000
    return results, rounds


def assert_current(fake, arrivals):
    last = {}
    for _, x in arrivals:
        last[x.key] = x.text
    for key, text in last.items():
        assert fake.messages[key].text == text, key


def test_a_thousand_changes_over_twenty_messages_end_current_within_the_limits(world):
    fake, clock, api = world
    messages = post_messages(api, 20)
    arrivals = stream(messages, 1000, seconds=600)
    results, _ = run_until_current(api, clock, arrivals)
    assert_current(fake, arrivals)
    assert fake.throttled == [] and fake.violations == []       # paced below Slack's limits
    assert len(fake.calls_to("chat.update")) == len([r for r in results if r.outcome == UPDATED]) < 1000


@pytest.mark.parametrize("world", [{"chat.update": Limit(0.3, 2)}], indirect=True)
def test_a_slack_stricter_than_published_is_waited_out_never_run_into(world):
    fake, clock, api = world
    messages = post_messages(api, 20)
    arrivals = stream(messages, 1000, seconds=300)
    run_until_current(api, clock, arrivals)
    assert_current(fake, arrivals)
    assert fake.throttled and fake.violations == [] and fake.honoured > 0


def test_every_update_sent_one_by_one_is_paced_too(world):
    """No coalescing at all (each render its own run): still no 429."""
    fake, clock, api = world
    messages = post_messages(api, 20)
    arrivals = stream(messages, 300, seconds=1)
    for _, x in arrivals:
        assert [r.outcome for r in send_updates(api, [x])] == [UPDATED]
    assert_current(fake, arrivals)
    assert fake.throttled == [] and fake.violations == [] and len(fake.calls_to("chat.update")) == 300


def test_a_message_that_cannot_be_edited_is_posted_anew(world):
    fake, clock, api = world
    human = fake.seed_message("C0ALERTS", "someone else's")
    _, old = api.post_message("C0OPS", "digest")
    fake.edit_window = 60
    clock.advance(61)
    results = send_updates(api, [u("C0ALERTS", human, 1, "current A"), u("C0OPS", old, 2, "current B")])
    assert [r.outcome for r in results] == [REPOSTED, REPOSTED]
    for r in results:
        assert r.new_ts and fake.messages[(r.update.channel, r.new_ts)].text == r.update.text
    assert fake.messages[("C0ALERTS", human)].text == "someone else's"


def test_a_revoked_token_stops_the_run(world):
    fake, _, api = world
    messages = post_messages(api, 3)
    fake.revoke(TOKEN)
    results = send_updates(api, [u(c, ts, i) for i, (c, ts) in enumerate(messages)])
    assert [(r.outcome, r.error, r.scope, r.attempted) for r in results] == (
        [(FAILED, "token_revoked", "workspace", True)] + [(FAILED, "token_revoked", "workspace", False)] * 2)
    assert len(fake.calls_to("chat.update")) == 1


def test_a_dead_channel_skips_its_messages_only(world):
    fake, _, api = world
    messages = post_messages(api, 6)   # two per channel
    fake.archive("C0DB")
    results = send_updates(api, [u(c, ts, i) for i, (c, ts) in enumerate(messages)])
    by_channel = {}
    for r in results:
        by_channel.setdefault(r.update.channel, []).append((r.outcome, r.attempted))
    assert by_channel == {"C0ALERTS": [(UPDATED, True)] * 2, "C0OPS": [(UPDATED, True)] * 2,
                          "C0DB": [(FAILED, True), (FAILED, False)]}
    assert {r.error for r in results if r.outcome == FAILED} == {"is_inactive"}


def test_a_server_error_is_retried_next_time_and_the_rest_go_on(world):
    fake, _, api = world
    messages = post_messages(api, 3)
    fake.fail("chat.update", "internal", status=503)
    results = send_updates(api, [u(c, ts, i) for i, (c, ts) in enumerate(messages)])
    assert [r.outcome for r in results] == [RETRY, UPDATED, UPDATED]
