"""Option groups (cli/options.py): a group's options stand in the command's signature where its
parameter stands, and the command gets the group built from them."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from incidentctl.cli.app import module_app
from incidentctl.cli.options import IncidentFilters, Window, grouped


def _app(seen: list):
    app = module_app()  # plain click help, as every command's

    @app.command()
    @grouped
    def cmd(first: int = typer.Option(1, "--first", help="Before."), filters: IncidentFilters = IncidentFilters(),
            last: int = typer.Option(2, "--last", help="After.")):
        """A command taking a group between two options."""
        seen.append((first, filters, last))

    return app


def test_the_command_gets_the_group_built_from_its_options():
    seen: list = []
    result = CliRunner().invoke(_app(seen), ["--cluster", "prod", "--label", "a=1", "--label", "b=2", "--last", "3"])
    assert result.exit_code == 0, result.output
    assert seen == [(1, IncidentFilters(cluster="prod", label=["a=1", "b=2"]), 3)]


def test_help_lists_the_group_s_options_where_its_parameter_stands():
    help_text = CliRunner().invoke(_app([]), ["--help"], env={"COLUMNS": "200"}).output
    flags = ["--first", "--severity", "--cluster", "--namespace", "--service", "--alertname", "--label",
             "--series-label", "--since", "--last"]
    positions = [help_text.index(f"  {flag} ") for flag in flags]
    assert positions == sorted(positions), help_text


def test_two_groups_with_an_option_of_the_same_name_are_refused():
    def cmd(window: Window = Window(), filters: IncidentFilters = IncidentFilters()):
        """Both take --since."""

    with pytest.raises(ValueError, match="duplicate parameter name: 'since'"):
        grouped(cmd)
