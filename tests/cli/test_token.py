"""`incidentctl token add|list|revoke`: the token shown once, only its hash stored, revocation."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from incidentctl.db.schema import api_tokens
from incidentctl.ingest.tokens import owner_of, token_hash
from tests.support.cli import invoke


def test_add_prints_the_token_once_and_stores_only_its_hash(engine, db_url):
    added = invoke("token", "add", "bob", db=db_url)
    assert added.exit_code == 0, added.output
    token = added.stdout.strip()
    assert token.startswith("ict_") and len(token) > 40
    with engine.connect() as conn:
        (row,) = conn.execute(select(api_tokens)).all()
        assert row.token_sha256 == token_hash(token) and token not in str(tuple(row))
        assert owner_of(conn, token).name == "bob"
    listed = invoke("token", "list", "-o", "json", db=db_url)
    (entry,) = json.loads(listed.stdout)
    assert (entry["name"], entry["state"]) == ("bob", "live") and token not in listed.stdout
    again = invoke("token", "add", "bob", db=db_url)
    assert again.exit_code == 2 and "already has a token" in again.output


def test_revoke_by_name_or_id(engine, db_url):
    token = invoke("token", "add", "bob", db=db_url).stdout.strip()
    assert invoke("token", "revoke", "bob", db=db_url).exit_code == 0
    with engine.connect() as conn:
        assert owner_of(conn, token) is None
    assert invoke("token", "list", "-o", "json", db=db_url).stdout.strip() == "[]"
    (revoked,) = json.loads(invoke("token", "list", "--all", "-o", "json", db=db_url).stdout)
    assert revoked["state"] == "revoked"
    assert invoke("token", "revoke", "bob", db=db_url).exit_code == 1  # already revoked
    second = json.loads(invoke("token", "add", "bob", "-o", "json", db=db_url).stdout)  # the name is free again
    assert invoke("token", "revoke", str(second["id"]), db=db_url).exit_code == 0
    missing = invoke("token", "revoke", "nobody", db=db_url)
    assert missing.exit_code == 1 and "no token 'nobody'" in missing.output


def test_a_bad_name_is_refused(db_url):
    result = invoke("token", "add", "bob smith", db=db_url)
    assert result.exit_code == 2 and "letters, digits" in result.output


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_revoke_prints_the_row_in_each_output_format(db_url, fmt):
    added = json.loads(invoke("token", "add", "bob", "-o", "json", db=db_url).stdout)
    out = invoke("token", "revoke", "bob", "-o", fmt, db=db_url).stdout
    if fmt == "table":
        assert out == f"token {added['id']} (bob) revoked\n"
    elif fmt == "json":
        row = json.loads(out)
        assert (row["id"], row["name"], row["state"]) == (added["id"], "bob", "revoked")
    else:
        header, line = out.splitlines()
        assert header == "id,name,state,created_at,created_by,revoked_at"
        assert line.startswith(f"{added['id']},bob,revoked,")
