"""Webhook bodies → alert events: one small parser per payload shape.

Dispatch is on the body's shape (`sniff.label_body`), never on the stored `source` column,
because replayed rows carry `source='replay'`. Times become aware UTC; Go's zero time
(`0001-01-01T00:00:00Z`) means "not set" and becomes None.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import chain
from sys import intern
from typing import Any

from incidentctl.incidents.fingerprint import FINGERPRINT_MAX, alert_fingerprint
from incidentctl.incidents.model import AlertStatus
from incidentctl.ingest.sniff import BodyLabel, Verdict, decode_body

# Grafana legacy states: which become a firing or a resolved event. `pending` and `paused` are
# not alert state changes a person needs (pending is not yet firing; paused is an edit).
_LEGACY_STATES = {"alerting": AlertStatus.FIRING, "no_data": AlertStatus.FIRING, "ok": AlertStatus.RESOLVED}

_FRACTION = re.compile(r"\.(\d+)")


class PayloadError(ValueError):
    """The body is not a webhook payload incidentctl can turn into alert events."""


@dataclass(frozen=True)
class AlertEvent:
    """One alert as one notification reported it. `received_at` is the raw row's arrival."""

    fingerprint: str
    status: str  # an AlertStatus value: the payload's own string (sniff checked it), not converted
    labels: dict[str, str]
    annotations: dict[str, str]
    received_at: datetime
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    links: dict[str, str] = field(default_factory=dict)  # generator, dashboard, panel, silence, image
    source: str = "grafana"
    test: bool = False  # a contact-point / notifier test message, not a real alert

    @property
    def start(self) -> datetime:
        """When this firing episode started: startsAt, else arrival."""
        return self.starts_at if self.starts_at is not None and self.starts_at <= self.received_at else self.received_at

    @property
    def end(self) -> datetime:
        """When the series resolved: endsAt, else arrival."""
        return self.ends_at if self.ends_at is not None else self.received_at

    @property
    def at(self) -> datetime:
        """The event's own time: episode start for firing, end for resolved."""
        return self.start if self.status == AlertStatus.FIRING else self.end


def parse_body(body: bytes, received_at: datetime, user_agent: str | None = None) -> list[AlertEvent]:
    """Alert events of a body, in payload order; raises PayloadError naming what is wrong."""
    doc, label = decode_body(body, user_agent)
    return parse_document(doc, label, received_at)


def parse_document(doc: Any, label: BodyLabel, received_at: datetime) -> list[AlertEvent]:
    """`parse_body` for a body already decoded and labelled (`sniff.decode_body`)."""
    if label.verdict != Verdict.KNOWN:
        raise PayloadError(label.parse_error or "not a known webhook payload")
    if label.source == "grafana-legacy":
        return parse_legacy(doc, received_at)
    return parse_alert_list(doc, received_at, label.source)


def parse_alert_list(doc: dict[str, Any], received_at: datetime, source: str) -> list[AlertEvent]:
    """Grafana unified (`version: 1`) and Alertmanager (`version: 4`): one event per alert."""
    events = []
    for i, alert in enumerate(doc["alerts"]):
        get = alert.get
        # Interned: the same names, values and links recur in every notification of a series,
        # and a batch of replay holds thousands of events (a third less memory per event).
        labels = {intern(k): intern(v) for k, v in alert["labels"].items()}
        annotations = {intern(k): intern(v if type(v) is str else _text(v))
                       for k, v in (get("annotations") or {}).items()}
        try:
            starts_at = parse_go_time(get("startsAt"))
            ends_at = parse_go_time(get("endsAt"))
        except ValueError as exc:
            raise PayloadError(f"alerts[{i}]: {exc}") from None
        status = alert["status"]
        links = {}
        for key, name in _LINKS:
            value = get(name)
            if value and type(value) is str:
                links[key] = intern(value)
        fingerprint = get("fingerprint")
        problem = _unstorable(labels, annotations, links, fingerprint)
        if problem:
            raise PayloadError(f"alerts[{i}]: {problem}")
        # Every field set without __init__, which sets each through object.__setattr__ (frozen):
        # a third of the cost of an event, a million times in a month's replay.
        event = _new_event(AlertEvent)
        event.__dict__.update(
            fingerprint=alert_fingerprint(fingerprint, labels),
            status=status,
            labels=labels,
            annotations=annotations,
            received_at=received_at,
            starts_at=starts_at,
            ends_at=ends_at if status == AlertStatus.RESOLVED else None,
            links=links,
            source=source,
            test=_is_grafana_test(doc, labels, annotations),
        )
        events.append(event)
    return events


_new_event = object.__new__


_LINKS = (("generator", "generatorURL"), ("dashboard", "dashboardURL"), ("panel", "panelURL"),
          ("silence", "silenceURL"), ("image", "imageURL"))


def parse_legacy(doc: dict[str, Any], received_at: datetime) -> list[AlertEvent]:
    """Grafana ≤ 8 legacy alerting: one event per notification, the rule is the series.

    Labels: the rule's tags, `alertname` = ruleName, `rule_id` and `org_id` (so two rules with
    one name stay apart). Events take their times from arrival: the payload has none.
    """
    status = _LEGACY_STATES.get(doc["state"])
    if status is None:
        return []
    tags = doc.get("tags") or {}
    if not isinstance(tags, dict):
        raise PayloadError("`tags` is not a JSON object")
    labels = {str(k): _text(v) for k, v in tags.items()}
    labels["alertname"] = _text(doc.get("ruleName") or doc.get("title") or "")
    for key, name in (("rule_id", "ruleId"), ("org_id", "orgId")):
        if doc.get(name) is not None:
            labels[key] = _text(doc[name])
    annotations = {k: _text(doc[k]) for k in ("title", "message") if doc.get(k)}
    if doc["state"] == "no_data":
        annotations["state"] = "no_data"
    matches = doc.get("evalMatches") or []
    if matches:
        annotations["values"] = ", ".join(f"{m.get('metric')}={m.get('value')}" for m in matches if isinstance(m, dict))
    links = {key: doc[name] for key, name in (("generator", "ruleUrl"), ("image", "imageUrl"))
             if isinstance(doc.get(name), str) and doc[name]}
    test = not doc.get("ruleId") and "test notification" in str(doc.get("title", "")).lower()
    problem = _unstorable(labels, annotations, links, None)
    if problem:
        raise PayloadError(problem)
    return [AlertEvent(
        fingerprint=alert_fingerprint(None, labels),
        status=status,
        labels=labels,
        annotations=annotations,
        received_at=received_at,
        starts_at=received_at if status == AlertStatus.FIRING else None,
        ends_at=received_at if status == AlertStatus.RESOLVED else None,
        links=links,
        source="grafana-legacy",
        test=test,
    )]


def _unstorable(labels: dict[str, str], annotations: dict[str, str], links: dict[str, str],
                fingerprint: str | None) -> str | None:
    """Why an alert's text cannot be hashed or stored, or None. JSON allows a lone UTF-16
    surrogate escape (`"\\ud800"`); UTF-8, and so the fingerprints and both databases, do not. A
    payload fingerprint longer than the column would fail the whole batch's write on MySQL."""
    # All the text at once first: nearly always ASCII, or text that encodes.
    joined = "".join(chain(labels, labels.values(), annotations, annotations.values(), links, links.values()))
    if not joined.isascii() and not _encodes(joined):
        for kind, fields in (("label", labels), ("annotation", annotations), ("link", links)):
            for name, value in fields.items():
                if not (_encodes(name) and _encodes(value)):
                    return f"{kind} {name!r} is not valid Unicode text (a lone surrogate escape)"
    if fingerprint:
        if len(fingerprint) > FINGERPRINT_MAX:
            return f"`fingerprint` is longer than {FINGERPRINT_MAX} characters"
        if not (fingerprint.isascii() or _encodes(fingerprint)):
            return "`fingerprint` is not valid Unicode text (a lone surrogate escape)"
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_grafana_test(doc: dict[str, Any], labels: dict[str, str], annotations: dict[str, str]) -> bool:
    # Grafana's contact-point "Test" button sends alertname=TestAlert, instance=Grafana and
    # summary "Notification test" (grafana/alerting notify/testing.go).
    return labels.get("alertname") == "TestAlert" and labels.get("instance") == "Grafana" and (
        annotations.get("summary") == "Notification test" or doc.get("receiver") == ""
    )


def parse_go_time(value: Any) -> datetime | None:
    """RFC 3339 as Go writes it (offsets, up to nanoseconds) → aware UTC; zero time/empty → None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"time {value!r} is not a string")
    moment = _rfc3339(value) if value[10:11] == "T" and not value.startswith("0001-01-01") else None
    if moment is None:
        text = value.strip()
        if text.startswith("0001-01-01"):
            return None
        text = text.replace("z", "Z")
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        # Python takes at most 6 fractional digits; Go sends up to 9.
        text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"time {value!r} is not RFC 3339") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00
        raise ValueError(f"time {value!r} is out of range") from None


def _rfc3339(value: str) -> datetime | None:
    """The common case, straight through Python 3.11's `fromisoformat` (which takes `Z` and cuts
    9 fractional digits to 6, as the long way does); None for anything it does not take."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
