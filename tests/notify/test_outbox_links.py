"""The links a digest shows for an incident: each kind from the first series that has it."""

from __future__ import annotations

from incidentctl.db.schema import incident_alerts
from incidentctl.notify import outbox
from tests.support import T0
from tests.support.factories import add_incident


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
