"""Labels a webhook body for the raw archive: which sender, how many alerts, top status.

The sender (grafana, grafana-legacy, alertmanager, unknown) is told by the body's shape, then
its `version` field, then the user agent. Pure.

The receiver parses no further than this. A body that is not a known payload is still stored;
the label says why (parse_error) so `process` skips it and people can find it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from incidentctl.db.schema import ERROR_TEXT_MAX
from incidentctl.ingest import jsondoc
from incidentctl.slicing import clip


class Verdict:
    """How well a body parsed: a known payload, a JSON object of unknown shape, or not JSON at all."""

    KNOWN = "known"
    UNKNOWN_SHAPE = "unknown-shape"
    NOT_JSON = "not-json"


@dataclass(frozen=True)
class BodyLabel:
    source: str
    verdict: str
    alert_count: int | None = None
    status: str | None = None
    parse_error: str | None = None


def label_body(body: bytes, user_agent: str | None = None) -> BodyLabel:
    """Classifies a body by its shape (and the user agent where the shape is ambiguous)."""
    return decode_body(body, user_agent)[1]


def decode_body(body: bytes, user_agent: str | None = None) -> tuple[Any, BodyLabel]:
    """`label_body`, also returning the decoded document (None when the body is not JSON), so a
    caller that goes on to parse the body decodes it once."""
    if not body.strip():
        return None, BodyLabel("unknown", Verdict.NOT_JSON, parse_error="empty body")
    try:
        doc = jsondoc.loads(body)
    except RecursionError:
        return None, BodyLabel("unknown", Verdict.NOT_JSON, parse_error="JSON nested too deeply")
    except UnicodeDecodeError as exc:
        return None, BodyLabel("unknown", Verdict.NOT_JSON,
                               parse_error=clip(f"body is not UTF-8: {exc}", ERROR_TEXT_MAX))
    except ValueError as exc:
        return None, BodyLabel("unknown", Verdict.NOT_JSON, parse_error=clip(f"invalid JSON: {exc}", ERROR_TEXT_MAX))
    return doc, label_document(doc, user_agent)


def label_document(doc: Any, user_agent: str | None = None) -> BodyLabel:
    """`label_body` for a body already decoded from JSON (the processor decodes it once)."""
    if not isinstance(doc, dict):
        return BodyLabel("unknown", Verdict.NOT_JSON, parse_error=f"JSON {json_kind(doc)} is not a webhook payload")
    if "alerts" in doc:
        return _label_alert_list(doc, user_agent)
    if "ruleName" in doc or "evalMatches" in doc or "ruleId" in doc:
        return _label_legacy(doc)
    return BodyLabel("unknown", Verdict.UNKNOWN_SHAPE,
                     parse_error="JSON object without `alerts` or legacy rule fields (custom template?)")


def _label_alert_list(doc: dict[str, Any], user_agent: str | None) -> BodyLabel:
    source = _alert_list_source(doc, user_agent)
    alerts = doc["alerts"]
    if not isinstance(alerts, list):
        return BodyLabel(source, Verdict.UNKNOWN_SHAPE,
                         parse_error=f"`alerts` is a JSON {json_kind(alerts)}, not an array")
    for i, alert in enumerate(alerts):
        problem = _alert_problem(alert)
        if problem:
            return BodyLabel(source, Verdict.UNKNOWN_SHAPE, alert_count=len(alerts),
                             parse_error=f"alerts[{i}]: {problem}")
    statuses = {a.get("status") for a in alerts}
    top = doc.get("status")
    if not isinstance(top, str) or top not in ("firing", "resolved"):
        top = "firing" if "firing" in statuses else ("resolved" if alerts else None)
    return BodyLabel(source, Verdict.KNOWN, alert_count=len(alerts), status=top)


def _alert_list_source(doc: dict[str, Any], user_agent: str | None) -> str:
    version = doc.get("version")
    if version == "4":
        return "alertmanager"
    if version == "1":
        return "grafana"
    agent = (user_agent or "").lower()
    if "alertmanager" in agent:
        return "alertmanager"
    if "grafana" in agent or "orgId" in doc or "state" in doc:
        return "grafana"
    return "alertmanager"  # the Alertmanager format is what other senders imitate


def _alert_problem(alert: Any) -> str | None:
    if not isinstance(alert, dict):
        return f"expected an object, got a JSON {json_kind(alert)}"
    labels = alert.get("labels")
    if not isinstance(labels, dict):
        return "`labels` missing or not an object"
    for name, value in labels.items():
        if not isinstance(value, str):
            return f"label {name!r} is a JSON {json_kind(value)}, not a string"
    if alert.get("status") not in ("firing", "resolved"):
        return f"`status` is {alert.get('status')!r}, expected 'firing' or 'resolved'"
    for key in ("annotations",):
        if key in alert and alert[key] is not None and not isinstance(alert[key], dict):
            return f"`{key}` is a JSON {json_kind(alert[key])}, not an object"
    for key in ("startsAt", "endsAt", "fingerprint"):
        if key in alert and alert[key] is not None and not isinstance(alert[key], str):
            return f"`{key}` is a JSON {json_kind(alert[key])}, not a string"
    return None


def _label_legacy(doc: dict[str, Any]) -> BodyLabel:
    state = doc.get("state")
    if not isinstance(state, str):
        return BodyLabel("grafana-legacy", Verdict.UNKNOWN_SHAPE, parse_error="legacy payload without a `state` string")
    matches = doc.get("evalMatches")
    if matches is not None and not isinstance(matches, list):
        return BodyLabel("grafana-legacy", Verdict.UNKNOWN_SHAPE, parse_error="`evalMatches` is not an array")
    status = {"ok": "resolved", "alerting": "firing"}.get(state, state[:16])
    return BodyLabel("grafana-legacy", Verdict.KNOWN, alert_count=1, status=status)


def json_kind(value: Any) -> str:
    """A decoded JSON value's type as JSON names it: object, array, string, number, boolean, null."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
