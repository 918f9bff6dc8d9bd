"""SeriesCache: the series a processing run keeps between its batches, and the invariant it rests on
(pure, no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from incidentctl.incidents.decide import decide_row
from incidentctl.incidents.model import Action, IncidentState, Rules, SeriesState
from incidentctl.incidents.parsing import AlertEvent
from incidentctl.incidents.processor import decide_batch
from incidentctl.incidents.series_cache import SeriesCache, bare_series
from tests.support.properties import examples

T = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
GROUP_BY = ("alertname", "cluster", "namespace", "service")


def _series(fp: str, times_seen: int = 1) -> SeriesState:
    return SeriesState(fingerprint=fp, status="firing", severity="warning", labels={"alertname": "A"},
                       annotations={"summary": "s"}, links={"generator": "http://g"}, starts_at=T, ends_at=None,
                       last_event_at=T, first_seen_at=T, last_seen_at=T, times_seen=times_seen)


def _state(incident_id: int, alert_count: int = 3, series: tuple[str, ...] = ("s1", "s2"),
           last_alert_at: datetime = T) -> IncidentState:
    return IncidentState(fingerprint=f"fp{incident_id}", status="open", title="t", severity="warning",
                         alertname="A", cluster="", namespace="", service="", group_labels={}, common_labels={},
                         opened_at=T, last_alert_at=last_alert_at, id=incident_id, alert_count=alert_count,
                         series={fp: _series(fp) for fp in series})


def _row(state: IncidentState) -> IncidentState:
    """The incident as load_states reads its row: no series yet."""
    return _state(state.id, state.alert_count, (), state.last_alert_at)


def test_a_committed_incident_fills_the_next_read_of_the_same_version():
    cache = SeriesCache()
    written = _state(1)
    cache.stage([written])
    cache.commit()
    read = _row(written)
    assert cache.fill(read, series_count=2)
    assert sorted(read.series) == ["s1", "s2"]
    assert cache.hits == 1


def test_a_peek_fills_as_fill_does_but_changes_neither_the_order_of_use_nor_the_hits():
    cache = SeriesCache(limit=4)
    cache.stage([_state(1), _state(2)])
    cache.commit()
    peeked = _row(_state(1))
    assert cache.peek(peeked, series_count=2) and sorted(peeked.series) == ["s1", "s2"]
    assert not cache.peek(_row(_state(2, alert_count=4)), series_count=2)  # another version
    assert not cache.peek(_row(_state(3)), series_count=2)  # not kept
    assert cache.hits == 0
    cache.stage([_state(3)])  # two more series: the least recently used incident goes
    cache.commit()
    assert not cache.fill(_row(_state(1)), series_count=2)  # 1 was used least recently: the peek did not count
    assert cache.fill(_row(_state(2)), series_count=2)


def test_kept_series_are_as_load_states_reads_them_without_labels():
    # Labels, annotations and links are not loaded; a series carrying them would be rewritten whole.
    cache = SeriesCache()
    cache.stage([_state(1)])
    cache.commit()
    read = _row(_state(1))
    cache.fill(read, series_count=2)
    assert all(s.labels is None and s.annotations is None and s.links is None for s in read.series.values())
    assert read.series["s1"].times_seen == 1


def test_another_alert_count_last_alert_or_series_count_is_a_miss():
    # Another run applied alerts to the incident since: its row shows another version.
    for changed in (dict(alert_count=4), dict(last_alert_at=T + timedelta(seconds=1))):
        cache = SeriesCache()
        cache.stage([_state(1)])
        cache.commit()
        read = _state(1, series=(), **{"alert_count": 3, "last_alert_at": T, **changed})
        assert not cache.fill(read, series_count=2)
        assert read.series == {}
        assert not cache.fill(_row(_state(1)), series_count=2)  # a stale entry is dropped, not kept
    cache = SeriesCache()
    cache.stage([_state(1)])
    cache.commit()
    assert not cache.fill(_row(_state(1)), series_count=3)


def test_unknown_incident_is_a_miss():
    assert not SeriesCache().fill(_row(_state(7)), series_count=2)


def test_staged_entries_are_dropped_on_rollback():
    cache = SeriesCache()
    cache.stage([_state(1)])
    cache.rollback()
    cache.commit()
    assert not cache.fill(_row(_state(1)), series_count=2)


def test_a_later_stage_of_the_same_incident_wins():
    # load_states stages what it read, the batch then stages what it wrote.
    cache = SeriesCache()
    cache.stage([_state(1, alert_count=3)])
    cache.stage([_state(1, alert_count=5, series=("s1", "s2", "s3"))])
    cache.commit()
    assert not cache.fill(_row(_state(1, alert_count=3)), series_count=2)
    read = _row(_state(1, alert_count=5))
    cache.stage([_state(1, alert_count=5, series=("s1", "s2", "s3"))])
    cache.commit()
    assert cache.fill(read, series_count=3)
    assert len(read.series) == 3


def test_staged_gives_each_incidents_latest_series_as_they_will_be_kept():
    cache = SeriesCache()
    cache.stage([_state(1, alert_count=3)])
    cache.stage([_state(1, alert_count=5, series=("s1", "s2", "s3")), _state(2)])
    staged = cache.staged()
    assert sorted(staged) == [1, 2] and sorted(staged[1]) == ["s1", "s2", "s3"]
    assert all(s.labels is None for s in staged[1].values())
    cache.commit()
    row = _row(_state(1, alert_count=5))
    assert cache.fill(row, series_count=3)
    assert all(row.series[fp] is staged[1][fp] for fp in staged[1])  # the very objects
    assert cache.staged() == {}


def test_unsaved_incidents_are_not_kept():
    cache = SeriesCache()
    cache.stage([_state(None)])  # type: ignore[arg-type]
    cache.commit()
    assert cache._size == 0


def test_least_recently_used_go_first_beyond_the_limit():
    cache = SeriesCache(limit=4)  # series, two incidents of two
    for incident_id in (1, 2):
        cache.stage([_state(incident_id)])
    cache.commit()
    assert cache.fill(_row(_state(1)), series_count=2)  # 1 is now the most recently used
    cache.stage([_state(3)])
    cache.commit()
    assert not cache.fill(_row(_state(2)), series_count=2)  # evicted
    assert cache.fill(_row(_state(1)), series_count=2)
    assert cache.fill(_row(_state(3)), series_count=2)
    assert cache._size == 4


def test_the_incidents_the_last_transaction_used_stay_whatever_their_series():
    # Its batch held their series anyway; dropping them would only read them back next batch.
    cache = SeriesCache(limit=4)
    cache.stage([_state(1)])
    cache.commit()
    cache.stage([_state(2)])
    cache.stage([_state(3, series=("s1", "s2", "s3", "s4", "s5"))])
    cache.commit()
    assert cache._size == 7  # 1 made room; 2 and 3, used last, stay over the limit
    assert not cache.fill(_row(_state(1)), series_count=2)
    assert cache.fill(_row(_state(3)), series_count=5)
    cache.commit()  # a transaction that used 3 alone: the others go first
    assert not cache.fill(_row(_state(2)), series_count=2)
    assert cache.fill(_row(_state(3)), series_count=5)
    cache.stage([_state(4)])
    cache.commit()
    assert cache._size == 7  # 3 (filled) and 4 (staged), both used last
    cache.stage([_state(5)])
    cache.commit()
    assert not cache.fill(_row(_state(3)), series_count=5)
    assert cache.fill(_row(_state(5)), series_count=2) and cache.fill(_row(_state(4)), series_count=2)
    assert cache._size == 4


def test_wide_incidents_every_batch_uses_are_never_read_back():
    # A storm of three wide incidents, each changed by every batch: together past the limit, none
    # pushes the others out (with LRU alone, each commit evicted the two used before the last).
    cache = SeriesCache(limit=4)
    wide = {n: tuple(f"s{k}" for k in range(3 + n)) for n in (1, 2, 3)}
    cache.stage([_state(n, alert_count=1, series=wide[n]) for n in wide])
    cache.commit()
    for batch in range(2, 6):
        for n in wide:
            assert cache.fill(_row(_state(n, alert_count=batch - 1)), series_count=len(wide[n])), (batch, n)
        cache.stage([_state(n, alert_count=batch, series=wide[n]) for n in wide])
        cache.commit()
    assert cache.hits == 12 and cache._size == sum(map(len, wide.values()))


def test_a_rolled_back_transaction_protects_nothing():
    cache = SeriesCache(limit=2)
    cache.stage([_state(1)])
    cache.commit()
    assert cache.fill(_row(_state(1)), series_count=2)
    cache.rollback()
    cache.stage([_state(3)])
    cache.commit()  # 1 was used by the transaction that rolled back, not by this one
    assert not cache.fill(_row(_state(1)), series_count=2)
    assert cache.fill(_row(_state(3)), series_count=2) and cache._size == 2


# The invariant the cache rests on: the processor never changes an incident's series without
# counting an alert on it (alert_count), so a kept entry is never used after its series changed.

def _event(fp: str, status: str, at: int, start: int) -> AlertEvent:
    labels = {"alertname": "A", "cluster": "c", "namespace": "n", "service": "s", "severity": "warning"}
    when = T + timedelta(minutes=at)
    return AlertEvent(fp, status, labels, {"summary": "s"}, when, starts_at=T + timedelta(minutes=start),
                      ends_at=when if status == "resolved" else None)


# The strategies _rows draws from, built once: building one per draw cost more than the draw.
_ROWS, _EVENTS, _MINUTES, _LAGS = st.integers(1, 30), st.integers(1, 3), st.integers(0, 600), st.integers(-5, 90)
_SERIES, _STATUSES = st.sampled_from("xyz"), st.sampled_from(["firing", "resolved"])


@st.composite
def _rows(draw):
    """Raw rows of one to three events: firing and resolved alerts of three series, any order and timing."""
    rows = []
    for _ in range(draw(_ROWS)):
        row = []
        for _ in range(draw(_EVENTS)):
            at = draw(_MINUTES)
            row.append(_event(draw(_SERIES), draw(_STATUSES), at, at - draw(_LAGS)))
        rows.append(row)
    return rows


def _kept(state: IncidentState) -> dict:
    """The series as the cache keeps them (without labels, annotations and links)."""
    return {fp: replace(s, labels=None, annotations=None, links=None) for fp, s in state.series.items()}


@given(_rows())
@settings(max_examples=examples(300), deadline=None)
def test_a_decision_never_changes_series_without_changing_the_version(rows):
    states: dict[str, IncidentState] = {}
    for events in rows:
        for _, fp, decision in decide_row(states, events, group_by=GROUP_BY, reopen_window=timedelta(minutes=30)):
            before = states.get(fp)
            after = decision.state if decision.changed else before
            if after is None or decision.action == Action.OPEN or before is None:
                if decision.changed and decision.state is not None:
                    states[fp] = decision.state
                continue
            if _kept(after) != _kept(before):
                assert (SeriesCache.version(after, len(after.series))
                        != SeriesCache.version(before, len(before.series))), decision
            if decision.changed:
                states[fp] = decision.state


@given(_rows(), st.integers(0, 30))
@settings(max_examples=examples(300), deadline=None)
def test_only_the_series_a_batch_changed_carry_labels(rows, split):
    # The cache strips only the series a batch's decisions changed (`stage(changed=…)`): every
    # other series of its incidents must be bare already, whatever the events did. Two batches:
    # the second starts from the first's incidents as load_states reads them back.
    rules = Rules(GROUP_BY, timedelta(minutes=30))
    first = decide_batch({}, list(enumerate(rows[:split])), rules)
    loaded = {}
    for n, (fp, state) in enumerate(first.states.items(), start=1):
        loaded[fp] = state.copy()
        loaded[fp].id, loaded[fp].series = n, bare_series(state.series)
    second = decide_batch(loaded, list(enumerate(rows[split:])), rules)
    for decided in (first, second):
        changes = decided.changes
        for key, state in changes.incidents.items():
            assert bare_series(state.series, changes.series.get(key, ())) == bare_series(state.series)
