"""`related`: the pure linking decision (table-driven), and `incidentctl related` / the related
section of `show` through the CLI on both databases."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from incidentctl.history.cooccurrence import PairStats
from incidentctl.history.related import COOCCURRENCE, SAME_PLACE, Fact, RelatedRules, find_links
from tests.support.cli import invoke
from tests.support.processing import store

T0 = datetime(2026, 4, 20, 12, 0, tzinfo=timezone.utc)
LABELS = ("cluster", "namespace", "service")
RULES = RelatedRules(timedelta(minutes=5), LABELS, timedelta(days=30))


def fact(iid: int, alertname: str, *place: str, after_s: float = 0) -> Fact:
    return Fact(iid, f"{alertname} ({'/'.join(place)})", alertname, "warning", "open", T0 + timedelta(seconds=after_s),
                tuple((k, v) for k, v in zip(LABELS, place, strict=False) if v))


ANCHOR = fact(1, "PodCrash", "prod", "pay", "api")
STRONG = PairStats("NodeDown", "PodCrash", 11, 9, 0.4, 1e-11)
WEAK = PairStats("DiskFull", "PodCrash", 40, 3, 2.0, 0.3)
RARE = PairStats("NodeDown", "PodCrash", 2, 2, 0.01, 1e-5)  # unusual, but seen together only twice

# (candidate, the anchor's pair statistics with its alertname, the kinds of link; () = no link)
CASES = [
    (fact(2, "HighLatency", "prod", "pay", "web", after_s=40), None, (SAME_PLACE,)),  # same namespace
    (fact(3, "NodeDown", "prod", after_s=-30), None, (SAME_PLACE,)),  # cluster-wide covers it
    (fact(4, "DiskFull", "prod", "shop", "db", after_s=10), None, ()),  # only the cluster in common
    (fact(5, "NodeDown", "prod", "kube-system", "kubelet", after_s=-30), STRONG, (COOCCURRENCE,)),
    (fact(6, "NodeDown", "prod", after_s=-30), STRONG, (SAME_PLACE, COOCCURRENCE)),
    (fact(7, "NodeDown", "stage", after_s=-30), STRONG, ()),  # the pair's history, but another cluster
    (fact(8, "DiskFull", "prod", "shop", "db", after_s=10), WEAK, ()),  # together by chance
    (fact(9, "NodeDown", "prod", "kube-system", after_s=-30), RARE, ()),  # too few times to say
    (fact(10, "HighLatency", "prod", "pay", "web", after_s=301), None, ()),  # outside the window
    (fact(11, "HighLatency", "prod", "pay", "web", after_s=-300), None, (SAME_PLACE,)),  # the window's edge
    (fact(1, "PodCrash", "prod", "pay", "api"), None, ()),  # itself
]


@pytest.mark.parametrize("candidate,pair,kinds", CASES, ids=lambda v: str(v.id) if isinstance(v, Fact) else None)
def test_find_links(candidate, pair, kinds):
    pairs = {candidate.alertname: pair} if pair else {}
    links = find_links(ANCHOR, [candidate], pairs, RULES)
    assert tuple(link.kinds for link in links) == ((kinds,) if kinds else ())
    for link in links:
        assert len(link.reasons) == len(link.kinds)  # each kind says why


def test_find_links_order_and_reasons():
    candidates = [fact(2, "HighLatency", "prod", "pay", "web", after_s=40),
                  fact(3, "NodeDown", "prod", after_s=-30),
                  fact(4, "QueueBacklog", "prod", "pay", "worker", after_s=20),
                  fact(5, "PodCrash", "prod", "pay", "api", after_s=100)]
    links = find_links(ANCHOR, candidates, {"NodeDown": STRONG}, RULES)
    # both kinds first, then the most place shared, then the closest in time
    assert [link.incident.id for link in links] == [3, 5, 4, 2]
    assert links[0].reasons == (
        "opened 30s earlier, both in prod",
        "9 of 11 NodeDown incidents before had a PodCrash within 5m in the same cluster, 0.4 expected by chance "
        "(p=1e-11)")
    assert links[1].reasons == ("opened 1m later, both in prod/pay/api",)
    assert links[1].gap == timedelta(seconds=100) and links[3].gap == timedelta(seconds=40)


def am(alertname: str, start: datetime, cluster: str, namespace: str = "", service: str = "") -> bytes:
    labels = {"alertname": alertname, "cluster": cluster, "severity": "critical"}
    labels.update({k: v for k, v in (("namespace", namespace), ("service", service)) if v})
    alert = {"status": "firing", "labels": labels, "annotations": {}, "endsAt": "0001-01-01T00:00:00Z",
             "startsAt": start.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()


@pytest.fixture
def story(db_url, engine):
    """A node goes down in prod; a pod of it crashes 30 s later; a disk fills in another namespace
    of prod and a latency alert fires in stage at the same minutes."""
    store(engine, [(T0, am("NodeDown", T0, "prod")),
                   (T0 + timedelta(seconds=40), am("PodCrash", T0 + timedelta(seconds=30), "prod", "pay", "api")),
                   (T0 + timedelta(seconds=70), am("DiskFull", T0 + timedelta(seconds=60), "prod", "shop", "db")),
                   (T0 + timedelta(seconds=20), am("HighLatency", T0 + timedelta(seconds=10), "stage", "pay", "api"))])
    env = {"INCIDENTCTL_DATABASE_URL": db_url, "COLUMNS": "200"}
    assert invoke("process", env=env).exit_code == 0
    listed = json.loads(invoke("list", "-o", "json", env=env).output)
    return env, {i["alertname"]: i["id"] for i in listed}


def related_json(env, iid) -> list[dict]:
    result = invoke("related", str(iid), "-o", "json", env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_related_links_with_reasons(story):
    env, ids = story
    (link,) = related_json(env, ids["PodCrash"])
    assert (link["id"], link["alertname"], link["kinds"], link["shared"]) == (
        ids["NodeDown"], "NodeDown", ["same-place"], {"cluster": "prod"})
    assert link["gap_seconds"] == -30.0 and link["opened_at"] == "2026-04-20T12:00:00Z"
    assert link["reasons"] == ["opened 30s earlier, both in prod"] and link["cooccurrence"] is None
    # the node covers the pod and the disk of its cluster; the latency in stage is elsewhere
    assert [x["alertname"] for x in related_json(env, ids["NodeDown"])] == ["PodCrash", "DiskFull"]
    assert related_json(env, ids["HighLatency"]) == []
    table = invoke("related", str(ids["PodCrash"]), "--tz", "Europe/Berlin", env=env).output
    assert f"#{ids['PodCrash']} PodCrash (prod/pay/api), opened 2026-04-20 14:00:30 CEST in prod/pay/api" in table
    assert "1 related (times Europe/Berlin)" in table and "14:00 (−30s)" in table
    assert "opened 30s earlier, both in prod" in table
    missing = invoke("related", "999999", env=env)  # the root group prints it, exit 1
    assert missing.exit_code == 1 and "incident 999999 not found" in missing.stderr


def test_show_has_a_related_section(story):
    env, ids = story
    shown = invoke("show", str(ids["PodCrash"]), env=env)
    assert shown.exit_code == 0, shown.output
    section = shown.output.split("related (times UTC)")[1]  # after the timeline
    assert "NodeDown" in section and "opened 30s earlier, both in prod" in section
    as_json = json.loads(invoke("show", str(ids["PodCrash"]), "-o", "json", env=env).output)
    assert [x["id"] for x in as_json["related"]] == [ids["NodeDown"]]
    alone = invoke("show", str(ids["HighLatency"]), env=env).output
    assert "no related incident" in alone


def test_cooccurrence_link_from_history(engine, db_url):
    from tests.support.related_history import generate, insert

    history = generate(days=30, seed=3)
    ids = insert(engine, history)
    # the last PostgresDown story: its root shares only the cluster with its dependents
    root = max(i for i, g in zip(ids, history, strict=True) if g.root and g.alertname == "PostgresDown")
    story = next(g.story for i, g in zip(ids, history, strict=True) if i == root)
    dependents = {i for i, g in zip(ids, history, strict=True) if g.story == story and not g.root}
    links = related_json({"INCIDENTCTL_DATABASE_URL": db_url}, root)
    found = {x["id"]: x for x in links}
    assert dependents <= set(found)
    for iid in dependents:
        assert found[iid]["kinds"] == ["co-occurrence"]  # no place in common but the cluster
        (reason,) = found[iid]["reasons"]
        assert re.fullmatch(r"\d+ of \d+ PostgresDown incidents before had an? \w+ within 5m in the same cluster, "
                            r"[\d.]+ expected by chance \(p=\de-\d+\)", reason), reason
        assert found[iid]["cooccurrence"]["p_value"] <= 0.001 and found[iid]["cooccurrence"]["together"] >= 3
