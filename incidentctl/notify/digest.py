"""What a Slack digest says: pending changes + the state of the world → one Block Kit message.

Pure: no database, no clock (`now` is passed in), no network. The message always fits Slack's
documented limits (≤ 50 blocks, section text ≤ 3000 chars, ≤ 10 fields, header ≤ 150 chars,
`text` ≤ 4000 chars); what does not fit is counted in an "and N more" line. An incident that
changed several times since the last digest appears once, in the section of where it stands
now, with the trail of its changes (`opened → resolved → reopened`). New incidents of a burst
(notify/bursts.py: many opening within minutes in one place) are listed together under the
burst's line, which names the likely cause, first. Every piece of alert
data is escaped (`&`, `<`, `>`) before it is put into mrkdwn, so a label value cannot inject a
mention (`<!channel>`) or a link. `limit_violations` checks a message against those limits
(slack_sdk checks neither block count, field length nor `text`); `change_line` writes an
incident's line, wherever it is listed; `identity` tells incidents apart in it (docs/SLACK.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from incidentctl.durations import format_duration
from incidentctl.incidents.model import ChangeKind, IncidentStatus, Severity, severity_rank
from incidentctl.incidents.topology import place_of
from incidentctl.notify.bursts import Burst, BurstContext, Member, find_bursts, likely_cause
from incidentctl.notify.bursts import summary as burst_line
from incidentctl.slicing import clip

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_TEXT = 4000
MAX_CONTEXT_ELEMENTS = 10

# Sections in the order a reader wants them: what needs attention first.
SECTIONS: tuple[tuple[ChangeKind, str], ...] = (
    (ChangeKind.OPENED, "New"),
    (ChangeKind.REOPENED, "Reopened"),
    (ChangeKind.ESCALATED, "Escalated"),
    (ChangeKind.ACKNOWLEDGED, "Acknowledged"),
    (ChangeKind.RESOLVED, "Resolved"),
)
SECTION_TITLE = dict(SECTIONS)
SEVERITY_EMOJI = {Severity.CRITICAL: ":red_circle:", Severity.ERROR: ":large_orange_circle:",
                  Severity.WARNING: ":large_yellow_circle:", Severity.INFO: ":large_blue_circle:"}
MORE_HINT = "run `incidentctl list` for the rest"
NO_SEVERITY = "no severity"
# Where an incident has no cluster/namespace/service, these labels say which one it is.
IDENTIFYING_LABELS = ("instance", "job")
# Shown elsewhere in the line (alertname in the title, severity in front) or empty by then.
NOT_IDENTIFYING = frozenset({"alertname", "severity", "cluster", "namespace", "service"})
MAX_IDENTITY_LABELS = 3


@dataclass(frozen=True)
class Change:
    """One outbox row with what the digest shows about its incident."""

    notification_id: int
    incident_id: int
    change: ChangeKind
    severity: Severity  # the incident's severity at the change
    created_at: datetime
    title: str
    status: IncidentStatus = IncidentStatus.OPEN
    reason: str | None = None
    cluster: str | None = None
    namespace: str | None = None
    service: str | None = None
    opened_at: datetime | None = None
    resolved_at: datetime | None = None
    alert_count: int = 0
    series_count: int = 0
    series_firing: int = 0
    reopen_count: int = 0
    links: dict[str, str] = field(default_factory=dict)  # rule | dashboard | panel | silence → URL
    labels: dict[str, str] = field(default_factory=dict)  # the incident's common labels
    group_labels: dict[str, str] = field(default_factory=dict)  # its group_by values
    alertname: str | None = None


@dataclass(frozen=True)
class Entry:
    """One incident in a digest: its latest change, the section it is listed in, and the kinds
    of all its changes in this digest, oldest first."""

    section: ChangeKind
    latest: Change
    trail: tuple[ChangeKind, ...]


@dataclass(frozen=True)
class World:
    """The state of the world for the footer."""

    open_by_severity: dict[str, int] = field(default_factory=dict)
    oldest_unacked_critical: tuple[int, str, datetime] | None = None  # id, title, opened_at


def escape(text: Any) -> str:
    """Slack's escaping of its three control characters, and only those."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str | None, label: str) -> str | None:
    """A mrkdwn link, or None when the URL is not plain http(s). The URL is escaped and may
    not contain `|`, so it cannot close the link early and smuggle in another token."""
    if not url or not url.lower().startswith(("http://", "https://")) or len(url) > 1500:
        return None
    safe = escape(url).replace("|", "%7C").replace(" ", "%20")
    return f"<{safe}|{label}>"


def entries(changes: Sequence[Change]) -> list[Entry]:
    """One entry per incident. The section is that of its latest change, except that an
    incident the reader has not seen yet (opened in this digest) stays under New while it is
    open and unacknowledged: a flap or an escalation of a new incident is still news of a new
    one. Once acknowledged or resolved (its latest change, or its status now), it is listed
    under Acknowledged or Resolved."""
    by_incident: dict[int, list[Change]] = {}
    for c in sorted(changes, key=lambda c: (c.created_at, c.notification_id)):
        by_incident.setdefault(c.incident_id, []).append(c)
    result = []
    for seq in by_incident.values():
        latest = seq[-1]
        trail = tuple(c.change for c in seq)
        section = latest.change if latest.change in SECTION_TITLE else ChangeKind.OPENED
        if ChangeKind.OPENED in trail:
            section = _standing(latest)
        result.append(Entry(section, latest, trail))
    return result


def _standing(latest: Change) -> ChangeKind:
    """The section of an incident opened in this digest."""
    if ChangeKind.RESOLVED in (latest.change, latest.status):
        return ChangeKind.RESOLVED
    if ChangeKind.ACKNOWLEDGED in (latest.change, latest.status):
        return ChangeKind.ACKNOWLEDGED
    return ChangeKind.OPENED


def counts_line(items: Sequence[Entry]) -> str:
    """`2 new · 1 resolved` in section order (incidents, not changes)."""
    counts = {kind: 0 for kind, _ in SECTIONS}
    for e in items:
        counts[e.section] += 1
    return " · ".join(f"{n} {SECTION_TITLE[kind].lower()}" for kind, n in counts.items() if n)


def severity_text(severity: str | None) -> str:
    """`CRITICAL`, …; an incident whose alerts carry no severity says so."""
    return escape(severity.upper()) if severity and severity != Severity.NONE else NO_SEVERITY


def identity(c: Change) -> str:
    """What tells the incident apart from others of its alertname, as escaped mrkdwn:
    cluster/namespace/service; without them, its `instance` and `job`; without those, its
    group_by labels but alertname; else its first common labels by name (at most three)
    but alertname and severity. Empty when it has none of these."""
    place = [v for v in (c.cluster, c.namespace, c.service) if v]
    if place:
        return "/".join(escape(clip(v, 120)) for v in place)
    groups = {k: v for k, v in c.group_labels.items() if k != "fingerprint" or c.labels.get(k) == v}
    for candidates in ([(k, c.labels.get(k)) for k in IDENTIFYING_LABELS], sorted(groups.items()),
                       sorted(c.labels.items())):
        pairs = [(k, v) for k, v in candidates if v and k not in NOT_IDENTIFYING][:MAX_IDENTITY_LABELS]
        if pairs:
            return ", ".join(f"{escape(clip(k, 60))}={escape(clip(str(v), 120))}" for k, v in pairs)
    return ""


def change_line(entry: Entry, now: datetime) -> str:
    """The mrkdwn for one incident: severity, title, which one it is, how long, how many
    alerts, what happened (the trail when more than one change; the reason, but for an
    opening, whose reason only restates the title), links."""
    c = entry.latest
    sev = c.severity or Severity.NONE
    head = (f"{SEVERITY_EMOJI.get(sev, ':white_circle:')} *{severity_text(sev)}* · *{escape(clip(c.title, 300))}* "
            f"· #{c.incident_id}")
    where = identity(c)
    facts = [where] if where else []
    if c.opened_at is not None:
        end = c.resolved_at if c.change == ChangeKind.RESOLVED and c.resolved_at else now
        facts.append(("lasted " if c.change == ChangeKind.RESOLVED else "open ") + format_duration(end - c.opened_at))
    if len(entry.trail) > 1:
        facts.append(" → ".join(entry.trail))
    facts.append(f"{c.alert_count} alert{'s' if c.alert_count != 1 else ''}")
    if c.series_count:
        facts.append(f"{c.series_firing}/{c.series_count} series firing")
    if c.reopen_count:
        facts.append(f"reopened {c.reopen_count}×")
    if c.reason and c.change != ChangeKind.OPENED:
        facts.append(escape(clip(c.reason, 200)))
    links = [link(c.links.get(k), k) for k in ("rule", "dashboard", "panel", "silence")]
    lines = [head, " · ".join(facts)]
    shown = [x for x in links if x]
    if shown:
        lines.append(" · ".join(shown))
    return clip("\n".join(lines), MAX_SECTION_TEXT)


def footer_line(world: World, now: datetime) -> str:
    """Open incidents by severity and the oldest unacknowledged critical."""
    parts = [f"{n} {escape(sev) if sev != Severity.NONE else 'without severity'}"
             for sev, n in sorted(world.open_by_severity.items(), key=_sev_key) if n]
    text = "Open now: " + (", ".join(parts) if parts else "none")
    if world.oldest_unacked_critical is not None:
        iid, title, opened_at = world.oldest_unacked_critical
        text += (f" · oldest unacknowledged critical: #{iid} {escape(clip(title, 200))}"
                 f" ({format_duration(now - opened_at)})")
    return clip(text, MAX_FIELD_TEXT)


def _sev_key(item: tuple[str, int]) -> int:
    """Most severe first; a value that is no severity last."""
    return -severity_rank(item[0], unknown=-1)


def order_entries(items: Sequence[Entry]) -> list[Entry]:
    """Section order, then most severe first, then oldest first."""
    kinds = [k for k, _ in SECTIONS]
    return sorted(items, key=lambda e: (kinds.index(e.section), _sev_key((e.latest.severity, 0)),
                                        e.latest.created_at, e.latest.notification_id))


def build_digest(changes: Sequence[Change], world: World, now: datetime, *, route: str = "default",
                 bursts: BurstContext | None = None) -> dict | None:
    """The Slack message for `changes`, or None when there is nothing to say. With `bursts`, the
    new incidents of each burst come first in New, under the burst's line."""
    if not changes:
        return None
    ordered = order_entries(entries(changes))
    found = new_bursts(ordered, bursts) if bursts is not None else []
    ordered, heads = _group_bursts(ordered, found, bursts)
    summary = counts_line(ordered)
    header = {"type": "plain_text", "text": clip(f"incidentctl: {summary}", MAX_HEADER_TEXT), "emoji": True}
    blocks: list[dict] = [{"type": "header", "text": header}]
    # Reserve the tail: an "and N more" section, a divider and the footer.
    budget = MAX_BLOCKS - len(blocks) - 3
    shown = 0
    current = None
    for e in ordered:
        head = heads.get(e.latest.incident_id)
        need = (2 if e.section != current else 1) + (1 if head else 0)
        if need > budget:
            break
        if e.section != current:
            current = e.section
            n = sum(1 for x in ordered if x.section == current)
            blocks.append(_section(f"*{SECTION_TITLE[current]} ({n})*"))
            budget -= 1
        if head:
            blocks.append(_section(f":boom: *Burst:* {escape(head)}"))
            budget -= 1
        blocks.append(_section(change_line(e, now)))
        budget -= 1
        shown += 1
    more = len(ordered) - shown
    if more:
        blocks.append(_section(f"…and {more} more — {MORE_HINT}"))
    blocks.append({"type": "divider"})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": footer_line(world, now)},
        {"type": "mrkdwn", "text": f"route `{escape(clip(route, 64))}` · {now.strftime('%Y-%m-%d %H:%M UTC')}"},
    ]})
    return {"text": fallback_text(ordered, world, now, summary, list(heads.values())), "blocks": blocks}


def new_bursts(ordered: Sequence[Entry], context: BurstContext) -> list[Burst]:
    """The bursts that hold at least one incident listed under New here."""
    rules = context.rules
    members = [Member(e.latest.incident_id, e.latest.alertname or "", e.latest.opened_at or e.latest.created_at,
                      place_of(_labels_of(e.latest), rules.labels)) for e in ordered if e.section == ChangeKind.OPENED]
    return [b for b in find_bursts([*members, *context.earlier], rules) if b.new]


def _labels_of(c: Change) -> dict:
    return {"cluster": c.cluster, "namespace": c.namespace, "service": c.service, "labels": c.labels}


def _group_bursts(ordered: list[Entry], found: Sequence[Burst],
                  context: BurstContext | None) -> tuple[list[Entry], dict[int, str]]:
    """New entries regrouped: each burst's (its likely cause first, then the rest as they were),
    then the others; and {id of the burst's first entry: the burst's line}."""
    if not found or context is None:  # bursts are found only with a context
        return list(ordered), {}
    by_id = {e.latest.incident_id: e for e in ordered if e.section == ChangeKind.OPENED}
    position = {e.latest.incident_id: n for n, e in enumerate(ordered)}
    grouped: list[Entry] = []
    heads: dict[int, str] = {}
    for burst in found:
        cause = likely_cause(burst, context.history)
        ids = sorted((m.incident_id for m in burst.members if m.new),
                     key=lambda i: (i != cause.member.incident_id, position[i]))
        heads[ids[0]] = burst_line(burst, cause)
        grouped.extend(by_id[i] for i in ids)
    taken = {e.latest.incident_id for e in grouped}
    rest = [e for e in ordered if e.section == ChangeKind.OPENED and e.latest.incident_id not in taken]
    return grouped + rest + [e for e in ordered if e.section != ChangeKind.OPENED], heads


def fallback_text(ordered: Sequence[Entry], world: World, now: datetime, summary: str,
                  bursts: Sequence[str] = ()) -> str:
    """The plain `text` Slack shows in notifications and screen readers; ≤ MAX_TEXT chars."""
    lines = [f"incidentctl: {summary}"] + [clip(f"burst: {escape(b)}", 600) for b in bursts]
    size = sum(len(line) + 1 for line in lines) - 1
    tail = footer_line(world, now)
    for i, e in enumerate(ordered):
        c = e.latest
        title = escape(clip(c.title, 200))
        where = identity(c)
        line = (f"{' → '.join(e.trail)}: [{severity_text(c.severity)}] {title}"
                f"{f' — {where}' if where and where not in title else ''} (#{c.incident_id})")
        more = f"…and {len(ordered) - i} more — {MORE_HINT}"
        if size + len(line) + 1 + len(more) + 1 + len(tail) + 1 > MAX_TEXT:
            lines.append(more)
            break
        lines.append(line)
        size += len(line) + 1
    lines.append(tail)
    return clip("\n".join(lines), MAX_TEXT)


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}}


def limit_violations(message: dict) -> list[str]:
    """Every way `message` breaks Slack's documented limits (empty when it fits)."""
    problems = []
    blocks = message.get("blocks", [])
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks > {MAX_BLOCKS}")
    if not message.get("text") or len(message["text"]) > MAX_TEXT:
        problems.append(f"text missing or {len(message.get('text') or '')} chars > {MAX_TEXT}")
    for i, b in enumerate(blocks):
        if b["type"] == "header" and (b["text"]["type"] != "plain_text" or len(b["text"]["text"]) > MAX_HEADER_TEXT):
            problems.append(f"block {i}: header text over {MAX_HEADER_TEXT} or not plain_text")
        if b["type"] == "section":
            if "text" in b and not 1 <= len(b["text"]["text"]) <= MAX_SECTION_TEXT:
                problems.append(f"block {i}: section text {len(b['text']['text'])} chars")
            fields = b.get("fields", [])
            if len(fields) > MAX_FIELDS or any(len(f["text"]) > MAX_FIELD_TEXT for f in fields):
                problems.append(f"block {i}: fields over limits")
        if b["type"] == "context" and len(b["elements"]) > MAX_CONTEXT_ELEMENTS:
            problems.append(f"block {i}: {len(b['elements'])} context elements")
    return problems
