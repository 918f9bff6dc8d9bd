"""Counts: what a run did, as named counters, summed and shown the same way at every layer."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Self


@dataclass
class Counts:
    """Base of a dataclass whose fields declared `int` are its counters; other fields (a time,
    a list) ride along and are neither added nor listed."""

    def counters(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if f.type in (int, "int"))

    def add(self, other: Self) -> None:
        """Adds `other`'s counters to these."""
        for name in self.counters():
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        """{counter: value}, in the order of the fields."""
        return {name: getattr(self, name) for name in self.counters()}
