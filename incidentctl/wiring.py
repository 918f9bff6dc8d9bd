"""Wiring in one place: settings → engine, clock. The CLI and the server build one Context."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import Engine

from incidentctl.config import Settings
from incidentctl.db.engine import engine_from_settings, ensure_schema


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Context:
    """What a command needs: settings, a lazily built engine, and the clock."""

    settings: Settings
    clock: Callable[[], datetime] = utc_now
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        """The engine, schema checked (the embedded SQLite default upgrades itself)."""
        if self._engine is None:
            engine = engine_from_settings(self.settings)
            ensure_schema(engine)
            self._engine = engine
        return self._engine

    def raw_engine(self) -> Engine:
        """An engine with no schema check, for `db upgrade`/`db status`."""
        return engine_from_settings(self.settings)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
