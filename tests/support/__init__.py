"""Test helpers: real servers and fakes, factories, synthetic histories, shared constants."""

from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
FIXTURES = ROOT / "tests" / "fixtures"  # real webhook bodies (tests/fixtures/README.md)
# The tests' one fixed moment: times are offsets from it (bodies written by hand say 2026-01-05T09:00:00Z).
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
