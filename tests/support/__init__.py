"""Test helpers: real servers and fakes, factories, synthetic histories, shared constants."""

import gc
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
FIXTURES = ROOT / "tests" / "fixtures"  # real webhook bodies (tests/fixtures/README.md)
# The tests' one fixed moment: times are offsets from it (bodies written by hand say 2026-01-05T09:00:00Z).
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
# The cyclic collector's thresholds as a command starts with them: read on import, before the suite
# sets its own (tests/conftest.py).
INTERPRETER_GC_THRESHOLDS = gc.get_threshold()
