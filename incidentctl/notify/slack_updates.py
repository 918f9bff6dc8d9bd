"""Keeping posted messages current: pending re-renders → coalesced → chat.update, paced.

Many changes to the incidents a message shows make many renders of it; only the newest matters.
`coalesce` keeps one render per message (the one with the highest `seq`), and `send_updates`
sends those, in the order the messages have been waiting, through the client's pacing. A
message that can no longer be edited (`MessageGone`) is posted again as a new message in its
channel; the result carries the new ts, for the caller to point the message's incidents at. A
repost without an answer is `lost`, never posted again blindly. A workspace-wide failure (the
token) stops the run early; a dead channel skips only its own messages. Slack's answers never
raise here: each update gets a result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from incidentctl.notify.slack_api import MessageGone, OutcomeUnknown, Permanent, Retryable, SlackApi

UPDATED = "updated"
REPOSTED = "reposted"  # edit refused: the render went out as a new message (new_ts)
RETRY = "retry"  # not done this time (Slack overloaded, rate limited, no answer): send again later
FAILED = "failed"  # permanent: the token, the channel or the render must be fixed first
LOST = "lost"  # edit refused and the repost got no answer: it may be in the channel; not posted again


@dataclass(frozen=True)
class PendingUpdate:
    """A render of the message `ts` in `channel`; a higher `seq` is a newer render (e.g. the id
    of the change that caused it)."""

    channel: str
    ts: str
    seq: int
    text: str
    blocks: list | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.channel, self.ts


@dataclass(frozen=True)
class UpdateResult:
    update: PendingUpdate
    outcome: str  # updated | reposted | retry | failed | lost
    new_ts: str | None = None  # reposted: the new message
    error: str | None = None
    retry_after: float | None = None
    scope: str | None = None  # failed: workspace | channel | request (see slack_api.Permanent)
    attempted: bool = True  # False: not sent, an earlier answer decided it (token revoked, …)


def coalesce(updates: Iterable[PendingUpdate]) -> list[PendingUpdate]:
    """One update per message: its newest render (highest seq; the later one on a tie), the
    messages ordered by their oldest pending render, so the longest-waiting goes first."""
    newest: dict[tuple[str, str], PendingUpdate] = {}
    oldest: dict[tuple[str, str], int] = {}
    for u in updates:
        if u.key not in newest or u.seq >= newest[u.key].seq:
            newest[u.key] = u
        oldest[u.key] = min(oldest.get(u.key, u.seq), u.seq)
    return sorted(newest.values(), key=lambda u: (oldest[u.key], u.channel, u.ts))


def send_updates(api: SlackApi, updates: Sequence[PendingUpdate],
                 keep_going: Callable[[PendingUpdate], bool] | None = None) -> list[UpdateResult]:
    """Coalesces `updates` and sends each message's newest render with chat.update.

    Never raises for Slack's answers: each update sent gets a result. After a workspace-wide
    permanent error (the token) or a rate limit longer than the client waits, the remaining
    updates are not sent and share that result; after a channel's permanent error, the rest of
    that channel's are not sent. When `keep_going(update)` says no, that update and the rest
    are left for later: no result."""
    results: list[UpdateResult] = []
    stop: UpdateResult | None = None
    dead_channels: dict[str, UpdateResult] = {}
    for u in coalesce(updates):
        if stop is None and keep_going is not None and not keep_going(u):
            break
        earlier = stop or dead_channels.get(u.channel)
        if earlier is not None:
            results.append(UpdateResult(u, earlier.outcome, error=earlier.error, retry_after=earlier.retry_after,
                                        scope=earlier.scope, attempted=False))
            continue
        result = send_update(api, u)
        results.append(result)
        if result.scope == "workspace" or (result.outcome == RETRY and result.error == "ratelimited"):
            stop = result
        elif result.scope == "channel":
            dead_channels[u.channel] = result
    return results


def send_update(api: SlackApi, u: PendingUpdate) -> UpdateResult:
    """One chat.update; a message that cannot be edited is posted anew in its channel."""
    try:
        api.update_message(u.channel, u.ts, u.text, u.blocks)
        return UpdateResult(u, UPDATED)
    except MessageGone:
        pass
    except Permanent as exc:
        return UpdateResult(u, FAILED, error=exc.error, scope=exc.scope)
    except (Retryable, OutcomeUnknown) as exc:
        # chat.update sets the same content again: after no answer, sending it again is harmless.
        return UpdateResult(u, RETRY, error=exc.error, retry_after=exc.retry_after)
    try:
        _, new_ts = api.post_message(u.channel, u.text, u.blocks)
        return UpdateResult(u, REPOSTED, new_ts=new_ts)
    except Permanent as exc:
        return UpdateResult(u, FAILED, error=exc.error, scope=exc.scope)
    except OutcomeUnknown as exc:
        # The new message may be in the channel, and without its ts nothing can find it again:
        # posting once more could show it twice, so the caller stops keeping this one current.
        return UpdateResult(u, LOST, error=exc.error)
    except (Retryable, MessageGone) as exc:
        return UpdateResult(u, RETRY, error=exc.error, retry_after=exc.retry_after)
