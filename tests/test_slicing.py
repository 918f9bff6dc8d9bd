"""clip and chunks, the helpers every layer cuts with (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentctl.slicing import chunks, clip


@pytest.mark.parametrize("text, limit, ellipsis, expected", [
    ("short", 10, True, "short"),  # within the limit: as it is
    ("exactly10!", 10, True, "exactly10!"),  # at the limit: as it is
    ("eleven char", 10, True, "eleven ch…"),  # over: the last character is the mark
    ("eleven char", 10, False, "eleven cha"),  # bare: a request's metadata, only shorter
    (None, 3, True, None),  # no value stays none
    ("", 0, True, ""),
])
def test_clip(text, limit, ellipsis, expected):
    assert clip(text, limit, ellipsis=ellipsis) == expected


@given(st.text(), st.integers(min_value=1, max_value=50), st.booleans())
def test_clip_never_exceeds_the_limit_and_keeps_a_prefix(text, limit, ellipsis):
    cut = clip(text, limit, ellipsis=ellipsis)
    assert len(cut) <= limit
    assert cut == text or text.startswith(cut.removesuffix("…") if ellipsis else cut)


@pytest.mark.parametrize("items, size, expected", [
    ([], 3, []),  # nothing: no chunk
    ([1, 2, 3], 3, [[1, 2, 3]]),  # exactly one
    ([1, 2, 3, 4], 3, [[1, 2, 3], [4]]),  # the last one shorter
    ([1, 2], 5, [[1, 2]]),
])
def test_chunks(items, size, expected):
    assert [list(c) for c in chunks(items, size)] == expected


@given(st.lists(st.integers()), st.integers(min_value=1, max_value=10))
def test_chunks_rejoin_to_the_items(items, size):
    parts = list(chunks(items, size))
    assert [x for part in parts for x in part] == items and all(0 < len(p) <= size for p in parts)
