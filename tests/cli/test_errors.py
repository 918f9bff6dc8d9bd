"""An error the database answers that no command expects ends the command with one line and exit
3, not a traceback carrying the statement; any other exception is still a traceback (a bug)."""

from __future__ import annotations

import pytest

from incidentctl.db.engine import make_engine
from incidentctl.db.migrations import upgrade
from tests.support.cli import invoke


def test_a_table_dropped_by_hand_gives_one_line_and_exit_3(empty_database_url):
    url = empty_database_url()
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE silences")
    engine.dispose()

    result = invoke("silence", "list", "-o", "json", db=url, catch_exceptions=True)

    assert result.exit_code == 3, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.output.count("\n") == 1 and "Traceback" not in result.output, result.output
    assert "silences" in result.output  # the driver's message names the table


def test_any_other_exception_is_not_hidden(empty_database_url, monkeypatch):
    import incidentctl.cli.silence as command

    url = empty_database_url()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(command, "list_silences", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        invoke("silence", "list", db=url)
