"""Docs are tested: every setting is documented, from the one declaration."""

from __future__ import annotations

from pathlib import Path

from incidentctl.config import SETTINGS, settings_markdown

DOCS = Path(__file__).parent.parent / "docs"


def test_configuration_doc_has_the_generated_settings_table():
    # regenerate with: python -c "from incidentctl.config import settings_markdown; print(settings_markdown())"
    text = (DOCS / "CONFIGURATION.md").read_text()
    assert settings_markdown() in text
    for s in SETTINGS:
        assert f"`{s.env}`" in text and s.help
