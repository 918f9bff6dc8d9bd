"""Outbox claims as row updates: two notify runs never hold the same row; a conflict is retried."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from incidentctl.db.retry import Conflicts
from incidentctl.db.schema import incident_alerts, notifications
from incidentctl.notify import outbox
from tests.support import T0
from tests.support.conflicts import conflicting
from tests.support.factories import add_incident, add_incidents_with_changes

NOW = T0 + timedelta(minutes=1)
LEASE = timedelta(minutes=2)


def claimed_by(engine) -> dict[int, str | None]:
    with engine.connect() as conn:
        return dict(conn.execute(select(notifications.c.id, notifications.c.claimed_by)).all())


def test_a_claim_names_its_claimer_and_hides_the_rows_until_it_expires(engine):
    ids = add_incidents_with_changes(engine, 3)
    rows = outbox.claim_due(engine, NOW, LEASE, claimer="host-a:1:x")
    assert [r["id"] for r in rows] == ids and {r["claimed_by"] for r in rows} == {"host-a:1:x"}
    assert outbox.claim_due(engine, NOW + LEASE - timedelta(seconds=1), LEASE, claimer="host-b:2:y") == []
    again = outbox.claim_due(engine, NOW + LEASE, LEASE, claimer="host-b:2:y")  # the first run died
    assert [r["id"] for r in again] == ids and set(claimed_by(engine).values()) == {"host-b:2:y"}


def test_a_dry_run_claims_nothing(engine):
    ids = add_incidents_with_changes(engine, 2)
    assert [r["id"] for r in outbox.claim_due(engine, NOW, LEASE, claim=False)] == ids
    assert set(claimed_by(engine).values()) == {None}


def test_concurrent_claimers_split_the_rows(engine):
    ids = add_incidents_with_changes(engine, 40)
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(4)

    def claim(name: str):
        barrier.wait()
        got[name] = [r["id"] for r in outbox.claim_due(engine, NOW, LEASE, claimer=name, limit=15)]

    threads = [threading.Thread(target=claim, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for rows in got.values() for i in rows]
    assert len(everything) == len(set(everything))  # no row twice
    assert set(everything) <= set(ids) and len(everything) >= 15  # a claimer that lost its rows gets none of them


def test_a_conflicting_claim_is_retried_and_counted(engine):
    ids = add_incidents_with_changes(engine, 2)
    counts = Conflicts()
    with conflicting(engine, "UPDATE notifications SET", times=1) as failed:
        rows = outbox.claim_due(engine, NOW, LEASE, claimer="host-a:1:x", conflicts=counts)
    assert [r["id"] for r in rows] == ids and len(failed) == 1 and counts.total == 1


def test_links_are_each_incidents_first_series_that_has_each_link(engine):
    # Per link, the first series (lowest id) with a value that is neither NULL nor empty: the
    # server picks it, so an incident of thousands of series is not read whole.
    first, second, bare = (add_incident(engine, title=f"i{n}") for n in range(3))
    links = [(first, {"generator_url": "", "dashboard_url": None, "panel_url": "p1", "silence_url": None}),
             (second, {"generator_url": "r2", "dashboard_url": "d2", "panel_url": None, "silence_url": None}),
             (first, {"generator_url": "r1", "dashboard_url": "", "panel_url": "p-later", "silence_url": "s1"}),
             (first, {"generator_url": "r-later", "dashboard_url": "d1", "panel_url": "", "silence_url": ""}),
             (bare, {"generator_url": None, "dashboard_url": "", "panel_url": None, "silence_url": None})]
    with engine.begin() as conn:
        for n, (incident_id, urls) in enumerate(links):
            conn.execute(incident_alerts.insert().values(
                incident_id=incident_id, alert_fingerprint=f"f{n}", status="firing", severity="critical",
                labels={}, annotations={}, starts_at=T0, ends_at=None, last_event_at=T0, first_seen_at=T0,
                last_seen_at=T0, times_seen=1, image_url=None, **urls))
    found = outbox.links_for(engine, [bare, second, first, 999])
    assert found == {first: {"rule": "r1", "dashboard": "d1", "panel": "p1", "silence": "s1"},
                     second: {"rule": "r2", "dashboard": "d2"}, bare: {}, 999: {}}
    assert outbox.links_for(engine, []) == {}
