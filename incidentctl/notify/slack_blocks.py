"""Block Kit for the Slack app: actions on incident lines, the current state of an incident,
thread replies. Pure: no database, no clock, no network.

The words of an incident line come from digest.py (`change_line`, the one place a line is
written); this module adds around them what an app needs:
- `with_actions(message, entries, now, states)` — a digest (from `build_digest`) with an
  overflow menu on each incident line (section accessory: no extra block, so the digest keeps
  every line it had within Slack's 50 blocks), and, when current `states` are given, each
  line's state (who acknowledged or resolved it, when; a resolved line struck through). This is
  the render that chat.update sends to keep a digest current.
- `incident_message(change, state, now)` — one incident's current state with buttons.
- `thread_reply(...)` — the thread answer for a change ("Acknowledged by …"), optionally
  linking to the message that announced the incident.

**Action encoding** (version 1, kept stable: buttons stay clickable in old messages). Each
element's value is `ic1:<action>:<incident id>[:<duration>]`, e.g. `ic1:ack:42`,
`ic1:silence:42:4h`; action ∈ ack | resolve | reopen | silence, the id a positive integer
(≤ 19 digits), the duration (silence only) a count of m/h/d up to 30 days. At most 36 characters,
within an overflow option's 150 and a button's 2,000. A button's action_id is its value; an
overflow's is `ic1:menu:<id>` (a digest line) or `ic1:silence-menu:<id>` (incident message),
unique in the message and ≤ 255. `action_from_payload` reads one item of a block_actions
payload's `actions` back; the incident id in the action_id must agree with the value's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from incidentctl.durations import format_duration, parse_duration
from incidentctl.incidents.model import IncidentStatus
from incidentctl.notify.digest import (
    MAX_SECTION_TEXT,
    MAX_TEXT,
    Change,
    Entry,
    change_line,
    clip,
    escape,
    link,
    severity_text,
)

ACTION_PREFIX = "ic1"
ACK, RESOLVE, REOPEN, SILENCE = "ack", "resolve", "reopen", "silence"
KINDS = (ACK, RESOLVE, REOPEN, SILENCE)
SILENCE_DURATIONS = ("1h", "4h", "24h")
MAX_SILENCE = timedelta(days=30)
LABELS = {ACK: "Acknowledge", RESOLVE: "Resolve", REOPEN: "Reopen"}

_ID = re.compile(r"[1-9][0-9]{0,18}")
_DURATION = re.compile(r"[1-9][0-9]{0,5}[mhd]")
_MENTION = re.compile(r"<@[UW][A-Z0-9]{2,20}>")


@dataclass(frozen=True)
class IncidentAction:
    """What a click asks for: `kind` on incident `incident_id` (`duration`: silence only)."""

    kind: str
    incident_id: int
    duration: str | None = None

    def encode(self) -> str:
        """`ic1:<kind>:<id>[:<duration>]`."""
        tail = [self.duration] if self.kind == SILENCE and self.duration else []
        return ":".join([ACTION_PREFIX, self.kind, str(self.incident_id), *tail])

    @property
    def label(self) -> str:
        """The text on the button or menu option: `Acknowledge`, `Silence 4 h`, …"""
        if self.kind == SILENCE:
            return f"Silence {_spaced(self.duration or '')}"
        return LABELS[self.kind]


def _spaced(duration: str) -> str:
    """`4h` → `4 h`."""
    return f"{duration[:-1]} {duration[-1]}" if duration else duration


def decode_action(value: object) -> IncidentAction | None:
    """An encoded action back; None when `value` is not one (another app's, altered, too long)."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    parts = value.split(":")
    if len(parts) < 3 or parts[0] != ACTION_PREFIX or parts[1] not in KINDS or not _ID.fullmatch(parts[2]):
        return None
    kind, incident_id = parts[1], int(parts[2])
    if kind != SILENCE:
        return IncidentAction(kind, incident_id) if len(parts) == 3 else None
    if len(parts) != 4 or not _DURATION.fullmatch(parts[3]) or parse_duration(parts[3]) > MAX_SILENCE:
        return None
    return IncidentAction(kind, incident_id, parts[3])


def action_from_payload(action: Mapping) -> IncidentAction | None:
    """The IncidentAction one item of a block_actions payload's `actions` asks for: a button's
    `value` or an overflow's `selected_option.value`. None when it is not ours or the action_id
    names another incident than the value."""
    action_id = action.get("action_id")
    if not isinstance(action_id, str) or not action_id.startswith(ACTION_PREFIX + ":"):
        return None
    selected = action.get("selected_option")
    value = selected.get("value") if isinstance(selected, Mapping) else action.get("value")
    decoded = decode_action(value)
    id_parts = action_id.split(":")
    if decoded is None or len(id_parts) < 3 or id_parts[2] != str(decoded.incident_id):
        return None
    return decoded


def actions_for(incident_id: int, status: str) -> list[IncidentAction]:
    """What a person can do to an incident in `status`: acknowledge (open), resolve (unless
    resolved), reopen (resolved), silence its labels for 1 h / 4 h / 24 h (any)."""
    first = {"open": [ACK, RESOLVE], "acknowledged": [RESOLVE], "resolved": [REOPEN]}.get(status, [ACK, RESOLVE])
    return ([IncidentAction(k, incident_id) for k in first]
            + [IncidentAction(SILENCE, incident_id, d) for d in SILENCE_DURATIONS])


def _plain(text: str) -> dict:
    return {"type": "plain_text", "text": text, "emoji": True}


def _option(action: IncidentAction) -> dict:
    return {"text": _plain(action.label), "value": action.encode()}


def overflow_menu(incident_id: int, status: str) -> dict:
    """The overflow menu of a digest line: every action for the status (at most 5 options)."""
    return {"type": "overflow", "action_id": f"{ACTION_PREFIX}:menu:{incident_id}",
            "options": [_option(a) for a in actions_for(incident_id, status)]}


def action_buttons(incident_id: int, status: str) -> dict:
    """An actions block: a button per transition (Acknowledge highlighted) and a Silence menu."""
    elements: list[dict] = []
    for a in actions_for(incident_id, status):
        if a.kind == SILENCE:
            continue
        button = {"type": "button", "action_id": a.encode(), "text": _plain(a.label), "value": a.encode()}
        if a.kind == ACK:
            button["style"] = "primary"
        elements.append(button)
    elements.append({"type": "overflow", "action_id": f"{ACTION_PREFIX}:silence-menu:{incident_id}",
                     "options": [_option(IncidentAction(SILENCE, incident_id, d)) for d in SILENCE_DURATIONS]})
    return {"type": "actions", "elements": elements}


@dataclass(frozen=True)
class IncidentState:
    """An incident as it stands now, for re-rendering the messages that show it."""

    incident_id: int
    status: str  # open | acknowledged | resolved
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None  # auto | manual
    silenced_until: datetime | None = None


def actor(by: str | None) -> str:
    """Who, as mrkdwn: a Slack mention (`<@U…>`) as it is, any other name escaped."""
    if not by:
        return "someone"
    return by if _MENTION.fullmatch(by) else escape(clip(by, 80))


def slack_time(moment: datetime) -> str:
    """A time every reader sees in their own time zone (Slack's date token), UTC as fallback."""
    fallback = moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def state_line(state: IncidentState, now: datetime) -> str:
    """`:white_check_mark: *Resolved* by bob · <time>`, and whether it is silenced."""
    if state.status == IncidentStatus.RESOLVED:
        who = " (its alerts resolved)" if state.resolution == "auto" else f" by {actor(state.resolved_by)}"
        text = f":white_check_mark: *Resolved*{who}{_at(state.resolved_at)}"
    elif state.status == IncidentStatus.ACKNOWLEDGED:
        text = f":eyes: *Acknowledged* by {actor(state.acknowledged_by)}{_at(state.acknowledged_at)}"
    else:
        text = ":rotating_light: *Open*, not acknowledged"
    if state.silenced_until is not None and state.silenced_until > now:
        text += f" · :no_bell: silenced until {slack_time(state.silenced_until)}"
    return text


def _at(moment: datetime | None) -> str:
    return f" · {slack_time(moment)}" if moment is not None else ""


def _struck(line: str) -> str:
    """The first line (severity, title, id) struck through: a resolved incident reads as done."""
    head, sep, rest = line.partition("\n")
    return f"~{head}~{sep}{rest}"


def _line(line: str, status: str, state: IncidentState | None, now: datetime) -> str:
    tail = "\n" + state_line(state, now) if state is not None else ""
    body = _struck(line) if status == IncidentStatus.RESOLVED else line
    return clip(body, MAX_SECTION_TEXT - len(tail)) + tail


def with_actions(message: dict, entries: Sequence[Entry], now: datetime,
                 states: Mapping[int, IncidentState] | None = None) -> dict:
    """`message` (a digest of `entries`, built with the same `now`) with an overflow menu on
    each incident line. With `states` (incident id → current state), each line also says where
    the incident stands now and offers the actions of that status; a resolved line is struck
    through. Lines are found by their text, as `change_line` wrote it, so whatever else the
    digest shows (headings, groups, the "more" line) is left as it is."""
    lines = {clip(change_line(e, now), MAX_SECTION_TEXT): e for e in entries}
    blocks = []
    for block in message["blocks"]:
        entry = None
        if block.get("type") == "section" and "accessory" not in block:
            entry = lines.get((block.get("text") or {}).get("text", ""))
        if entry is not None:
            state = (states or {}).get(entry.latest.incident_id)
            status = state.status if state is not None else entry.latest.status
            block = {**block, "text": {"type": "mrkdwn", "text": _line(block["text"]["text"], status, state, now)},
                     "accessory": overflow_menu(entry.latest.incident_id, status)}
        blocks.append(block)
    return {**message, "blocks": blocks}


def menu_lines(message: dict) -> dict[int, int]:
    """{block index: incident id} of the lines of a message from `with_actions` (its menus)."""
    found = {}
    for i, block in enumerate(message["blocks"]):
        action_id = (block.get("accessory") or {}).get("action_id", "")
        parts = action_id.split(":")
        if len(parts) == 3 and parts[:2] == [ACTION_PREFIX, "menu"] and _ID.fullmatch(parts[2]):
            found[i] = int(parts[2])
    return found


def render_current(base: dict, lines: Mapping[int, int], states: Mapping[int, IncidentState],
                   now: datetime) -> dict:
    """A posted digest as it stands now: `base` (the digest as built) with, on each line of
    `lines` ({block index: incident id}), the incident's current state and its actions. A line
    whose incident is gone (deleted) keeps its text and loses its menu."""
    blocks = []
    for i, block in enumerate(base["blocks"]):
        state = states.get(lines[i]) if i in lines else None
        if state is not None:
            text = _line(block["text"]["text"], state.status, state, now)
            block = {**block, "text": {"type": "mrkdwn", "text": text},
                     "accessory": overflow_menu(state.incident_id, state.status)}
        blocks.append(block)
    return {**base, "blocks": blocks}


def incident_message(change: Change, state: IncidentState, now: datetime) -> dict:
    """One incident as it stands: its line (from its latest change), its state, buttons."""
    line = change_line(Entry(change.change, change, (change.change,)), now)
    text = (f"[{severity_text(change.severity)}] {escape(clip(change.title, 200))} (#{change.incident_id}) — "
            f"{_state_words(state)}")
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _line(line, state.status, state, now)}},
        action_buttons(change.incident_id, state.status),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"incident #{change.incident_id} · "
                                                                   f"updated {slack_time(now)}"}]},
    ]
    return {"text": clip(text, MAX_TEXT), "blocks": blocks}


def _state_words(state: IncidentState) -> str:
    """The state in plain words for notifications (no mrkdwn tokens but a mention)."""
    if state.status == IncidentStatus.RESOLVED:
        return "resolved" + ("" if state.resolution == "auto" else f" by {actor(state.resolved_by)}")
    if state.status == IncidentStatus.ACKNOWLEDGED:
        return f"acknowledged by {actor(state.acknowledged_by)}"
    return "open, not acknowledged"


REPLIES = {
    "opened": (":rotating_light:", "Opened"),
    "acknowledged": (":eyes:", "Acknowledged"),
    "resolved": (":white_check_mark:", "Resolved"),
    "reopened": (":arrows_counterclockwise:", "Reopened"),
    "escalated": (":arrow_double_up:", "Escalated"),
    "silenced": (":no_bell:", "Silenced"),
    "note": (":memo:", "Note"),
}


def thread_reply(kind: str, incident_id: int, title: str, *, by: str | None = None,
                 detail: str | None = None, until: datetime | None = None, permalink: str | None = None,
                 detail_limit: int = 2000) -> dict:
    """The thread answer for a change of an incident, e.g.
    `:white_check_mark: *Resolved* by bob · #42 HighCPU · lasted 1h5m · <link|announced here>`.
    `detail` is free text (escaped: a reason, how long, a note; cut to `detail_limit`
    characters), `until` the end of a silence,
    `permalink` the message that announced the incident."""
    emoji, word = REPLIES.get(kind, (":information_source:", escape(kind.capitalize())))
    parts = [f"{emoji} *{word}*" + (f" by {actor(by)}" if by else ""), f"#{incident_id} {escape(clip(title, 200))}"]
    if detail:
        parts.append(escape(clip(detail, detail_limit)))
    if until is not None:
        parts.append(f"until {slack_time(until)}")
    announced = link(permalink, "announced here")
    if announced:
        parts.append(announced)
    return {"text": clip(" · ".join(parts), MAX_TEXT)}


def silence_reply(by: str | None, starts_at: datetime, ends_at: datetime, incidents: Sequence[tuple[int, str]],
                  most: int = 5) -> dict:
    """The thread answer for a silence that began covering incidents of a message, e.g.
    `:no_bell: *Silenced* by mo for 4h (until <time>) · #42 HighCPU, #43 DiskFull`; the first
    `most` incidents named, then how many more."""
    named = [f"#{iid} {escape(clip(title, 200))}" for iid, title in incidents[:most]]
    if len(incidents) > most:
        named.append(f"and {len(incidents) - most} more")
    head = (f":no_bell: *Silenced* by {actor(by)} for {format_duration(ends_at - starts_at)} "
            f"(until {slack_time(ends_at)})")
    return {"text": clip(" · ".join([head, ", ".join(named)] if named else [head]), MAX_TEXT)}


def lasted(opened_at: datetime | None, resolved_at: datetime | None) -> str | None:
    """`lasted 1h5m`, for a resolve reply's detail."""
    if opened_at is None or resolved_at is None:
        return None
    return f"lasted {format_duration(resolved_at - opened_at)}"


def refusal(reason: str) -> dict:
    """A response_url answer only the clicking person sees, saying why nothing was done."""
    return {"response_type": "ephemeral", "replace_original": False,
            "text": clip(f":warning: {escape(reason)}", MAX_TEXT)}
