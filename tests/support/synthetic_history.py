"""A realistic synthetic alert history, as Alertmanager would have sent it (version 4 bodies).

Series spread over clusters/namespaces/services; each alert group (alertname, cluster) flushes
every 5 minutes with all its firing alerts (repeats) plus those resolved since the last flush;
some series flap (resolve and fire again within minutes), others fire once for hours.
Deterministic for a seed. Used by the tests and by bench/bench_process.py.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from incidentctl.incidents.fingerprint import label_fingerprint
from tests.support import T0

ALERTNAMES = ("HighLatency", "HighErrorRate", "PodCrashLooping", "DiskFull", "CPUThrottling", "MemoryPressure",
              "KubeJobFailed", "TargetDown", "CertificateExpiry", "QueueBacklog")
SEVERITIES = ("critical", "warning", "warning", "info", "error")
ZERO = "0001-01-01T00:00:00Z"


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def history(series: int = 200, minutes: int = 240, seed: int = 1, flush_every: int = 5,
            start: datetime = T0) -> Iterator[tuple[datetime, bytes]]:
    """Yields (received_at, body) in arrival order."""
    rnd = random.Random(seed)
    clusters = [f"c{i}" for i in range(max(1, series // 400) + 2)]
    all_series = []
    for i in range(series):
        labels = {"alertname": ALERTNAMES[i % len(ALERTNAMES)], "cluster": clusters[i % len(clusters)],
                  "namespace": f"ns{(i // 7) % 25}", "service": f"svc{(i // 3) % 60}",
                  "instance": f"10.0.{i // 250}.{i % 250}:9100",
                  "severity": SEVERITIES[i % len(SEVERITIES)]}
        flappy = rnd.random() < 0.2
        all_series.append({"labels": labels, "fp": label_fingerprint(labels), "flappy": flappy,
                           "firing": False, "starts": None, "ends": None, "pending_resolved": False,
                           "next": rnd.randint(0, min(minutes // 2, 120))})
    groups: dict[tuple[str, str], list[dict]] = {}
    for s in all_series:
        groups.setdefault((s["labels"]["alertname"], s["labels"]["cluster"]), []).append(s)
    offsets = {key: rnd.randint(0, flush_every - 1) for key in groups}
    for minute in range(minutes):
        now = start + timedelta(minutes=minute)
        for s in all_series:
            if minute >= s["next"]:
                if s["firing"]:
                    s["firing"], s["pending_resolved"] = False, True
                    s["ends"] = now + timedelta(seconds=rnd.randint(0, 59))
                    s["next"] = minute + (rnd.randint(3, 20) if s["flappy"] else rnd.randint(60, 400))
                else:
                    s["firing"], s["ends"], s["pending_resolved"] = True, None, False
                    s["starts"] = now + timedelta(seconds=rnd.randint(0, 59))
                    s["next"] = minute + (rnd.randint(2, 15) if s["flappy"] else rnd.randint(20, 300))
        for key, members in groups.items():
            if (minute + offsets[key]) % flush_every:
                continue
            alerts = []
            for s in members:
                if s["firing"] and s["starts"] <= now:
                    alerts.append(_alert(s, "firing"))
                elif s["pending_resolved"]:
                    s["pending_resolved"] = False
                    alerts.append(_alert(s, "resolved"))
            if not alerts:
                continue
            received = now + timedelta(seconds=30, microseconds=rnd.randint(0, 999_999))
            yield received, _body(key, alerts)


def _alert(s: dict, status: str) -> dict:
    return {"status": status, "labels": s["labels"],
            "annotations": {"summary": f"{s['labels']['alertname']} on {s['labels']['instance']}",
                            "runbook_url": "https://runbooks.example.com/" + s["labels"]["alertname"]},
            "startsAt": _iso(s["starts"]), "endsAt": _iso(s["ends"]) if status == "resolved" else ZERO,
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up", "fingerprint": s["fp"]}


def _body(key: tuple[str, str], alerts: list[dict]) -> bytes:
    firing = sum(1 for a in alerts if a["status"] == "firing")
    doc = {"receiver": "incidentctl", "status": "firing" if firing else "resolved", "alerts": alerts,
           "groupLabels": {"alertname": key[0], "cluster": key[1]},
           "commonLabels": {"alertname": key[0], "cluster": key[1]}, "commonAnnotations": {},
           "externalURL": "http://alertmanager:9093", "version": "4",
           "groupKey": f'{{}}:{{alertname="{key[0]}", cluster="{key[1]}"}}', "truncatedAlerts": 0}
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()
