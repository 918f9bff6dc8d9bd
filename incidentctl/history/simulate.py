"""`incidentctl simulate`: what history would have looked like under other grouping rules.

Reads the raw archive (never writes), parses each body once and runs its alert events through
the grouping decision (`decide.decide`, the same pure function `process` applies) twice, in
memory: under the current rules and under the proposed ones. Memory holds one incident state
per incident fingerprint, not the history.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable, Sequence

from sqlalchemy import Engine

from incidentctl.history.export import iter_rows
from incidentctl.incidents.decide import decide_row
from incidentctl.incidents.model import Action, Decision, IncidentState, Rules
from incidentctl.incidents.parsing import parse_body
from incidentctl.history.stats import days_between


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

    def record(self, fingerprint: str, decision: Decision) -> None:
        """Counts one decision about an alert of incident `fingerprint`."""
        self.alerts_by_fingerprint[fingerprint] += 1
        self.notifications += len(decision.messages)
        if decision.action == Action.OPEN:
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
             until: datetime | None = None, progress: Callable[[int], None] | None = None) -> Simulation:
    """Runs the raw rows received in [since, until), in id order (the order `process` takes),
    through the grouping under each set of `rules`. Reads only."""
    result = Simulation(since, until, outcomes=[RuleOutcome(r) for r in rules])
    states: list[dict[str, IncidentState]] = [{} for _ in rules]
    for row in iter_rows(engine, since, until):
        result.rows += 1
        if progress is not None and result.rows % 1000 == 0:
            progress(result.rows)
        try:  # as `process`: a row that cannot be parsed or decided counts as unparsable
            events = parse_body(row["body"], row["received_at"], row["user_agent"])
            decided = [decide_row(state, events, group_by=outcome.rules.group_by,
                                  reopen_window=outcome.rules.reopen_window)
                       for outcome, state in zip(result.outcomes, states)]
        except Exception:
            result.unparsable += 1
            continue
        result.alerts += len(events)
        for outcome, state, row_decisions in zip(result.outcomes, states, decided):
            for _, fp, decision in row_decisions:
                if decision.changed and decision.state is not None:
                    state[fp] = decision.state
                outcome.record(fp, decision)
    if progress is not None:
        progress(result.rows)
    return result


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
        } for o in simulation.outcomes],
    }
