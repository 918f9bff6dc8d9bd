"""Settings are typed: each field's declaration is the table's row, and the type checker sees it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import typing

import pytest

from incidentctl.config import SETTINGS, ConfigError, Settings, load_settings
from tests.support import ROOT

FIELD_TYPES = typing.get_type_hints(Settings)


def as_env(value: object) -> str:
    """A default as it would be written in its environment variable."""
    return ",".join(value) if isinstance(value, tuple) else str(value)


@pytest.mark.parametrize("s", SETTINGS, ids=[s.name for s in SETTINGS])
def test_default_and_parsed_value_have_the_fields_type(s):
    # The parser gives back the default from its written form, of the type the field declares.
    kind = typing.get_origin(FIELD_TYPES[s.name]) or FIELD_TYPES[s.name]
    parsed = s.parse(as_env(s.default))
    assert parsed == s.default
    assert type(s.default) is kind and type(parsed) is kind
    assert s.help.strip()


def test_every_field_but_the_bookkeeping_is_a_setting():
    bookkeeping = {"sources", "extra", "config_file"}
    assert [s.name for s in SETTINGS] == [name for name in FIELD_TYPES if name not in bookkeeping]


def test_values_round_trip_and_replace_records_the_override():
    settings = load_settings({"INCIDENTCTL_BATCH_SIZE": "7"})
    assert settings.batch_size == 7 and settings.sources["batch_size"] == "env INCIDENTCTL_BATCH_SIZE"
    assert Settings(settings.values, settings.sources) == settings
    changed = settings.replace(group_by=("fingerprint",))
    assert changed.group_by == ("fingerprint",) and changed.sources["group_by"] == "override"
    assert changed.batch_size == 7 and settings.group_by != changed.group_by


def test_a_name_that_is_no_setting_is_refused():
    settings = load_settings({})
    with pytest.raises(AttributeError):
        settings.batchsize  # noqa: B018 -- the access is the test
    with pytest.raises(ConfigError, match="unknown setting.*batchsize"):
        settings.replace(batchsize=5)
    with pytest.raises(ConfigError, match="unknown setting.*batchsize"):
        Settings({"batchsize": 5})


def test_repr_leaves_secrets_out():
    settings = load_settings({"INCIDENTCTL_HMAC_SECRET": "hmac-s3cret", "DB_PASSWORD": "db-s3cret",
                              "INCIDENTCTL_DB_CONNECT_TIMEOUT": "7s"})
    text = repr(settings)
    assert "s3cret" not in text and "db_connect_timeout=7.0" in text


def test_the_package_is_marked_typed():
    # py.typed tells type checkers of an installed incidentctl to read its annotations.
    assert (ROOT / "incidentctl" / "py.typed").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["incidentctl"]


SNIPPET = """\
from incidentctl.config import load_settings
settings = load_settings({})
settings.batchsize
port: str = settings.port
reveal_type(settings.group_by)
"""


@pytest.mark.slow
def test_mypy_catches_a_misspelt_setting_and_a_wrong_type(tmp_path):
    source = tmp_path / "uses_settings.py"
    source.write_text(SNIPPET)
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                             "--cache-dir", str(tmp_path / "cache"), str(source)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert f'{source}:3: error: "Settings" has no attribute "batchsize"' in out
    assert f"{source}:4: error: Incompatible types in assignment" in out
    assert f'{source}:5: note: Revealed type is "tuple[str, ...]"' in out
    assert "Found 2 errors in 1 file" in out
