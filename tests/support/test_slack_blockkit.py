"""Block Kit limits, checked offline as Slack documents them."""

from __future__ import annotations

import pytest

from tests.support.slack_blockkit import BlocksFormatError, problems


def text(n: int, kind: str = "mrkdwn") -> dict:
    return {"type": kind, "text": "x" * n}


def button(action_id: str = "ack", label: str = "Ack", value: str = "1", **extra) -> dict:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": label}, "value": value,
            **extra}


def option(value: str, label: str = "opt") -> dict:
    return {"text": {"type": "plain_text", "text": label}, "value": value}


# Each case builds blocks with a size n; at the limit they pass, one past it they are refused.
LIMIT_CASES = {
    "blocks per message": (50, lambda n: [{"type": "divider"}] * n),
    "section text": (3000, lambda n: [{"type": "section", "text": text(n)}]),
    "section fields": (10, lambda n: [{"type": "section", "fields": [text(1)] * n}]),
    "section field text": (2000, lambda n: [{"type": "section", "fields": [text(n)]}]),
    "header text": (150, lambda n: [{"type": "header", "text": text(n, "plain_text")}]),
    "context elements": (10, lambda n: [{"type": "context", "elements": [text(1)] * n}]),
    "actions elements": (25, lambda n: [{"type": "actions", "elements": [button(f"a{i}") for i in range(n)]}]),
    "button text": (75, lambda n: [{"type": "actions", "elements": [button(label="x" * n)]}]),
    "button action_id": (255, lambda n: [{"type": "actions", "elements": [button("x" * n)]}]),
    "button value": (2000, lambda n: [{"type": "actions", "elements": [button(value="x" * n)]}]),
    "button url": (3000, lambda n: [{"type": "actions", "elements": [button(url="x" * n)]}]),
    "overflow options": (5, lambda n: [{"type": "actions", "elements": [
        {"type": "overflow", "action_id": "more", "options": [option(str(i)) for i in range(n)]}]}]),
    "option value": (150, lambda n: [{"type": "section", "text": text(1), "accessory":
        {"type": "overflow", "action_id": "more", "options": [option("x" * n)]}}]),
    "block_id": (255, lambda n: [{"type": "divider", "block_id": "x" * n}]),
    "markdown block": (12000, lambda n: [{"type": "markdown", "text": "x" * n}]),
}


@pytest.mark.parametrize("name", LIMIT_CASES)
def test_block_kit_limit_is_exact(name):
    limit, build = LIMIT_CASES[name]
    assert problems(build(limit)) == []
    assert problems(build(limit + 1)), f"{name}: {limit + 1} passed"


@pytest.mark.parametrize("blocks, reason", [
    ([{"type": "header", "text": text(5, "mrkdwn")}], "blocks[0].text: must be a text object of type plain_text"),
    ([{"type": "section"}], "blocks[0]: a section needs text or fields"),
    ([{"type": "section", "text": text(0)}], "blocks[0].text.text: length 0 not in 1..3000"),
    ([{"type": "divider", "block_id": "a"}, {"type": "divider", "block_id": "a"}], "blocks[1].block_id: 'a' repeated"),
    ([{"type": "actions", "elements": [button("a"), button("a")]}], "blocks[0].elements[1].action_id: 'a' repeated"),
    ([{"type": "actions", "elements": [button(style="green")]}], "'green' is not primary or danger"),
    ([{"type": "actions", "elements": []}], "blocks[0].elements: 0 elements not in 1..25"),
    ([{"type": "sektion", "text": text(1)}], "unknown block type 'sektion'"),
])
def test_block_kit_reasons_say_where(blocks, reason):
    assert any(p.startswith(reason) or reason in p for p in problems(blocks)), problems(blocks)


@pytest.mark.parametrize("blocks", ["[]", {"type": "divider"}, [{"text": "no type"}], [["divider"]], None])
def test_blocks_that_are_not_an_array_of_typed_objects(blocks):
    with pytest.raises(BlocksFormatError):
        problems(blocks)
