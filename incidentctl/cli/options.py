"""Option groups: options that several commands share, each declared once, as a field of a frozen
dataclass (its type, flag, help and default), and taken by a command as one parameter annotated
with that class.

typer reads a command's options from its signature and has no groups: `grouped` puts a group's
options into the signature where the group's parameter stands (so --help lists them in that
place, as if written there) and, when the command runs, hands it the group built from them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from incidentctl.cli.app import option_value, time_value
from incidentctl.incidents.listing import IncidentFilter, parse_label_filter
from incidentctl.incidents.model import SEVERITY_NAMES, Severity, normalize_severity

R = TypeVar("R")

SEVERITY_CHOICES = ", ".join(reversed(Severity))  # most severe first


def grouped(command: Callable[..., R]) -> Callable[..., R]:
    """`command` with each parameter annotated with an option group (a dataclass like those
    below) replaced by the group's options, in its place; the command is called with the group
    built from their values. Put it under typer's `@app.command`."""
    signature = inspect.signature(command, eval_str=True)
    groups: dict[str, Any] = {}
    parameters: list[inspect.Parameter] = []
    for p in signature.parameters.values():
        if isinstance(p.annotation, type) and is_dataclass(p.annotation):
            groups[p.name] = p.annotation
            parameters += _options(p.annotation)
        else:
            parameters.append(p)

    @functools.wraps(command)
    def run(**values: Any) -> R:
        for name, group in groups.items():
            values[name] = group(**{f.name: values.pop(f.name) for f in fields(group)})
        return command(**values)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return run


def _options(group: type) -> list[inspect.Parameter]:
    hints = get_type_hints(group, include_extras=True)
    return [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=hints[f.name],
                              default=f.default if f.default_factory is MISSING else f.default_factory())
            for f in fields(group)]


@dataclass(frozen=True)
class Window:
    """The window of `report` and `noise`: incidents opened in [--since, --until)."""

    since: Annotated[str, typer.Option("--since", help="Start of the window: a duration ago (30d, 12h) or an "
                                       "ISO 8601 time. Incidents are selected by when they opened.")] = "30d"
    until: Annotated[str | None, typer.Option("--until", help="End of the window.", show_default="now")] = None

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The window's start and end (`now` when --until is not given); an end not after the start
        is a usage error."""
        start = time_value("--since", self.since, now)
        end = time_value("--until", self.until, now) or now
        if end <= start:
            raise typer.BadParameter("must be after --since", param_hint="'--until'")
        return start, end


@dataclass(frozen=True)
class IncidentFilters:
    """The filters `list` and `watch` share."""

    severity: Annotated[str | None, typer.Option("--severity", help=f"One of {SEVERITY_CHOICES}.")] = None
    cluster: Annotated[str | None, typer.Option("--cluster", help="Only this cluster.")] = None
    namespace: Annotated[str | None, typer.Option("--namespace", help="Only this namespace.")] = None
    service: Annotated[str | None, typer.Option("--service", help="Only this service.")] = None
    alertname: Annotated[str | None, typer.Option("--alertname", help="Only this alertname.")] = None
    label: Annotated[list[str], typer.Option(
        "--label", help="name=value every series of the incident carries; repeatable.")] = field(default_factory=list)
    series_label: Annotated[list[str], typer.Option(
        "--series-label", help="name=value some series of the incident carries (e.g. pod=api-7f9c); repeatable, "
        "each must match.")] = field(default_factory=list)
    since: Annotated[str | None, typer.Option("--since", help="Opened since: 2h, 7d or an ISO 8601 time.")] = None

    def incident_filter(self, *, status: str | None, limit: int, since: datetime | None = None) -> IncidentFilter:
        """These filters (`since` as of the caller's clock: --since is read by the caller) as an
        IncidentFilter; a bad severity or label pair is a usage error naming its option."""
        severity = self.severity
        if severity is not None:
            if severity.strip().lower() not in SEVERITY_NAMES:
                raise typer.BadParameter(f"{severity!r} is not one of {SEVERITY_CHOICES}", param_hint="'--severity'")
            severity = normalize_severity(severity)  # `high` → error, as the processor reads labels
        labels = tuple(option_value("--label", parse_label_filter, text) for text in self.label)
        carried = tuple(option_value("--series-label", lambda t: parse_label_filter(t, "--series-label"), text)
                        for text in self.series_label)
        return IncidentFilter(status=status, severity=severity, cluster=self.cluster, namespace=self.namespace,
                              service=self.service, alertname=self.alertname, labels=labels, series_labels=carried,
                              since=since, limit=limit)
