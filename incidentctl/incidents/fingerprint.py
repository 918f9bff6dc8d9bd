"""Fingerprints: which alert series an alert belongs to, and which incident it groups into.

The alert fingerprint is the payload's own, else Alertmanager's `LabelSet.Fingerprint` (FNV-1a),
so both agree; the incident fingerprint hashes the `group_by` values. Definitions with an
example: docs/SEMANTICS.md, "Fingerprints".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from functools import lru_cache

FNV64_OFFSET = 0xCBF29CE484222325
FNV64_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1
_SEP = 0xFF  # Alertmanager's separator byte; it never occurs in valid UTF-8
FINGERPRINT_MAX = 64  # the width of the alert_fingerprint columns


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's `LabelSet.Fingerprint`: 64-bit FNV-1a over the labels sorted by name,
    each as name, 0xFF, value, 0xFF; 16 lowercase hex digits."""
    h = FNV64_OFFSET
    for name in sorted(labels):
        for chunk in (name.encode("utf-8"), labels[name].encode("utf-8")):
            for byte in chunk:
                h = ((h ^ byte) * FNV64_PRIME) & _MASK64
            h = ((h ^ _SEP) * FNV64_PRIME) & _MASK64
    return f"{h:016x}"


def alert_fingerprint(payload_fingerprint: str | None, labels: Mapping[str, str]) -> str:
    """The payload's fingerprint verbatim (Grafana's cannot be recomputed: it covers hidden
    labels); otherwise Alertmanager's label fingerprint, so both tools agree."""
    if payload_fingerprint:
        return payload_fingerprint
    return label_fingerprint(labels)


def group_values(group_by: Sequence[str], labels: Mapping[str, str], alert_fp: str) -> dict[str, str]:
    """The group_by label values of an alert; a missing label is the empty string and the
    pseudo-label `fingerprint` is the alert fingerprint."""
    return dict(zip(group_by, _values(group_by, labels, alert_fp), strict=True))


def _values(group_by: Sequence[str], labels: Mapping[str, str], alert_fp: str) -> tuple[str, ...]:
    get = labels.get
    return tuple([alert_fp if name == "fingerprint" else get(name, "") for name in group_by])


def incident_fingerprint(group_by: Sequence[str], labels: Mapping[str, str], alert_fp: str) -> str:
    """Stable hash of the group_by values: sha256 over `name=value` pairs joined by 0xFF, in
    group_by order, cut to 32 hex digits. The same labels always give the same incident key."""
    return _group_hash(tuple(group_by), _values(group_by, labels, alert_fp))


# The groups alerting now repeat batch after batch; an alert storm's new groups come once each.
# Bounded low so a long run (a storm, `incidentctl run` for weeks) keeps flat memory.
@lru_cache(maxsize=4096)
def _group_hash(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    data = b"\xff".join(f"{name}={value}".encode() for name, value in zip(names, values, strict=True))
    return hashlib.sha256(data).hexdigest()[:32]
