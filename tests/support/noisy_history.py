"""A history with known noisy rules, as Alertmanager would send it (version 4, one alert a body).

Ten days from START, deterministic for a seed:
- `Blip` resolves by itself within 1–3 minutes, every 3 hours; every 10th time it lasts 20
  minutes instead (LONG_BLIPS: those are the ones a person acknowledges in the tests);
- `Flap` fires at 10:00 for 4 hours a day, but drops for 2–4 minutes every 20 minutes (a flap
  each time: it fires again well inside the 30 min reopen window);
- `Nightly` fires at 02:10 for 30 minutes, every night (a backup job);
- `Spread` fires in ten services of one cluster within a minute, every 6 hours, for 15 minutes:
  one incident each under the default group_by, one under `alertname,cluster,namespace`;
- `Real` fires twice for 2 hours; people acknowledge it (not noisy).
A resolve arrives 20 s after its end, a firing 10 s after its start.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

from incidentctl.incidents.fingerprint import label_fingerprint

START = datetime(2026, 11, 2, tzinfo=timezone.utc)
DAYS = 10
END = START + timedelta(days=DAYS)
NOISY = ("Blip", "Flap", "Nightly", "Spread")
M = timedelta(minutes=1)


def _labels(alertname: str, service: str, cluster: str = "c1") -> dict:
    return {"alertname": alertname, "cluster": cluster, "namespace": "ns", "service": service, "severity": "warning",
            "instance": f"{service}:9100"}


def _episodes(seed: int) -> list[tuple[dict, datetime, datetime]]:
    """(labels, start, end) of every firing episode."""
    rnd = random.Random(seed)
    out = []
    for n, at in enumerate(START + timedelta(hours=3) * k + 7 * M for k in range(DAYS * 8)):
        lasts = 20 * M if n % 10 == 9 else timedelta(seconds=rnd.randint(60, 180))
        out.append((_labels("Blip", "blip"), at, at + lasts))
    for day in range(DAYS):
        t = START + timedelta(days=day, hours=10)
        stop = t + timedelta(hours=4)
        while t < stop:
            up = min(t + 20 * M, stop)
            out.append((_labels("Flap", "flap"), t, up))
            t = up + timedelta(seconds=rnd.randint(120, 240))
        night = START + timedelta(days=day, hours=2, minutes=10)
        out.append((_labels("Nightly", "backup"), night, night + 30 * M))
    for k in range(DAYS * 4):
        t = START + timedelta(hours=6) * k + 3 * M
        for s in range(10):
            begin = t + timedelta(seconds=rnd.randint(0, 50))
            out.append((_labels("Spread", f"svc{s}", "c2"), begin, begin + 15 * M))
    for at in (START + timedelta(days=2, hours=15), START + timedelta(days=7, hours=15)):
        out.append((_labels("Real", "api"), at, at + timedelta(hours=2)))
    return out


def noisy_history(seed: int = 1) -> Iterator[tuple[datetime, bytes]]:
    """(received_at, body) in arrival order."""
    sends = []
    for labels, start, end in _episodes(seed):
        sends.append((start + timedelta(seconds=10), _body(labels, "firing", start, None)))
        sends.append((end + timedelta(seconds=20), _body(labels, "resolved", start, end)))
    sends.sort(key=lambda pair: pair[0])
    previous = None
    for received, body in sends:
        if previous is not None and received <= previous:
            received = previous + timedelta(microseconds=1)
        previous = received
        yield received, body


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _body(labels: dict, status: str, start: datetime, end: datetime | None) -> bytes:
    alert = {"status": status, "labels": labels, "annotations": {"summary": labels["alertname"]},
             "startsAt": _iso(start), "endsAt": _iso(end) if end else "0001-01-01T00:00:00Z",
             "fingerprint": label_fingerprint(labels)}
    return json.dumps({"version": "4", "status": status, "receiver": "incidentctl", "alerts": [alert],
                       "groupLabels": {"alertname": labels["alertname"]}}).encode()


def acknowledgements(seed: int = 1) -> list[tuple[str, datetime]]:
    """(alertname, when) a person acknowledges: 5 minutes into every long Blip and every Real."""
    return sorted(((labels["alertname"], start + 5 * M) for labels, start, end in _episodes(seed)
                   if labels["alertname"] == "Real" or (labels["alertname"] == "Blip" and end - start >= 10 * M)),
                  key=lambda ack: ack[1])


def load(engine) -> None:
    """Stores the history and processes it as it arrived, a person acknowledging as it goes."""
    from sqlalchemy import select

    from incidentctl.db.schema import incidents
    from incidentctl.incidents.actions import transition
    from tests.support.processing import process_all, store

    rows = list(noisy_history())
    store(engine, rows)
    done = 0
    for alertname, at in acknowledgements():
        due = sum(1 for received, _ in rows if received < at)
        process_all(engine, limit=due - done)
        done = due
        with engine.connect() as conn:
            incident_id = conn.execute(select(incidents.c.id).where(incidents.c.alertname == alertname,
                                                                    incidents.c.status == "open")).scalar_one()
        transition(engine, "ack", incident_id, by="alice", note=None, now=at)
    process_all(engine)
