"""The series a processing run keeps between its batches, so that the next batch need not read
them back (`process` and `replay --process` touch the same incidents batch after batch).

An entry is used only while the incident row shows the version it was kept at (`version`:
alert_count, last_alert_at, series count). That holds because every change the processor makes
to an incident's series also counts an alert on it, in the same transaction (checked over any
event stream by tests/incidents/test_series_cache.py), and people never change series.
`rebuild` rewrites series without counting: an entry kept across one is used only when the
rebuilt incident kept its id and all three numbers, i.e. was recomputed from the same alerts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from incidentctl.incidents.model import IncidentState, SeriesState


class SeriesCache:
    """Series by incident id. What a transaction reads or writes is staged and kept only once it
    commits, so a rolled-back batch leaves nothing behind. Past `limit` series, the least recently
    used incidents go first, but never one the last transaction used: its batch held all of
    their series at once anyway, and a storm's few wide incidents (three of 20,000 pods, used by
    every batch) would otherwise push each other out at every commit and be read back from the
    database by every batch. So the cache holds at most `limit` series or the last batch's,
    whichever is more."""

    def __init__(self, limit: int = 20_000):
        self.limit = limit
        self._entries: dict[int, tuple[tuple, dict[str, SeriesState]]] = {}
        self._size = 0
        self._staged: list[tuple[int, tuple[tuple, dict[str, SeriesState]]]] = []
        self._used: set[int] = set()  # incidents the open transaction filled or staged
        self.hits = 0  # incidents whose series came from here

    @staticmethod
    def version(state: IncidentState, series_count: int) -> tuple:
        """What an incident row must still show for its kept series to be used."""
        return state.alert_count, state.last_alert_at, series_count

    def fill(self, state: IncidentState, series_count: int) -> bool:
        """Gives `state` (an incident row just read) its cached series; False when not cached
        or cached at another version."""
        incident_id = state.id
        assert incident_id is not None  # a row just read has its id
        entry = self._entries.pop(incident_id, None)
        if entry is None:
            return False
        self._size -= len(entry[1])
        if entry[0] != self.version(state, series_count):
            return False
        self._put(incident_id, entry)
        self._used.add(incident_id)
        state.series = dict(entry[1])
        self.hits += 1
        return True

    def peek(self, state: IncidentState, series_count: int) -> bool:
        """`fill` that changes nothing here: neither the order of use nor the count of hits."""
        entry = self._entries.get(state.id) if state.id is not None else None
        if entry is None or entry[0] != self.version(state, series_count):
            return False
        state.series = dict(entry[1])
        return True

    def stage(self, states: Iterable[IncidentState], changed: Iterable[Collection[str]] | None = None) -> None:
        """Keeps `states` (with their ids) once the transaction commits. Their series are stripped
        now, while the server still runs the batch's statements, not after the commit, when the
        next batch waits for them. `changed`: for each state, the series a batch's decisions
        changed or added (the others were read by this run: bare already), so that only those
        are looked at, not every series of a wide incident."""
        pairs = ((state, None) for state in states) if changed is None else zip(states, changed, strict=True)
        self._staged.extend((state.id, (self.version(state, len(state.series)), bare_series(state.series, fps)))
                            for state, fps in pairs if state.id is not None)

    def staged(self) -> dict[int, dict[str, SeriesState]]:
        """The series staged so far, by incident id (each incident's latest), as they will be kept:
        a guess at the next batch's states uses these very objects, which that batch then finds
        here, so comparing the two costs next to nothing."""
        return {incident_id: entry[1] for incident_id, entry in self._staged}

    def commit(self) -> None:
        for incident_id, entry in self._staged:
            old = self._entries.pop(incident_id, None)
            if old is not None:
                self._size -= len(old[1])
            self._put(incident_id, entry)
            self._used.add(incident_id)
        self._staged.clear()
        # Least recently used first: the used ones were put last, so eviction stops at the first.
        while self._size > self.limit:
            oldest = next(iter(self._entries))
            if oldest in self._used:
                break
            self._size -= len(self._entries.pop(oldest)[1])
        self._used.clear()

    def rollback(self) -> None:
        self._staged.clear()
        self._used.clear()

    def _put(self, incident_id: int, entry: tuple[tuple, dict[str, SeriesState]]) -> None:
        self._entries[incident_id] = entry  # the most recently used, last
        self._size += len(entry[1])


def bare_series(series: dict[str, SeriesState], changed: Collection[str] | None = None) -> dict[str, SeriesState]:
    """Series as load_states reads them: without labels, annotations and links. A series this run
    read (from the database or from here) has none already and is never changed in place (a
    decision changes a copy), so it is kept as it is; with `changed` (the series decisions
    changed or added), only those can carry them."""
    if changed is not None:
        bare = dict(series)
        for fp in changed:
            kept = bare.get(fp)
            if kept is not None and not (kept.labels is None and kept.annotations is None and kept.links is None):
                bare[fp] = _bare(kept)
        return bare
    return {fp: s if s.labels is None and s.annotations is None and s.links is None else _bare(s)
            for fp, s in series.items()}


def _bare(series: SeriesState) -> SeriesState:
    bare = series.copy()
    bare.labels = bare.annotations = bare.links = None
    return bare
