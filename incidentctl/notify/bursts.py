"""Bursts: many incidents opening within a few minutes in one place, usually of one cause.

The digest groups the new incidents of a burst under one line ("14 new incidents in
prod/payments within 2m — likely one cause: #812 KubeNodeNotReady, first to fire and
historically first in 9 of 11 such bursts"). Finding bursts and naming the likely cause are pure
functions over plain members and an alertname's record in past bursts; `burst_context` reads
what the digest needs (the incidents opened just before, announced in earlier digests, and the
history of the alertnames met) for the delivery code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, RowMapping, or_, select

from incidentctl.config import Settings
from incidentctl.db.engine import database_errors
from incidentctl.db.schema import incidents
from incidentctl.incidents.topology import COLUMNS, Place, place_of, scope_text, shared, widest

MIN_HISTORY = 3  # past bursts an alertname needs before its record says anything
LIKELY = 0.5  # first in at least this share of its past bursts: a likely cause


@dataclass(frozen=True)
class BurstRules:
    window: timedelta  # a burst's first and last incidents open at most this far apart
    min_incidents: int  # 0: no bursts
    labels: tuple[str, ...]  # topology labels, widest first; a burst is in one widest place
    history: timedelta = timedelta(days=30)

    @classmethod
    def configured(cls, settings: Settings) -> BurstRules:
        return cls(timedelta(seconds=settings.related_window), settings.burst_min_incidents,
                   tuple(settings.related_labels), timedelta(seconds=settings.related_history))


@dataclass(frozen=True)
class Member:
    incident_id: int
    alertname: str
    opened_at: datetime
    place: Place
    new: bool = True  # in the digest being built; False: announced in an earlier one


@dataclass(frozen=True)
class Burst:
    members: tuple[Member, ...]  # oldest first

    @property
    def scope(self) -> Place:
        """The place every member is in."""
        place = self.members[0].place
        for m in self.members[1:]:
            place = shared(place, m.place)
        return place

    @property
    def span(self) -> timedelta:
        return self.members[-1].opened_at - self.members[0].opened_at

    @property
    def new(self) -> int:
        return sum(1 for m in self.members if m.new)


@dataclass(frozen=True)
class Record:
    """An alertname's past bursts: how many it was in, and in how many it opened first."""

    first: int
    bursts: int

    @property
    def says(self) -> bool:
        return self.bursts >= MIN_HISTORY


@dataclass(frozen=True)
class Cause:
    member: Member
    fired_first: bool
    record: Record | None
    likely: bool


def find_bursts(members: Iterable[Member], rules: BurstRules) -> list[Burst]:
    """Bursts among `members`, oldest first: at least `min_incidents` opening within `window` in
    the same widest place (cluster). In each place, the window holding the most members is taken
    first (ties: the earliest), then the next among the rest, so a stray incident just before a
    burst does not cut it short. Members without a widest place are in none."""
    if rules.min_incidents <= 0 or not rules.labels:
        return []
    by_place: dict[str, list[Member]] = {}
    for m in members:
        key = widest(m.place, rules.labels)
        if key:
            by_place.setdefault(key, []).append(m)
    found = []
    for group in by_place.values():
        group.sort(key=lambda m: (m.opened_at, m.incident_id))
        for segment in _segments(group, rules.window):
            found.extend(_densest(segment, rules))
    return sorted(found, key=lambda b: (b.members[0].opened_at, b.members[0].incident_id))


def _segments(group: list[Member], window: timedelta) -> Iterable[list[Member]]:
    """Runs of members with no gap longer than the window: no burst spans such a gap."""
    start = 0
    for i in range(1, len(group) + 1):
        if i == len(group) or group[i].opened_at - group[i - 1].opened_at > window:
            yield group[start:i]
            start = i


def _densest(segment: list[Member], rules: BurstRules) -> list[Burst]:
    left = list(segment)
    bursts = []
    while len(left) >= rules.min_incidents:
        best, best_start, end = 0, 0, 0
        for start in range(len(left)):
            end = max(end, start)
            while end < len(left) and left[end].opened_at - left[start].opened_at <= rules.window:
                end += 1
            if end - start > best:
                best, best_start = end - start, start
        if best < rules.min_incidents:
            break
        bursts.append(Burst(tuple(left[best_start:best_start + best])))
        del left[best_start:best_start + best]
    return bursts


def records(past: Iterable[Burst]) -> dict[str, Record]:
    """{alertname: Record} over past bursts."""
    first: dict[str, int] = {}
    seen: dict[str, int] = {}
    for burst in past:
        for name in {m.alertname for m in burst.members}:
            seen[name] = seen.get(name, 0) + 1
        first[burst.members[0].alertname] = first.get(burst.members[0].alertname, 0) + 1
    return {name: Record(first.get(name, 0), n) for name, n in seen.items()}


def likely_cause(burst: Burst, history: Mapping[str, Record]) -> Cause:
    """The member that fired first, unless its alertname is not known to come first (no record,
    or first in under half of its past bursts) and another alertname of the burst usually is
    (then that one's first member). Not `likely` when the first has a poor record and no
    other does better."""
    first = burst.members[0]
    own = history.get(first.alertname)
    own_share = own.first / own.bursts if own is not None and own.says else None
    if own_share is not None and own_share >= LIKELY:
        return Cause(first, True, own, True)
    better = _best_other(burst, history, first.alertname)
    if better is not None:
        return Cause(better, False, history[better.alertname], True)
    return Cause(first, True, own, own_share is None)


def _best_other(burst: Burst, history: Mapping[str, Record], but: str) -> Member | None:
    best: tuple[float, int] | None = None
    chosen = None
    for i, m in enumerate(burst.members):
        record = history.get(m.alertname)
        if m.alertname == but or record is None or not record.says or record.first / record.bursts < LIKELY:
            continue
        key = (-record.first / record.bursts, i)
        if best is None or key < best:
            best, chosen = key, m
    return chosen


def summary(burst: Burst, cause: Cause) -> str:
    """The burst's line, plain text (the digest escapes it): `14 new incidents in prod/payments
    within 2m — likely one cause: #812 KubeNodeNotReady, first to fire and historically first
    in 9 of 11 such bursts`."""
    total, new = len(burst.members), burst.new
    within = _within(burst.span)
    head = (f"{total} new incidents in {scope_text(burst.scope)} within {within}" if new == total else
            f"{total} incidents opened in {scope_text(burst.scope)} within {within}, {new} of them new here")
    m, record = cause.member, cause.record
    name = f"#{m.incident_id} {m.alertname}" + ("" if m.new else " (announced earlier)")
    past = f"first in {record.first} of {record.bursts} such bursts" if record is not None and record.says else ""
    if not cause.likely:
        return f"{head} — first to fire: {name} ({past} before)"
    if cause.fired_first:
        return f"{head} — likely one cause: {name}, first to fire" + (f" and historically {past}" if past else "")
    first = burst.members[0]
    return (f"{head} — likely one cause: {name}, historically {past} "
            f"(#{first.incident_id} {first.alertname} fired first)")


def _within(span: timedelta) -> str:
    """`40s`, or whole minutes rounded up (`2m` for 1m44s): the burst fits within it."""
    seconds = math.ceil(span.total_seconds())
    return f"{seconds}s" if seconds < 60 else f"{math.ceil(seconds / 60)}m"


@dataclass(frozen=True)
class BurstContext:
    """What the digest needs besides its changes: the rules, the incidents opened just before
    its new ones (announced earlier), and the alertnames' records in past bursts."""

    rules: BurstRules
    earlier: tuple[Member, ...] = ()
    history: Mapping[str, Record] = field(default_factory=dict)


# --- storage --------------------------------------------------------------------------------------

def member_of(row: Mapping[str, Any] | RowMapping, labels: Sequence[str], *, new: bool = True) -> Member:
    return Member(row["id"], row["alertname"] or "", row["opened_at"], place_of(row, labels), new)


def burst_context(engine: Engine, rules: BurstRules, opened: Sequence[Member]) -> BurstContext:
    """Reads, for the incidents a digest announces as opened, the incidents opened within the
    window before them that it does not announce, and, when they make bursts, the past bursts of
    the bursts' alertnames: every incident opened within the window of one of their incidents
    in the history before ([first opening − history, first opening − window)), in its place."""
    if rules.min_incidents <= 0 or not opened:
        return BurstContext(rules)
    ours = {m.incident_id for m in opened}
    start = min(m.opened_at for m in opened) - rules.window
    end = max(m.opened_at for m in opened)
    c = incidents.c
    with database_errors(engine), engine.execution_options(sqlite_begin="DEFERRED").connect() as conn:
        rows = conn.execute(select(*_columns(rules.labels)).where(c.opened_at.between(start, end))).all()
        earlier = tuple(member_of(r._mapping, rules.labels, new=False) for r in rows if r.id not in ours)
        bursts = [b for b in find_bursts([*opened, *earlier], rules) if b.new]
        if not bursts:
            return BurstContext(rules, earlier)
        names = sorted({m.alertname for b in bursts for m in b.members})
        until = min(b.members[0].opened_at for b in bursts) - rules.window
        seen = [member_of(r._mapping, rules.labels) for r in conn.execute(select(*_columns(rules.labels)).where(
            c.alertname.in_(names), c.opened_at >= until - rules.history + rules.window, c.opened_at < until))]
        past = {m.incident_id: m for m in seen}
        for ranges in _chunks(_around(seen, rules), 200):
            query = select(*_columns(rules.labels)).where(or_(*(c.opened_at.between(a, b) for a, b in ranges)))
            for r in conn.execute(query):
                past.setdefault(r.id, member_of(r._mapping, rules.labels, new=False))
    return BurstContext(rules, earlier, records(find_bursts(past.values(), rules)))


def _around(seen: Sequence[Member], rules: BurstRules) -> list[tuple[datetime, datetime]]:
    """The times within the window of the incidents seen, as few disjoint ranges: a past burst
    holding one of them lies within them."""
    ranges: list[tuple[datetime, datetime]] = []
    for t in sorted(m.opened_at for m in seen):
        a, b = t - rules.window, t + rules.window
        if ranges and a <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], b)
        else:
            ranges.append((a, b))
    return ranges


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _columns(labels: Sequence[str]) -> list:
    c = incidents.c
    cols = [c.id, c.alertname, c.opened_at, c.cluster, c.namespace, c.service]
    if any(label not in COLUMNS for label in labels):
        cols.append(c.common_labels)
    return cols
