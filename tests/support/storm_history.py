"""An alert storm, as Alertmanager would send it (version 4 bodies): a node pool dies and
thousands of pods fail at once.

Nearly every alert is a series never seen before (a pod of its own); about one alert in eight
opens a new incident (a new alertname/cluster/namespace/service); about a fifth of the alerts
resolve a series that fired earlier, so some incidents auto-resolve. Bodies carry a few alerts
of one incident each, severities are mixed, and the label combinations run into the thousands
(clusters × namespaces × services × nodes × containers). With `pods` in the thousands, the same
storm falls into a few wide incidents (one alertname in a cluster, every pod of a node pool).
Deterministic for a seed. Used by the tests and by bench/bench_process.py.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from incidentctl.incidents.fingerprint import label_fingerprint
from tests.support import T0
from tests.support.synthetic_history import ALERTNAMES, SEVERITIES, ZERO, _iso

CLUSTERS = tuple(f"prod-{i}" for i in range(12))
NAMESPACES = tuple(f"team{i}-ns" for i in range(40))
SERVICES = tuple(f"svc-{i}" for i in range(150))
CONTAINERS = ("app", "sidecar", "proxy", "init", "worker")
OPEN_INCIDENTS = 60  # incidents storming at once


def storm(alerts: int = 2000, seed: int = 7, start: datetime = T0, *, pods: tuple[int, int] = (1, 12),
          storming_at_once: int = OPEN_INCIDENTS) -> Iterator[tuple[datetime, bytes]]:
    """Yields (received_at, body) in arrival order until at least `alerts` alerts were sent. Each
    incident gets between `pods` failing pods (series), `storming_at_once` incidents at a time:
    pods=(5_000, 20_000) is a node pool whose pods all fail into a few incidents."""
    rnd = random.Random(seed)
    keys = _incident_keys(rnd)
    storming: list[dict] = []
    sent = 0
    now = start
    while sent < alerts:
        while len(storming) < storming_at_once:
            storming.append(_incident(next(keys), rnd, pods))
        incident = storming[rnd.randrange(len(storming))]
        now += timedelta(milliseconds=rnd.randint(1, 40))
        body = []
        for _ in range(min(rnd.randint(1, 6), alerts - sent)):
            alert = _next_alert(incident, now, rnd)
            if alert is None:
                break
            body.append(alert)
        if incident["left"] == 0 and not incident["to_resolve"]:
            storming.remove(incident)
        if body:
            sent += len(body)
            yield now + timedelta(milliseconds=500), _body(incident, body)


def _incident_keys(rnd: random.Random) -> Iterator[tuple[str, str, str, str]]:
    """Incident groups never seen before, in a shuffled order."""
    seen: set[tuple[str, str, str, str]] = set()
    while True:
        key = (rnd.choice(ALERTNAMES), rnd.choice(CLUSTERS), rnd.choice(NAMESPACES), rnd.choice(SERVICES))
        if key not in seen:
            seen.add(key)
            yield key


def _incident(key: tuple[str, str, str, str], rnd: random.Random, pods: tuple[int, int]) -> dict:
    # With pods=(1, 12): ~6.4 new series and ~1.6 resolves an incident, one alert in eight opens one.
    return {"key": key, "left": rnd.randint(*pods), "pods": 0, "firing": [], "to_resolve": 0}


def _next_alert(incident: dict, now: datetime, rnd: random.Random) -> dict | None:
    if incident["firing"] and (incident["to_resolve"] or (incident["left"] == 0 and rnd.random() < 0.5)):
        labels, starts = incident["firing"].pop(rnd.randrange(len(incident["firing"])))
        incident["to_resolve"] = max(0, incident["to_resolve"] - 1)
        return _alert(labels, "resolved", starts, now - timedelta(seconds=rnd.randint(0, 20)))
    if incident["left"] == 0:
        incident["to_resolve"] = 0
        return None
    incident["left"] -= 1
    alertname, cluster, namespace, service = incident["key"]
    pod = incident["pods"]
    incident["pods"] += 1
    node = rnd.randrange(400)
    labels = {"alertname": alertname, "cluster": cluster, "namespace": namespace, "service": service,
              "pod": f"{service}-{rnd.getrandbits(32):08x}-{pod}", "container": rnd.choice(CONTAINERS),
              "node": f"node-{node}", "instance": f"10.{node // 250}.{node % 250}.{rnd.randrange(250)}:9100",
              "severity": rnd.choice(SEVERITIES), "team": namespace.split("-")[0]}
    starts = now - timedelta(seconds=rnd.randint(0, 90))
    incident["firing"].append((labels, starts))
    if rnd.random() < 0.2:  # with the last ones resolved at the end: a fifth of all alerts resolve
        incident["to_resolve"] += 1
    return _alert(labels, "firing", starts, None)


def _alert(labels: dict, status: str, starts: datetime, ends: datetime | None) -> dict:
    return {"status": status, "labels": labels,
            "annotations": {"summary": f"{labels['alertname']} on {labels['pod']}",
                            "description": f"{labels['container']} of {labels['pod']} on {labels['node']}",
                            "runbook_url": "https://runbooks.example.com/" + labels["alertname"]},
            "startsAt": _iso(starts), "endsAt": _iso(ends) if ends is not None else ZERO,
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up", "fingerprint": label_fingerprint(labels)}


def _body(incident: dict, alerts: list[dict]) -> bytes:
    alertname, cluster, namespace, service = incident["key"]
    group = {"alertname": alertname, "cluster": cluster, "namespace": namespace, "service": service}
    firing = sum(1 for a in alerts if a["status"] == "firing")
    doc = {"receiver": "incidentctl", "status": "firing" if firing else "resolved", "alerts": alerts,
           "groupLabels": group, "commonLabels": group, "commonAnnotations": {},
           "externalURL": "http://alertmanager:9093", "version": "4",
           "groupKey": "{}:{" + ", ".join(f'{k}="{v}"' for k, v in group.items()) + "}", "truncatedAlerts": 0}
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()
