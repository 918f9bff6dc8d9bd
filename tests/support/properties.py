"""How many examples a property test (Hypothesis) asks for, under the run's profile.

A run without a profile option has Hypothesis's default, every property its full count: what
`make test` (CI) runs. `make quick` loads the "quick" profile (tests/conftest.py), a quarter of the
examples. A test that wants more than the default count asks for `examples(n)`, which the quick
profile cuts in the same proportion.
"""

from __future__ import annotations

from hypothesis import settings


def examples(full: int) -> int:
    """`full` under the default profile; as many fewer as the loaded profile runs (at least 10)."""
    return max(10, full * settings.default.max_examples // settings.get_profile("default").max_examples)
