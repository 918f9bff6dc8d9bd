"""Where an incident is: its values of the topology labels (`related_labels`, widest first, by
default cluster, namespace, service). `related` and the digest's bursts compare places. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import RowMapping

# Labels an incident row carries as columns; any other topology label is read from its labels.
COLUMNS = ("alertname", "cluster", "namespace", "service")

Place = tuple[tuple[str, str], ...]  # (label, value) in topology order, empty values left out


def place_of(incident: Mapping[str, Any] | RowMapping, labels: Sequence[str]) -> Place:
    """The incident's non-empty values of `labels`: its column (cluster, namespace, service) when
    it has one, else its common labels (`common_labels`, or `labels` as the digest calls them)."""
    common = incident.get("common_labels") or incident.get("labels") or {}
    found = []
    for label in labels:
        value = incident.get(label) if label in COLUMNS else None
        value = value or common.get(label)
        if value:
            found.append((label, str(value)))
    return tuple(found)


def shared(a: Place, b: Place) -> Place:
    """The place both are in: the topology values they share from the widest down, up to the
    first that differs (two services called `api` in different namespaces share only the
    cluster)."""
    common = []
    for mine, theirs in zip(a, b, strict=False):  # places may differ in depth
        if mine != theirs:
            break
        common.append(mine)
    return tuple(common)


def same_place(a: Place, b: Place) -> bool:
    """Whether two incidents are in the same place: they share at least two topology values (the
    same namespace of a cluster), or all the values one of them has (one covers the other: a
    node-wide alert in cluster prod covers every incident in prod). Sharing only the cluster of
    two namespaced incidents is not enough: a cluster holds too much that is unrelated."""
    common = shared(a, b)
    if not common:
        return False
    return len(common) >= 2 or len(common) == len(a) or len(common) == len(b)


def scope_text(place: Place) -> str:
    """`prod/payments`, or `(no topology labels)`."""
    return "/".join(value for _, value in place) or "(no topology labels)"


def widest(place: Place, labels: Sequence[str]) -> str:
    """The value of the widest topology label (the cluster by default), '' when it has none."""
    return dict(place).get(labels[0], "") if labels else ""
