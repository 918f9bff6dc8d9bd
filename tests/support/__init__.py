"""Test helpers: real servers and fakes, factories, synthetic histories, shared constants."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
FIXTURES = ROOT / "tests" / "fixtures"  # real webhook bodies (tests/fixtures/README.md)
