"""A generated incident history whose causes are known, to measure `related` (and the digest's
bursts): stories where one root-cause incident makes dependents open within two minutes, and
noise — unrelated incidents opening at random, some of them on purpose in the same cluster and
minutes as a story.

Story kinds:
- KubeNodeNotReady, cluster-wide (no namespace): its pods fail in one to three namespaces
  (PodCrashLooping, TargetDown, HighLatency). The root covers its dependents' place.
- PostgresDown in namespace `db`: the apps using it in one to three namespaces raise
  HighErrorRate, QueueBacklog, HighLatency. Root and dependents share only the cluster: only the
  history of their alertnames opening together links them.
- IngressDown in namespace `ingress`: BlackboxProbeFailed and HighErrorRate behind it.
Noise uses other alertnames and, at a lower rate, the dependents' alertnames alone. The noise
put on purpose at a story's minutes comes from a pool of COINCIDENT rules, each met near a
story a couple of times a month: a coincidence, as unrelated rules are (a rule that opened with
a story every other time would be related, and the statistics would rightly say so).
Deterministic for a seed. Used by tests/history/test_related_quality.py and bench/bench_related.py.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, select

from incidentctl.db.schema import incidents

T0 = datetime(2026, 4, 1, tzinfo=timezone.utc)
CLUSTERS = ("prod-eu", "prod-us", "stage", "edge")
APP_NAMESPACES = ("payments", "checkout", "search", "catalog", "accounts", "shipping", "ads", "media")
SERVICES = ("api", "web", "worker", "cron")
STORIES = {
    "KubeNodeNotReady": ((None, None), ("PodCrashLooping", "TargetDown", "HighLatency")),
    "PostgresDown": (("db", "postgres"), ("HighErrorRate", "QueueBacklog", "HighLatency")),
    "IngressDown": (("ingress", "nginx"), ("BlackboxProbeFailed", "HighErrorRate")),
}
NOISE = ("DiskFull", "CertificateExpiry", "CPUThrottling", "MemoryPressure", "KubeJobFailed", "SlowQuery",
         "BackupMissing", "HPAMaxedOut")
COINCIDENT = tuple(f"{team}{what}" for team in ("Billing", "Search", "Media", "Mail", "Auth", "Infra", "Data", "Edge")
                   for what in ("JobLate", "CacheMiss", "QuotaNear", "SlowBatch", "ConfigDrift", "LagHigh"))
NOISE_ALONE = ("HighLatency", "PodCrashLooping", "HighErrorRate", "TargetDown")  # dependents firing on their own
SEVERITIES = ("critical", "error", "warning", "warning", "info")


@dataclass(frozen=True)
class Generated:
    alertname: str
    cluster: str
    namespace: str
    service: str
    severity: str
    opened_at: datetime
    story: int | None  # the story it belongs to; None for noise
    root: bool = False


def generate(days: int = 30, seed: int = 7, stories_per_day: float = 3.0, noise_per_day: float = 40.0,
             start: datetime = T0) -> list[Generated]:
    """The history, oldest first."""
    rnd = random.Random(seed)
    span = days * 86400
    out: list[Generated] = []
    for story in range(int(days * stories_per_day)):
        t0 = start + timedelta(seconds=rnd.uniform(0, span - 3600))
        root_name = rnd.choice(sorted(STORIES))
        (root_ns, root_svc), dependents = STORIES[root_name]
        cluster = rnd.choice(CLUSTERS)
        out.append(Generated(root_name, cluster, root_ns or "", root_svc or "", "critical", t0, story, root=True))
        namespaces = rnd.sample(APP_NAMESPACES, rnd.randint(1, 3))
        for _ in range(rnd.randint(3, 10)):
            out.append(Generated(rnd.choice(dependents), cluster, rnd.choice(namespaces), rnd.choice(SERVICES),
                                 rnd.choice(SEVERITIES), t0 + timedelta(seconds=rnd.uniform(5, 120)), story))
        # Unrelated incidents at the same minutes in the same cluster: mostly another namespace,
        # sometimes one of the story's (no method can tell those apart).
        for _ in range(rnd.choice((0, 1, 1, 2))):
            namespace = rnd.choice(namespaces) if rnd.random() < 0.15 else rnd.choice(
                [n for n in APP_NAMESPACES if n not in namespaces])
            out.append(Generated(rnd.choice(COINCIDENT), cluster, namespace, rnd.choice(SERVICES),
                                 rnd.choice(SEVERITIES), t0 + timedelta(seconds=rnd.uniform(-240, 240)), None))
    for _ in range(int(days * noise_per_day)):
        name = rnd.choice(NOISE_ALONE) if rnd.random() < 0.25 else rnd.choice(NOISE)
        out.append(Generated(name, rnd.choice(CLUSTERS), rnd.choice(APP_NAMESPACES), rnd.choice(SERVICES),
                             rnd.choice(SEVERITIES), start + timedelta(seconds=rnd.uniform(0, span)), None))
    return sorted(out, key=lambda g: g.opened_at)


def insert(engine: Engine, generated: Sequence[Generated]) -> list[int]:
    """Stores the incidents (resolved after 20 minutes); returns their ids, in the same order."""
    rows = []
    for n, g in enumerate(generated):
        labels = {"alertname": g.alertname, "cluster": g.cluster, "namespace": g.namespace, "service": g.service}
        common = {k: v for k, v in labels.items() if v}
        common["severity"] = g.severity
        rows.append(dict(fingerprint=f"gen{n:07d}", active_key=None, status="resolved", resolution="auto",
                         title=f"{g.alertname} ({'/'.join(v for v in (g.cluster, g.namespace, g.service) if v)})",
                         severity=g.severity, alertname=g.alertname, cluster=g.cluster, namespace=g.namespace,
                         service=g.service, group_labels=labels, common_labels=common, opened_at=g.opened_at,
                         last_alert_at=g.opened_at, resolved_at=g.opened_at + timedelta(minutes=20),
                         resolved_by="incidentctl", alert_count=1, series_count=1, series_firing=0, reopen_count=0))
    with engine.begin() as conn:
        for i in range(0, len(rows), 1000):
            conn.execute(incidents.insert(), rows[i:i + 1000])
        ids = dict(conn.execute(select(incidents.c.fingerprint, incidents.c.id)
                                .where(incidents.c.fingerprint.like("gen%"))).all())
    return [ids[f"gen{n:07d}"] for n in range(len(rows))]


def true_pairs(ids: Sequence[int], generated: Sequence[Generated]) -> set[frozenset[int]]:
    """Every pair of incidents of the same story."""
    stories: dict[int, list[int]] = {}
    for iid, g in zip(ids, generated, strict=True):
        if g.story is not None:
            stories.setdefault(g.story, []).append(iid)
    return {frozenset((a, b)) for members in stories.values() for a in members for b in members if a < b}


def precision_recall(found: set[frozenset[int]], truth: set[frozenset[int]]) -> tuple[float, float]:
    hits = len(found & truth)
    return (hits / len(found) if found else 1.0), (hits / len(truth) if truth else 1.0)
