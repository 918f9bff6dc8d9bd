"""Cutting to size: text to a column's or a message's limit, a sequence into chunks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar, overload

T = TypeVar("T")


@overload
def clip(text: str, limit: int, *, ellipsis: bool = True) -> str: ...
@overload
def clip(text: None, limit: int, *, ellipsis: bool = True) -> None: ...


def clip(text: str | None, limit: int, *, ellipsis: bool = True) -> str | None:
    """`text` cut to at most `limit` characters, the last one `…` when cut (without `ellipsis`,
    cut bare: a request's metadata is stored as it came, only shorter). None stays None."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…" if ellipsis else text[:limit]


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of `size` (the last one shorter), e.g. for IN lists."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
