"""Related incidents: which incidents opened near one, and why they are probably one story.

Two kinds of link, each with its reason (definitions in docs/REPORTS.md, "Related incidents"):
- *same place*: opened within `related_window` of it and in the same place (`topology.same_place`
  over the `related_labels`);
- *co-occurrence*: opened within the window, in the same widest place (cluster), and their
  alertnames opened together (in one place) in the history before it far more often than
  chance (`cooccurrence.pair_stats`: at least MIN_TOGETHER times, p-value ≤ MAX_P).

Offline and deterministic: computed when asked, from four indexed reads bounded by the window
around the incident and by the history of the alertnames met in it; nothing is stored.
`find_links` is the pure decision; `related_incidents` reads what it needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from incidentctl.config import Settings
from incidentctl.db.engine import database_errors, is_sqlite
from incidentctl.db.schema import incidents
from incidentctl.durations import format_duration
from incidentctl.errors import NotFound
from incidentctl.history.cooccurrence import PairStats, pair_stats
from incidentctl.incidents.topology import COLUMNS, Place, place_of, same_place, scope_text, shared, widest

MIN_TOGETHER = 3
MAX_P = 0.001
MAX_CANDIDATES = 1000  # incidents read around one; a storm beyond it is cut, and the answer says so

SAME_PLACE, COOCCURRENCE = "same-place", "co-occurrence"


@dataclass(frozen=True)
class RelatedRules:
    window: timedelta
    labels: tuple[str, ...]
    history: timedelta
    min_together: int = MIN_TOGETHER
    max_p: float = MAX_P

    @classmethod
    def configured(cls, settings: Settings) -> RelatedRules:
        return cls(timedelta(seconds=settings.related_window), tuple(settings.related_labels),
                   timedelta(seconds=settings.related_history))


@dataclass(frozen=True)
class Fact:
    """An incident as `related` sees it."""

    id: int
    title: str
    alertname: str
    severity: str
    status: str
    opened_at: datetime
    place: Place


@dataclass(frozen=True)
class Link:
    """Another incident, probably of the same story, and why."""

    incident: Fact
    gap: timedelta  # its opening − the anchor's
    shared: Place  # the topology values both have, when they are in the same place
    pair: PairStats | None  # when their alertnames open together unusually often
    reasons: tuple[str, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k, on in ((SAME_PLACE, bool(self.shared)), (COOCCURRENCE, self.pair is not None)) if on)


@dataclass(frozen=True)
class Related:
    anchor: Fact
    links: list[Link]
    history_since: datetime  # the history the co-occurrence was counted over: [since, until)
    history_until: datetime
    truncated: bool  # more than MAX_CANDIDATES incidents opened around it; the closest were read


def find_links(anchor: Fact, candidates: Sequence[Fact], pairs: Mapping[str, PairStats],
               rules: RelatedRules) -> list[Link]:
    """The candidates (opened within the window of `anchor`) that are linked to it, strongest
    first: both kinds of link, then the most topology shared, then the closest in time, then by
    id. `pairs` holds the statistics of the anchor's alertname with each other alertname."""
    links = []
    for other in candidates:
        if other.id == anchor.id or abs(other.opened_at - anchor.opened_at) > rules.window:
            continue
        gap = other.opened_at - anchor.opened_at
        reasons = []
        common = shared(anchor.place, other.place) if same_place(anchor.place, other.place) else ()
        if common:
            reasons.append(f"opened {_gap_text(gap)}, both in {scope_text(common)}")
        pair = pairs.get(other.alertname)
        if pair is not None and (widest(anchor.place, rules.labels) != widest(other.place, rules.labels)
                                 or not pair.unusual(rules.min_together, rules.max_p)):
            pair = None
        if pair is not None:
            reasons.append(cooccurrence_text(pair, rules.window, rules.labels[0] if rules.labels else ""))
        if reasons:
            links.append(Link(other, gap, common, pair, tuple(reasons)))
    return sorted(links, key=lambda x: (-len(x.kinds), -len(x.shared), abs(x.gap), x.incident.id))


def _gap_text(gap: timedelta) -> str:
    if abs(gap) < timedelta(seconds=1):
        return "at the same time"
    return f"{format_duration(abs(gap))} {'later' if gap > timedelta(0) else 'earlier'}"


def cooccurrence_text(pair: PairStats, window: timedelta, widest_label: str) -> str:
    """`9 of 11 KubeNodeNotReady incidents before had a PodCrashLooping within 5m in the same
    cluster, 0.4 expected by chance (p=3e-11)`."""
    other = "another one" if pair.first == pair.second else f"a {pair.second}"
    where = f" in the same {widest_label}" if widest_label else ""
    return (f"{pair.together} of {pair.incidents} {pair.first} incidents before had {other} within "
            f"{format_duration(window)}{where}, {pair.expected:.1f} expected by chance (p={pair.p_value:.0e})")


# --- storage --------------------------------------------------------------------------------------

def related_incidents(engine: Engine, incident_id: int, rules: RelatedRules) -> Related:
    """The incidents linked to `incident_id`; raises NotFound. Three reads: the incident (and
    when history starts), the incidents opened within the window around it, and the opening
    times of the alertnames met in its cluster over the history before the window."""
    cols = _columns(rules.labels)
    start = select(func.min(incidents.c.opened_at)).scalar_subquery().label("history_starts")
    with database_errors(engine), _reader(engine) as conn:
        row = conn.execute(select(*cols, start).where(incidents.c.id == incident_id)).first()
        if row is None:
            raise NotFound(f"incident {incident_id} not found")
        anchor = fact(row._mapping, rules.labels)
        t = anchor.opened_at
        around = conn.execute(select(*cols).where(incidents.c.opened_at.between(t - rules.window, t + rules.window))
                              .order_by(incidents.c.opened_at, incidents.c.id).limit(MAX_CANDIDATES + 1)).all()
        candidates = [fact(r._mapping, rules.labels) for r in around if r.id != incident_id]
        truncated = len(around) > MAX_CANDIDATES
        key = widest(anchor.place, rules.labels)
        names = sorted({anchor.alertname} | {c.alertname for c in candidates
                                             if widest(c.place, rules.labels) == key})
        until = t - rules.window
        since = max(t - rules.history, row.history_starts)
        times = _opening_times(conn, names, since, until, rules.labels) if since < until else {}
    span = max(until - since, timedelta(0))
    pairs = {name: pair_stats(anchor.alertname, name, times, rules.window, span) for name in names} if times else {}
    return Related(anchor, find_links(anchor, candidates, pairs, rules), since, until, truncated)


def fact(row: Mapping[str, Any], labels: Sequence[str]) -> Fact:
    return Fact(row["id"], row["title"], row["alertname"] or "", row["severity"], row["status"], row["opened_at"],
                place_of(row, labels))


def _columns(labels: Sequence[str]) -> list:
    c = incidents.c
    cols = [c.id, c.title, c.alertname, c.severity, c.status, c.opened_at, c.cluster, c.namespace, c.service]
    if any(label not in COLUMNS for label in labels):
        cols.append(c.common_labels)  # a topology label that is not a column
    return cols


def _opening_times(conn, names: Sequence[str], since: datetime, until: datetime,
                   labels: Sequence[str]) -> dict[str, dict[str, list[datetime]]]:
    """{alertname: {widest place: sorted opening times}} of `names` in [since, until), from the
    (alertname, opened_at) index."""
    c = incidents.c
    wide = labels[0] if labels else None
    place = c[wide] if wide in COLUMNS else c.common_labels
    query = select(c.alertname, c.opened_at, place.label("place")).where(
        c.alertname.in_(names), c.opened_at >= since, c.opened_at < until)
    times: dict[str, dict[str, list[datetime]]] = {}
    for r in conn.execute(query):
        key = r.place if wide in COLUMNS else (r.place or {}).get(wide) if wide else ""
        times.setdefault(r.alertname, {}).setdefault(str(key or ""), []).append(r.opened_at)
    return {name: {key: sorted(found) for key, found in by_place.items()} for name, by_place in times.items()}


def _reader(engine: Engine):
    return engine.connect().execution_options(sqlite_begin="DEFERRED") if is_sqlite(engine) else engine.connect()
