"""Benchmark of related incidents: how well `related` finds the incidents of one story and how
fast, on MariaDB/MySQL, and how often the digest's burst line names the real cause.

1. A generated month with known causes (tests/support/related_history.py: root-cause stories
   with dependents sharing topology or only a cluster, noise at random and noise put on purpose
   at the stories' minutes) is stored as incidents; `related` runs for every incident. Printed:
   precision and recall over the pairs of incidents linked (all of them, per kind of link, and
   for the incidents after the first week, when history exists), and the latency of one call
   (median and p95).
2. Each story as a digest with the records of the bursts before it: how often the burst line
   names the story's root, and the time of `burst_context` (the digest's reads) for one story.
3. With BENCH_LIST_KEEP=1 and the database `bench_process_list_<N>` of bench/bench_process.py
   present (1M incidents by default), the latency of `related` there too.

Sizes (env): BENCH_RELATED_DAYS=30, BENCH_RELATED_SEED=7. Server: INCIDENTCTL_BENCH_MYSQL_URL.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.common import MYSQL_SERVER_URL, drop_database, machine, scratch_database  # noqa: E402
from incidentctl.db.engine import make_engine  # noqa: E402
from incidentctl.db.migrations import upgrade  # noqa: E402
from incidentctl.history.related import RelatedRules, related_incidents  # noqa: E402
from incidentctl.notify.bursts import BurstRules, Member, burst_context, find_bursts, likely_cause, records  # noqa: E402
from tests.support.related_history import T0, generate, insert, precision_recall, true_pairs  # noqa: E402

DAYS = int(os.environ.get("BENCH_RELATED_DAYS", "30"))
SEED = int(os.environ.get("BENCH_RELATED_SEED", "7"))
LIST_INCIDENTS = int(os.environ.get("BENCH_LIST_INCIDENTS", "1000000"))
LABELS = ("cluster", "namespace", "service")
RULES = RelatedRules(timedelta(minutes=5), LABELS, timedelta(days=30))
BURSTS = BurstRules(timedelta(minutes=5), 5, LABELS, timedelta(days=30))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def bench_quality(engine) -> None:
    history = generate(days=DAYS, seed=SEED)
    ids = insert(engine, history)
    stories = len({g.story for g in history if g.story is not None})
    print(f"history: {len(ids):,} incidents over {DAYS} days, {stories} stories, "
          f"{sum(1 for g in history if g.story is None):,} noise")
    found: dict[frozenset, set] = {}
    times = []
    for iid in ids:
        t = time.perf_counter()
        result = related_incidents(engine, iid, RULES)
        times.append((time.perf_counter() - t) * 1000)
        for link in result.links:
            found.setdefault(frozenset((iid, link.incident.id)), set()).update(link.kinds)
    truth = true_pairs(ids, history)
    opened = dict(zip(ids, (g.opened_at for g in history), strict=True))
    later = T0 + timedelta(days=7)

    def line(label: str, pairs: set, expected: set) -> None:
        precision, recall = precision_recall(pairs, expected)
        print(f"  {label:<44} precision {precision:.3f}  recall {recall:.3f}  ({len(pairs):,} pairs linked, "
              f"{len(expected):,} true)")

    line("all links", set(found), truth)
    for kind in ("same-place", "co-occurrence"):
        line(f"{kind} links only", {p for p, kinds in found.items() if kind in kinds}, truth)
    late = {p for p in truth if min(opened[i] for i in p) >= later}
    line("after the first week", {p for p in found if min(opened[i] for i in p) >= later}, late)
    print(f"  related ID: median {statistics.median(times):.1f} ms, p95 {percentile(times, 95):.1f} ms "
          f"({len(times):,} calls)")
    bench_bursts(engine, history, ids)


def bench_bursts(engine, history, ids) -> None:
    members = [Member(i, g.alertname, g.opened_at, tuple((k, v) for k, v in zip(LABELS, (g.cluster, g.namespace,
                                                                                        g.service), strict=True) if v))
               for i, g in zip(ids, history, strict=True)]
    roots = [(i, g) for i, g in zip(ids, history, strict=True) if g.root and g.opened_at >= T0 + timedelta(days=7)]
    right = found_any = 0
    for root, g in roots:
        now = [m for m in members if abs(m.opened_at - g.opened_at) <= BURSTS.window]
        past = records(find_bursts([m for m in members if m.opened_at < g.opened_at - BURSTS.window], BURSTS))
        bursts = [b for b in find_bursts(now, BURSTS) if any(m.incident_id == root for m in b.members)]
        found_any += bool(bursts)
        right += bool(bursts) and likely_cause(bursts[0], past).member.incident_id == root
    print(f"bursts (window 5m, at least 5): {found_any} of {len(roots)} stories after the first week found as a "
          f"burst; the line names the root in {right} ({right / len(roots):.0%})")
    root, g = roots[-1]
    story = [m for m, h in zip(members, history, strict=True) if h.story == g.story]
    t = time.perf_counter()
    context = burst_context(engine, BURSTS, story)
    print(f"  burst_context for one story of {len(story)}: {(time.perf_counter() - t) * 1000:.1f} ms "
          f"({len(context.history)} alertnames with a record)")


def bench_at_scale() -> None:
    name = f"bench_process_list_{LIST_INCIDENTS}"
    admin = create_engine(MYSQL_SERVER_URL)
    with admin.connect() as conn:
        present = conn.execute(text("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = :n AND "
                                    "table_name = 'incidents'"), {"n": name}).scalar()
    admin.dispose()
    if not present:
        print(f"(no {name} database: run bench_process.py with BENCH_LIST_KEEP=1 for the latency at scale)")
        return
    engine = make_engine(f"{MYSQL_SERVER_URL}/{name}")
    with engine.connect() as conn:
        top = conn.execute(text("SELECT MAX(id) FROM incidents")).scalar()
    times = []
    for iid in range(top - 1000, top, 50):
        t = time.perf_counter()
        related_incidents(engine, iid, RULES)
        times.append((time.perf_counter() - t) * 1000)
    print(f"related ID over {LIST_INCIDENTS:,} incidents (30 alertnames, ~2,800 each per 30 days): median "
          f"{statistics.median(times):.1f} ms, p95 {percentile(times, 95):.1f} ms ({len(times)} calls)")
    engine.dispose()


if __name__ == "__main__":
    print(machine())
    url = scratch_database("bench_related")
    engine = make_engine(url)
    upgrade(engine)
    try:
        bench_quality(engine)
    finally:
        engine.dispose()
        drop_database("bench_related")
    if os.environ.get("BENCH_LIST_KEEP") == "1":
        bench_at_scale()
