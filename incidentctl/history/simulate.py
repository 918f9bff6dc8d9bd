"""`incidentctl simulate`: what history would have looked like under other grouping rules.

Reads the raw archive (never writes), parses each body once and runs its alert events through
the grouping decision (`decide.decide`, the same pure function `process` applies) twice, in
memory: under the current rules and under the proposed ones. Memory holds one incident state
per incident fingerprint (and the outbox changes of the incidents still open), not the history.
What each rule set's changes would have announced (notify rules: thresholds, keep-firing,
silences) is folded in by `announce.Ledger` as each incident ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import Engine, select

from incidentctl.db.engine import database_errors
from incidentctl.db.schema import silences as silences_table
from incidentctl.history.announce import Key, Ledger, NotifyRules, delays
from incidentctl.history.export import iter_rows
from incidentctl.history.stats import days_between
from incidentctl.incidents.decide import decide_row, undo_changes
from incidentctl.incidents.model import Action, Decision, IncidentState, Rules
from incidentctl.incidents.parsing import AlertEvent, parse_body
from incidentctl.notify.silences import silences_active_between


@dataclass
class RuleOutcome:
    """What one set of rules makes of the history."""

    rules: Rules
    incidents: int = 0  # opened
    reopens: int = 0  # flaps
    auto_resolved: int = 0
    notifications: int = 0  # outbox changes (opened, reopened, escalated, resolved) a digest would carry
    per_day: Counter = field(default_factory=Counter)  # incidents opened per UTC day
    alerts_by_fingerprint: Counter = field(default_factory=Counter)
    incidents_by_fingerprint: Counter = field(default_factory=Counter)
    titles: dict[str, str] = field(default_factory=dict)
    ledger: Ledger = field(default_factory=lambda: Ledger(NotifyRules()))  # what Slack would have heard

    def record(self, fingerprint: str, decision: Decision, event: AlertEvent | None = None) -> None:
        """Counts one decision about an alert of incident `fingerprint` (`event`: the alert)."""
        if event is not None:
            self.ledger.record(fingerprint, event, decision)
        self.alerts_by_fingerprint[fingerprint] += 1
        self.notifications += len(decision.messages)
        if decision.action == Action.OPEN:
            assert decision.state is not None  # an opening has its incident
            self.incidents += 1
            self.incidents_by_fingerprint[fingerprint] += 1
            self.per_day[decision.state.opened_at.date()] += 1
        elif decision.action == Action.REOPEN:
            self.reopens += 1
        elif decision.action == Action.AUTO_RESOLVE:
            self.auto_resolved += 1
        if decision.state is not None:
            self.titles[fingerprint] = decision.state.title

    def top(self, n: int) -> list[dict]:
        """Incident fingerprints with the most alerts."""
        ranked = sorted(self.alerts_by_fingerprint.items(), key=lambda kv: (-kv[1], kv[0]))
        return [{"fingerprint": fp, "title": self.titles.get(fp) or f"({fp[:12]}, no incident)", "alerts": alerts,
                 "incidents": self.incidents_by_fingerprint[fp]} for fp, alerts in ranked[:n]]


@dataclass
class Simulation:
    since: datetime | None
    until: datetime | None
    rows: int = 0
    alerts: int = 0
    unparsable: int = 0  # raw rows that are not a known payload (skipped, as `process` skips them)
    outcomes: list[RuleOutcome] = field(default_factory=list)  # current, proposed


def simulate(engine: Engine, rules: Sequence[Rules], *, since: datetime | None = None,
             until: datetime | None = None, progress: Callable[[int], None] | None = None,
             notify: Sequence[NotifyRules] | None = None, alertnames: Collection[str] | None = None,
             rows: Iterable[Mapping] | None = None, acted_on: Collection[Key] = ()) -> Simulation:
    """Runs the raw rows received in [since, until), in id order (the order `process` takes),
    through the grouping under each set of `rules`, and what their changes would have announced
    under the matching `notify` rules (default: one route, no threshold). `alertnames` keeps the
    alerts of those rules only; `rows` replaces the archive's rows (in id order) by a subset;
    `acted_on` are the incidents people acted on, whose first announcements are compared. Reads only."""
    notify = list(notify) if notify is not None else [NotifyRules() for _ in rules]
    silences = _silences(engine, since, until)
    ledgers = [Ledger(n, silences=silences, acted_on=set(acted_on)) for n in notify]
    outcomes = [RuleOutcome(r, ledger=ledger) for r, ledger in zip(rules, ledgers, strict=True)]
    result = Simulation(since, until, outcomes=outcomes)
    states: list[dict[str, IncidentState]] = [{} for _ in rules]
    last_seen: datetime | None = None
    for row in (iter_rows(engine, since, until) if rows is None else rows):
        result.rows += 1
        if progress is not None and result.rows % 1000 == 0:
            progress(result.rows)
        # Every state held here was made by these decisions: theirs to change in place. A row that
        # fails under one set of rules is dropped under all, its changes under the others undone.
        undo: list = []
        try:  # as `process`: a row that cannot be parsed or decided counts as unparsable
            events = parse_body(row["body"], row["received_at"], row["user_agent"])
            if alertnames is not None:
                events = [e for e in events if e.labels.get("alertname", "") in alertnames]
            decided = [decide_row(state, events, group_by=outcome.rules.group_by,
                                  reopen_window=outcome.rules.reopen_window, owned=state, undo=undo)
                       for outcome, state in zip(result.outcomes, states, strict=True)]
        except Exception:
            undo_changes(undo)
            result.unparsable += 1
            continue
        result.alerts += len(events)
        last_seen = row["received_at"]
        for outcome, state, row_decisions in zip(result.outcomes, states, decided, strict=True):
            for event, fp, decision in row_decisions:
                if decision.changed and decision.state is not None:
                    state[fp] = decision.state
                outcome.record(fp, decision, event)
    for outcome in result.outcomes:
        outcome.ledger.finish(until or last_seen or datetime.now(timezone.utc))
    if progress is not None:
        progress(result.rows)
    return result


def _silences(engine: Engine, since: datetime | None, until: datetime | None) -> list[dict]:
    """The stored silences that could apply to changes in [since, until)."""
    with database_errors(engine), engine.execution_options(sqlite_begin="DEFERRED").connect() as conn:
        if since is not None and until is not None:
            return silences_active_between(conn, since, until)
        return [dict(r._mapping) for r in conn.execute(select(silences_table).order_by(silences_table.c.id))]


def days(simulation: Simulation) -> list[date]:
    """The UTC days of the window (incidents opened at an alert's earlier startsAt fall outside)."""
    if simulation.since is None or simulation.until is None:
        seen = [d for o in simulation.outcomes for d in o.per_day]
        if not seen:
            return []
        first, last = min(seen), max(seen)
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return days_between(simulation.since, simulation.until)


def simulation_dict(simulation: Simulation, top: int = 10) -> dict:
    """JSON-ready: the figures of each rule set side by side."""
    span = days(simulation)
    return {
        "since": simulation.since, "until": simulation.until, "rows": simulation.rows,
        "alerts": simulation.alerts, "unparsable_rows": simulation.unparsable,
        "rules": [{
            "group_by": list(o.rules.group_by), "reopen_window_s": o.rules.reopen_window.total_seconds(),
            "incidents": o.incidents, "reopens": o.reopens, "auto_resolved": o.auto_resolved,
            "notifications": o.notifications,
            "incidents_per_day": [{"day": d.isoformat(), "incidents": o.per_day.get(d, 0)} for d in span],
            "top_fingerprints": o.top(top),
            "notify": o.ledger.rules.as_dict(),
            "announced": o.ledger.total.as_dict(),
            "by_alertname": {name: dict(sorted(counts.items()))
                             for name, counts in sorted(o.ledger.by_alertname.items())},
        } for o in simulation.outcomes],
        "acted_on": acted_on_delays(simulation),
    }


def acted_on_delays(simulation: Simulation) -> dict | None:
    """The incidents people acted on: how much later the proposed rules (the last rule set)
    would have first announced them than the current ones (the first); None with one rule set."""
    if len(simulation.outcomes) < 2:
        return None
    return delays(simulation.outcomes[0].ledger.first_pages, simulation.outcomes[-1].ledger.first_pages)
