"""Block Kit limits for messages, checked offline: `problems(blocks)` lists what Slack would refuse.

Numbers from /work/shared/SLACK.md §2 and docs.slack.dev/reference/block-kit (blocks, section,
header, context, actions, button, overflow menu) and slack_sdk's models (ActionsBlock 25
elements, Option text 75 / value 150, markdown block 12,000). Slack answers a violation with
`invalid_blocks`; something that is not a JSON array of objects is `invalid_blocks_format`.
Pure functions; the fake Web API (tests/support/slack_web_fake.py) uses them, and so can any test that
builds a message.
"""

from __future__ import annotations

MAX_BLOCKS = 50
MAX_BLOCK_ID = 255
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_MARKDOWN_TEXT = 12000
MAX_ACTION_ID = 255
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_URL = 3000
MAX_OVERFLOW_OPTIONS = 5
MAX_SELECT_OPTIONS = 100
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_IMAGE_ALT = 2000
# Top-level `text`: Slack advises ≤ 4,000 characters and refuses or truncates past 40,000.
RECOMMENDED_TEXT = 4000
MAX_TEXT = 40000

BLOCK_TYPES = frozenset({
    "section", "header", "context", "actions", "divider", "image", "markdown", "rich_text",
    "file", "video", "input", "table", "context_actions",
})
BUTTON_STYLES = frozenset({"primary", "danger"})


class BlocksFormatError(ValueError):
    """`blocks` is not a JSON array of objects (Slack: invalid_blocks_format)."""


def problems(blocks) -> list[str]:
    """What is wrong with a message's `blocks`, one line each (empty when Slack would take them).

    Raises BlocksFormatError when `blocks` is not a list of objects with a `type`."""
    if not isinstance(blocks, list) or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks):
        raise BlocksFormatError("blocks must be a JSON array of objects, each with a type")
    found: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        found.append(f"blocks: {len(blocks)} blocks > {MAX_BLOCKS}")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not 1 <= len(block_id) <= MAX_BLOCK_ID:
                found.append(f"{where}.block_id: length {_len(block_id)} not in 1..{MAX_BLOCK_ID}")
            elif block_id in seen_ids:
                found.append(f"{where}.block_id: {block_id!r} repeated in the message")
            else:
                seen_ids.add(block_id)
        found += _block(where, block)
    return found


def _block(where: str, block: dict) -> list[str]:
    kind = block["type"]
    if kind not in BLOCK_TYPES:
        return [f"{where}.type: unknown block type {kind!r}"]
    if kind == "section":
        return _section(where, block)
    if kind == "header":
        return _text(f"{where}.text", block.get("text"), MAX_HEADER_TEXT, plain_only=True)
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
            return [f"{where}.elements: {_len(elements)} elements not in 1..{MAX_CONTEXT_ELEMENTS}"]
        found = []
        for j, element in enumerate(elements):
            if isinstance(element, dict) and element.get("type") == "image":
                found += _image(f"{where}.elements[{j}]", element)
            else:
                found += _text(f"{where}.elements[{j}]", element, MAX_SECTION_TEXT)
        return found
    if kind == "actions":
        return _actions(where, block)
    if kind == "markdown":
        return _limit(f"{where}.text", block.get("text"), MAX_MARKDOWN_TEXT)
    if kind == "image":
        return _image(where, block)
    return []


def _section(where: str, block: dict) -> list[str]:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        return [f"{where}: a section needs text or fields"]
    found = [] if text is None else _text(f"{where}.text", text, MAX_SECTION_TEXT)
    if fields is not None:
        if not isinstance(fields, list) or not 1 <= len(fields) <= MAX_SECTION_FIELDS:
            found.append(f"{where}.fields: {_len(fields)} fields not in 1..{MAX_SECTION_FIELDS}")
        else:
            for j, field in enumerate(fields):
                found += _text(f"{where}.fields[{j}]", field, MAX_FIELD_TEXT)
    if block.get("accessory") is not None:
        found += _element(f"{where}.accessory", block["accessory"])
    return found


def _actions(where: str, block: dict) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTIONS_ELEMENTS:
        return [f"{where}.elements: {_len(elements)} elements not in 1..{MAX_ACTIONS_ELEMENTS}"]
    found: list[str] = []
    action_ids: set[str] = set()
    for j, element in enumerate(elements):
        found += _element(f"{where}.elements[{j}]", element)
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if action_id is not None and action_id in action_ids:
            found.append(f"{where}.elements[{j}].action_id: {action_id!r} repeated in the block")
        action_ids.add(action_id)
    return found


def _element(where: str, element) -> list[str]:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        return [f"{where}: an element must be an object with a type"]
    found: list[str] = []
    if "action_id" in element:
        found += _limit(f"{where}.action_id", element["action_id"], MAX_ACTION_ID)
    kind = element["type"]
    if kind == "button":
        found += _text(f"{where}.text", element.get("text"), MAX_BUTTON_TEXT, plain_only=True)
        if "value" in element:
            found += _limit(f"{where}.value", element["value"], MAX_BUTTON_VALUE)
        if "url" in element:
            found += _limit(f"{where}.url", element["url"], MAX_URL)
        if "accessibility_label" in element:
            found += _limit(f"{where}.accessibility_label", element["accessibility_label"], MAX_BUTTON_TEXT)
        if "style" in element and element["style"] not in BUTTON_STYLES:
            found.append(f"{where}.style: {element['style']!r} is not primary or danger")
    elif kind == "overflow":
        found += _options(where, element.get("options"), MAX_OVERFLOW_OPTIONS)
    elif kind == "static_select":
        found += _options(where, element.get("options"), MAX_SELECT_OPTIONS)
    elif kind == "image":
        found += _image(where, element)
    return found


def _options(where: str, options, most: int) -> list[str]:
    if not isinstance(options, list) or not 1 <= len(options) <= most:
        return [f"{where}.options: {_len(options)} options not in 1..{most}"]
    found: list[str] = []
    for k, option in enumerate(options):
        if not isinstance(option, dict):
            found.append(f"{where}.options[{k}]: not an object")
            continue
        found += _text(f"{where}.options[{k}].text", option.get("text"), MAX_OPTION_TEXT, plain_only=True)
        found += _limit(f"{where}.options[{k}].value", option.get("value"), MAX_OPTION_VALUE)
    return found


def _image(where: str, image: dict) -> list[str]:
    found = _limit(f"{where}.alt_text", image.get("alt_text"), MAX_IMAGE_ALT)
    if "image_url" in image:
        found += _limit(f"{where}.image_url", image["image_url"], MAX_URL)
    return found


def _text(where: str, obj, most: int, plain_only: bool = False) -> list[str]:
    """A text object: {"type": "plain_text"|"mrkdwn", "text": 1..most chars}."""
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in allowed:
        return [f"{where}: must be a text object of type {' or '.join(allowed)}"]
    return _limit(f"{where}.text", obj.get("text"), most)


def _limit(where: str, value, most: int) -> list[str]:
    if not isinstance(value, str) or not 1 <= len(value) <= most:
        return [f"{where}: length {_len(value)} not in 1..{most}"]
    return []


def _len(value) -> str:
    return str(len(value)) if isinstance(value, (str, list)) else "(missing)" if value is None else "(wrong type)"
