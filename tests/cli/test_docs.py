"""Docs are tested: every setting is documented, from the one declaration."""

from __future__ import annotations

from incidentctl.config import SETTINGS, settings_markdown
from tests.support import ROOT
from tests.support.cli import command_tree

DOCS = ROOT / "docs"


def test_configuration_doc_has_the_generated_settings_table():
    # regenerate with: python -c "from incidentctl.config import settings_markdown; print(settings_markdown())"
    text = (DOCS / "CONFIGURATION.md").read_text()
    assert settings_markdown() in text
    for s in SETTINGS:
        assert f"`{s.env}`" in text and s.help


def _leaf_commands():
    """(path, click command) for every command a user can run, e.g. ("db", "upgrade")."""
    return [(path, command) for path, command, _ in command_tree() if not hasattr(command, "list_commands")]


def test_every_command_and_option_has_help_text():
    commands = _leaf_commands()
    assert len(commands) > 20
    for path, command in commands:
        assert (command.help or "").strip(), f"incidentctl {' '.join(path)} has no help text"
        for param in command.params:
            if param.param_type_name == "option" and param.name not in ("help",):
                assert (param.help or "").strip(), f"incidentctl {' '.join(path)} {param.opts[0]} has no help"


def test_every_command_has_a_section_in_cli_doc():
    headings = [line for line in (DOCS / "CLI.md").read_text().splitlines() if line.startswith("## ")]
    for path, _ in _leaf_commands():
        group, leaf = path[0], path[-1]
        assert any(f"incidentctl {group}" in h and (leaf == group or f" {leaf}" in h) for h in headings), (
            f"docs/CLI.md has no section for `incidentctl {' '.join(path)}`")


def test_architecture_names_every_package_and_top_level_module():
    # docs/ARCHITECTURE.md has one paragraph per package, in pipeline order: a package added
    # without its paragraph (or a sub-package without a mention) fails here.
    import ast

    text = (DOCS / "ARCHITECTURE.md").read_text()
    package = ROOT / "incidentctl"
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    for init in sorted(package.rglob("__init__.py")):
        folder = init.parent
        if folder == package:
            continue
        if folder.parent == package:
            assert any(f"`{folder.name}/`" in h for h in headings), f"ARCHITECTURE.md: no section for {folder.name}/"
        else:
            assert f"{folder.name}/" in text, f"docs/ARCHITECTURE.md does not name {folder.relative_to(package)}/"
    for module in sorted(package.glob("*.py")):
        if module.stem not in ("__init__", "__main__"):
            assert f"{module.name}" in text, f"docs/ARCHITECTURE.md does not name {module.name}"
    # The detail of each module is its docstring, not a second copy here.
    for module in sorted(package.rglob("*.py")):
        assert ast.get_docstring(ast.parse(module.read_text())), f"{module.relative_to(ROOT)} has no docstring"
