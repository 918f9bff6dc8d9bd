"""Wiring in one place: settings → engine, clock. The CLI builds one Context per command.

The composition root: it may import every layer below the CLI, and only the CLI imports it
(tests/test_layers.py). The receiver's server builds its own engine (other timeouts and pool).
The engine's schema is checked when first used; the embedded SQLite default upgrades itself.

The database modules (SQLAlchemy, the drivers) are imported where the engine is first built, not
when this module is: every command builds a Context, and `--help`, `--version` and the commands
that never open the database should not pay for loading them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from incidentctl.config import Settings
from incidentctl.durations import utc_now

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from incidentctl.db.lease import Lease


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
            from incidentctl.db.engine import engine_from_settings, ensure_schema

            engine = engine_from_settings(self.settings)
            ensure_schema(engine)
            self._engine = engine
        return self._engine

    def lease(self, *, wait: float | None = None) -> Lease:
        """The applier lease for this worker, its times from the settings (`wait` overrides lease_wait)."""
        return applier_lease(self.engine, self.settings, wait=wait)

    def raw_engine(self) -> Engine:
        """An engine with no schema check, for `db upgrade`/`db status`."""
        from incidentctl.db.engine import engine_from_settings

        return engine_from_settings(self.settings)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def applier_lease(engine: Engine, settings: Settings, *, wait: float | None = None) -> Lease:
    """The applier lease as configured (lease_ttl, lease_wait), on wall time."""
    from incidentctl.db.lease import Lease

    return Lease(engine, ttl=settings.lease_ttl, wait=settings.lease_wait if wait is None else wait)
