"""Bursts: finding them, naming the likely cause, the digest's grouping (pure), how often the
named cause is the real one on a generated history, and `notify --dry-run` reading the
history on both databases."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from incidentctl.notify.bursts import (
    Burst,
    BurstContext,
    BurstRules,
    Member,
    Record,
    find_bursts,
    likely_cause,
    records,
    summary,
)
from incidentctl.notify.digest import Change, World, build_digest, limit_violations
from tests.support import slack_blockkit
from tests.support.cli import invoke
from tests.support.factories import add_change
from tests.support.related_history import T0 as HISTORY_T0
from tests.support.related_history import generate, insert

T0 = datetime(2026, 4, 20, 12, 0, tzinfo=timezone.utc)
LABELS = ("cluster", "namespace", "service")
RULES = BurstRules(timedelta(minutes=2), 3, LABELS)


def m(iid: int, alertname: str, after_s: float, *place: str, new: bool = True) -> Member:
    # a place may name fewer labels than LABELS
    place_pairs = tuple((k, v) for k, v in zip(LABELS, place, strict=False) if v)
    return Member(iid, alertname, T0 + timedelta(seconds=after_s), place_pairs, new)


# (members, the bursts found as lists of ids)
FINDS = [
    ([m(1, "A", 0, "prod"), m(2, "B", 30, "prod", "pay"), m(3, "B", 60, "prod", "pay")], [[1, 2, 3]]),
    ([m(1, "A", 0, "prod"), m(2, "B", 30, "prod", "pay")], []),  # too few
    ([m(1, "A", 0, "prod"), m(2, "B", 30, "prod"), m(3, "B", 121, "prod")], []),  # the third is past 2m
    ([m(1, "A", 0, "prod"), m(2, "B", 30, "stage"), m(3, "B", 60, "edge")], []),  # three clusters
    ([m(1, "A", 0, ""), m(2, "B", 30, ""), m(3, "B", 60, "")], []),  # no cluster: no place
    # a stray incident 100 s before does not cut the burst short: the densest window wins
    ([m(9, "X", -100, "prod"), m(1, "A", 0, "prod"), m(2, "B", 30, "prod"), m(3, "B", 60, "prod"),
      m(4, "B", 90, "prod")], [[1, 2, 3, 4]]),
    # two bursts in one cluster, 10 minutes apart, and one elsewhere in between
    ([m(1, "A", 0, "prod"), m(2, "B", 10, "prod"), m(3, "B", 20, "prod"), m(5, "C", 300, "edge"),
      m(6, "C", 310, "edge"), m(7, "C", 320, "edge"), m(11, "A", 600, "prod"), m(12, "B", 610, "prod"),
      m(13, "B", 620, "prod")], [[1, 2, 3], [5, 6, 7], [11, 12, 13]]),
    # the same minute: by id
    ([m(3, "B", 0, "prod"), m(2, "B", 0, "prod"), m(1, "A", 0, "prod")], [[1, 2, 3]]),
]


@pytest.mark.parametrize("members,expected", FINDS)
def test_find_bursts(members, expected):
    assert [[x.incident_id for x in b.members] for b in find_bursts(members, RULES)] == expected


def test_no_bursts_when_turned_off():
    members = [m(i, "A", i, "prod") for i in range(10)]
    assert find_bursts(members, BurstRules(timedelta(minutes=2), 0, LABELS)) == []
    assert find_bursts(members, BurstRules(timedelta(minutes=2), 3, ())) == []


def test_burst_scope_and_span():
    (burst,) = find_bursts([m(1, "A", 0, "prod", "pay"), m(2, "B", 30, "prod", "pay", "api"),
                            m(3, "B", 95, "prod", "pay", "web")], RULES)
    assert burst.scope == (("cluster", "prod"), ("namespace", "pay")) and burst.span == timedelta(seconds=95)


def test_records_count_bursts_and_firsts():
    past = [Burst((m(1, "Node", 0, "p"), m(2, "Pod", 5, "p"), m(3, "Pod", 9, "p"))),
            Burst((m(4, "Pod", 0, "p"), m(5, "Node", 5, "p"), m(6, "Pod", 9, "p"))),
            Burst((m(7, "Node", 0, "p"), m(8, "Disk", 5, "p"), m(9, "Disk", 9, "p")))]
    assert records(past) == {"Node": Record(2, 3), "Pod": Record(1, 2), "Disk": Record(0, 1)}


BURST = Burst((m(1, "Pod", 0, "prod"), m(2, "Node", 10, "prod"), m(3, "Pod", 20, "prod")))

# (history, the member named, fired first?, likely?)
CAUSES = [
    ({}, 1, True, True),  # no history: the first to fire
    ({"Pod": Record(5, 6)}, 1, True, True),  # the first, and usually first
    ({"Pod": Record(1, 6), "Node": Record(9, 11)}, 2, False, True),  # the first is rarely first; Node usually is
    ({"Node": Record(9, 11)}, 2, False, True),  # the first has no say; Node has
    ({"Pod": Record(1, 6)}, 1, True, False),  # rarely first, no better: first to fire, not a likely cause
    ({"Pod": Record(1, 6), "Node": Record(1, 2)}, 1, True, False),  # two bursts say nothing yet
    ({"Pod": Record(3, 6), "Node": Record(9, 11)}, 1, True, True),  # first in half: enough
]


@pytest.mark.parametrize("history,named,first,likely", CAUSES)
def test_likely_cause(history, named, first, likely):
    cause = likely_cause(BURST, history)
    assert (cause.member.incident_id, cause.fired_first, cause.likely) == (named, first, likely)


# (burst, history, its line)
LINES = [
    (Burst(tuple(m(812 + i, "KubeNodeNotReady" if i == 0 else "PodCrash", i * 8, "prod", "payments")
                 for i in range(14))), {"KubeNodeNotReady": Record(9, 11)},
     "14 new incidents in prod/payments within 2m — likely one cause: #812 KubeNodeNotReady, first to fire and "
     "historically first in 9 of 11 such bursts"),
    (BURST, {}, "3 new incidents in prod within 20s — likely one cause: #1 Pod, first to fire"),
    (BURST, {"Node": Record(9, 11)}, "3 new incidents in prod within 20s — likely one cause: #2 Node, historically "
                                      "first in 9 of 11 such bursts (#1 Pod fired first)"),
    (BURST, {"Pod": Record(1, 6)}, "3 new incidents in prod within 20s — first to fire: #1 Pod (first in 1 of 6 such "
                                    "bursts before)"),
    (Burst((m(1, "Node", 0, "prod", new=False), m(2, "Pod", 10, "prod", "pay"), m(3, "Pod", 20, "prod", "shop"))),
     {}, "3 incidents opened in prod within 20s, 2 of them new here — likely one cause: #1 Node (announced earlier), "
         "first to fire"),
]


@pytest.mark.parametrize("burst,history,line", LINES)
def test_burst_line(burst, history, line):
    assert summary(burst, likely_cause(burst, history)) == line


def change(iid: int, alertname: str, after_s: float, namespace: str = "payments", kind: str = "opened",
           cluster: str = "prod") -> Change:
    return Change(notification_id=iid, incident_id=iid, change=kind, severity="critical",
                  created_at=T0 + timedelta(seconds=after_s), opened_at=T0 + timedelta(seconds=after_s),
                  title=f"{alertname} ({cluster}/{namespace})", alertname=alertname, cluster=cluster,
                  namespace=namespace, service="api", alert_count=1, series_count=1, series_firing=1)


def sections(message: dict) -> list[str]:
    return [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]


def test_digest_groups_a_burst_under_its_line_cause_first():
    changes = [change(20, "DiskFull", -3000, "db", cluster="stage"),  # elsewhere, an hour before
               *[change(800 + i, "PodCrash", 5 + i * 7) for i in range(12)],
               change(812, "KubeNodeNotReady", 0),
               change(900, "Old", -7200, kind="resolved")]
    context = BurstContext(BurstRules(timedelta(minutes=2), 5, LABELS), history={"KubeNodeNotReady": Record(9, 11)})
    message = build_digest(changes, World(), T0 + timedelta(minutes=5), bursts=context)
    texts = sections(message)
    assert texts[0] == "*New (14)*"
    assert texts[1] == (":boom: *Burst:* 13 new incidents in prod/payments/api within 2m — likely one cause: "
                        "#812 KubeNodeNotReady, first to fire and historically first in 9 of 11 such bursts")
    assert "· #812" in texts[2] and "KubeNodeNotReady" in texts[2]  # the cause's own line, first
    assert all("PodCrash" in t for t in texts[3:15])  # then the burst, then the rest of New
    assert "DiskFull" in texts[15] and texts[16] == "*Resolved (1)*"
    assert "burst: 13 new incidents in prod/payments/api" in message["text"].splitlines()[1]
    assert limit_violations(message) == [] and slack_blockkit.problems(message["blocks"]) == []
    without = build_digest(changes, World(), T0 + timedelta(minutes=5))
    assert not any("Burst" in t for t in sections(without))  # grouping only with a context


@pytest.mark.parametrize("n", [5, 48, 49, 60, 400])
def test_a_burst_keeps_slack_limits(n):
    changes = [change(i, f"Rule{i % 7}", i * 0.2, namespace="n" * 300) for i in range(n)]
    context = BurstContext(BurstRules(timedelta(minutes=2), 5, LABELS))
    message = build_digest(changes, World({"critical": n}), T0 + timedelta(minutes=5), bursts=context)
    assert limit_violations(message) == [] and slack_blockkit.problems(message["blocks"]) == []
    texts = sections(message)
    assert texts[1].startswith(":boom: *Burst:*")
    if n > 47:
        assert texts[-1].startswith("…and ")


def test_the_named_cause_is_the_root_on_a_generated_history():
    """Each story of the generated month as one digest, with the records of the bursts before
    it: the line names the story's root in at least 90 % of the stories after the first week."""
    history = generate(days=30, seed=11)
    rules = BurstRules(timedelta(minutes=5), 4, LABELS)
    members = [Member(i, g.alertname, g.opened_at, tuple((k, v) for k, v in zip(LABELS, (g.cluster, g.namespace,
                                                                                         g.service), strict=True) if v))
               for i, g in enumerate(history)]
    roots = {g.story: i for i, g in enumerate(history) if g.root}
    right = judged = 0
    for root in roots.values():
        start = history[root].opened_at
        if start < HISTORY_T0 + timedelta(days=7):
            continue
        now = [x for x in members if abs(x.opened_at - start) <= rules.window]
        past = records(find_bursts([x for x in members if x.opened_at < start - rules.window], rules))
        found = [b for b in find_bursts(now, rules) if any(x.incident_id == root for x in b.members)]
        judged += 1
        right += bool(found) and likely_cause(found[0], past).member.incident_id == root
    assert judged > 50 and right / judged >= 0.9, (right, judged)


def test_notify_dry_run_groups_a_burst_with_its_history(engine, db_url):
    history = generate(days=30, seed=5)
    insert(engine, history)
    from tests.support.factories import add_incident

    start = HISTORY_T0 + timedelta(days=31)
    earlier = add_incident(engine, title="KubeNodeNotReady (prod-eu)", opened_at=start,
                           labels={"alertname": "KubeNodeNotReady", "cluster": "prod-eu", "namespace": "",
                                   "service": ""})  # announced by an earlier digest: no pending change
    new = [add_incident(engine, title=f"PodCrashLooping {n}", opened_at=start + timedelta(seconds=10 + n * 9),
                        labels={"alertname": "PodCrashLooping", "cluster": "prod-eu", "namespace": "payments",
                                "service": f"svc{n}"}) for n in range(6)]
    for iid in new:
        add_change(engine, iid, created_at=start + timedelta(minutes=1))
    env = {"INCIDENTCTL_DATABASE_URL": db_url, "INCIDENTCTL_BURST_MIN_INCIDENTS": "5"}
    result = invoke("notify", "--dry-run", env=env)
    assert result.exit_code == 0, result.output
    (preview,) = json.loads(result.stdout)
    texts = sections(preview["message"])
    burst = next(t for t in texts if t.startswith(":boom:"))
    past = [g for g in history if g.root and g.alertname == "KubeNodeNotReady"]
    assert burst.startswith(f":boom: *Burst:* 7 incidents opened in prod-eu within 55s, 6 of them new here — likely "
                            f"one cause: #{earlier} KubeNodeNotReady (announced earlier), first to fire and "
                            f"historically first in ")
    firsts, bursts = map(int, burst.split("historically first in ")[1].split(" such bursts")[0].split(" of "))
    assert 3 <= bursts <= len(past) and firsts / bursts >= 0.5
    off = invoke("notify", "--dry-run", env={**env, "INCIDENTCTL_BURST_MIN_INCIDENTS": "0"})
    assert not any(t.startswith(":boom:") for t in sections(json.loads(off.stdout)[0]["message"]))
