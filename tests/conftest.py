"""Test wiring: every database test runs on SQLite and on MariaDB/MySQL.

MySQL: INCIDENTCTL_TEST_MYSQL_URL names the server (default mysql+pymysql://root@127.0.0.1:3306);
the tests connect without TLS unless it names ssl options (`_without_tls`).
Each test session creates its own databases (`ict_<pid>_<random>_…`) and drops them at the end,
so parallel runs never meet; under pytest-xdist (`-n 2`) each worker is a process, and a session,
of its own, so workers never share a database or a SQLite directory either. When the server
cannot be reached the suite runs on SQLite only and says so in its header, unless
INCIDENTCTL_TEST_REQUIRE_MYSQL=1 (set by .ci/run): then it fails.
"""

from __future__ import annotations

import gc
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from incidentctl.db.engine import make_engine
from incidentctl.db.migrations import upgrade
from incidentctl.db.schema import metadata
from incidentctl.ops.gc_tuning import BATCH_THRESHOLDS
from tests.support import FIXTURES
from tests.support.cli import console_script
from tests.support.databases import empty_tables, leftovers

# The Galera cluster fixture (`galera_cluster`), shared by the whole session: started once.
pytest_plugins = ["tests.support.galera"]



def _without_tls(url: str) -> str:
    """`url` asking PyMySQL for no TLS, unless it names ssl options itself. PyMySQL (1.2+) otherwise
    builds a TLS context for every new connection, loading the system's CA certificates (about
    40 ms of CPU), even when the server offers no TLS; the suite opens thousands of connections."""
    parsed = make_url(url)
    if any(key.startswith("ssl") for key in parsed.query):
        return url
    return parsed.update_query_dict({"ssl_disabled": "true"}).render_as_string(hide_password=False)


# Hypothesis's dev/CI profiles: without a profile option every property runs its full count of
# examples (`make test`, CI); `make quick` loads this one (--hypothesis-profile=quick), a quarter of
# them, for the loop while changing code. A test's own count scales with it (tests/support/properties.py).
settings.register_profile("quick", max_examples=25)


MYSQL_SERVER_URL = _without_tls(os.environ.get("INCIDENTCTL_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306"))
REQUIRE_MYSQL = os.environ.get("INCIDENTCTL_TEST_REQUIRE_MYSQL") == "1"
RUN_ID = f"ict_{os.getpid()}_{secrets.token_hex(3)}"


def _probe_mysql() -> str | None:
    """None when the server answers, else why not."""
    try:
        engine = create_engine(MYSQL_SERVER_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means "not available"; the reason is reported
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


_MYSQL_PROBLEM = _probe_mysql()
BACKENDS = ["sqlite"] + ([] if _MYSQL_PROBLEM else ["mysql"])


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # xdist hands its workers the controller's terminal width as COLUMNS=80; the CLI reads
        # COLUMNS (cli/output.py, stdout_console), so a worker drops it to run as one process does.
        os.environ.pop("COLUMNS", None)
        os.environ.pop("LINES", None)
    if _MYSQL_PROBLEM and REQUIRE_MYSQL:
        raise pytest.UsageError(
            f"INCIDENTCTL_TEST_REQUIRE_MYSQL=1 but MySQL at {MYSQL_SERVER_URL} is unreachable: {_MYSQL_PROBLEM}"
        )


def pytest_collection_finish(session):
    """The cyclic collector as the batch jobs run it (ops/gc_tuning.py), sweeping rarely: every test
    leaves engines, pools and compiled statements in reference cycles, which the default thresholds
    swept over and over, now and then with a full sweep of every object alive (the collected items
    included). Nothing is frozen: under a frozen heap, batch_collection's check for it (run by
    process, replay, rebuild and simulate) walks every frozen object."""
    gc.set_threshold(*BATCH_THRESHOLDS)


def pytest_report_header(config):
    if _MYSQL_PROBLEM:
        return [f"database backends: sqlite ONLY — MySQL at {MYSQL_SERVER_URL} unreachable ({_MYSQL_PROBLEM})"]
    return [f"database backends: sqlite, mysql ({MYSQL_SERVER_URL}, databases {RUN_ID}_*)"]


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("backends")
        wanted = [b for b in BACKENDS if only is None or b in only.args]
        metafunc.parametrize("backend", wanted)


class MySQLServer:
    """Creates and drops databases of this test session on the MySQL server."""

    def __init__(self, server_url: str):
        self.server_url = make_url(server_url)
        self.admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def create_database(self, suffix: str, charset: str = "utf8mb4 COLLATE utf8mb4_unicode_ci") -> str:
        name = f"{RUN_ID}_{suffix}"
        with self.admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET {charset}"))
        self.created.append(name)
        return self.server_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in self.created:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        self.admin.dispose()


@pytest.fixture(scope="session")
def mysql_server():
    if _MYSQL_PROBLEM:
        pytest.fail(f"MySQL unreachable: {_MYSQL_PROBLEM}")
    server = MySQLServer(MYSQL_SERVER_URL)
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def _mysql_schema(request):
    """One MySQL database with the schema, shared by the session and emptied between tests:
    (its URL, an engine kept for the emptying: a new engine's first connection costs a lot)."""
    if "mysql" not in BACKENDS:
        yield None
        return
    server = request.getfixturevalue("mysql_server")
    url = server.create_database("main")
    engine = make_engine(url)
    upgrade(engine)
    yield url, engine
    engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_dir(tmp_path_factory):
    """Where the tests' SQLite databases live: in RAM (/dev/shm) when there is one, because every
    commit to a file database waits for the disk (synchronous=FULL) and the suite commits a lot."""
    if not os.access("/dev/shm", os.W_OK):
        yield tmp_path_factory.mktemp("sqlite")
        return
    path = Path(tempfile.mkdtemp(prefix=f"{RUN_ID}_", dir="/dev/shm"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def _sqlite_schema_file(_sqlite_dir):
    """One SQLite file with the schema, copied byte for byte for each test (a copy is much faster
    than migrating), so checking it once checks every copy."""
    path = _sqlite_dir / "schema.db"
    engine = make_engine(f"sqlite+pysqlite:///{path}")
    upgrade(engine)
    _check_fresh(engine)
    engine.dispose()  # the last connection closed: the WAL is checkpointed into the file
    return path


@pytest.fixture
def db_url(backend, request):
    """URL of a database with the current schema and no rows, on `backend`."""
    if backend == "sqlite":
        template = request.getfixturevalue("_sqlite_schema_file")
        path = template.with_name(f"{secrets.token_hex(8)}.db")
        shutil.copyfile(template, path)
        yield f"sqlite+pysqlite:///{path}"
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        return
    url, engine = request.getfixturevalue("_mysql_schema")
    empty_tables(engine)
    _check_fresh(engine)
    yield url


def _check_fresh(engine: Engine) -> None:
    """Fails the test unless its database is as a fresh one: no test sees what another left."""
    with engine.connect() as conn:
        found = leftovers(conn)
    if found:
        pytest.fail(f"the test's database is not fresh: {'; '.join(found)}", pytrace=False)


@pytest.fixture
def engine(db_url, backend, request):
    """An engine on db_url. On MySQL, where every test's database is the session's one, the
    session's engine: a new one would set up its dialect again on its first connection and compile
    every statement again (its own cache). It is disposed after each test, so no connection, nor a
    setting made on one, outlives the test; a test removes the event listeners it adds."""
    if backend == "sqlite":
        engine = make_engine(db_url)
        yield engine
        engine.dispose()
        return
    _, engine = request.getfixturevalue("_mysql_schema")
    listeners = _listeners(engine)
    yield engine
    engine.dispose()
    if _listeners(engine) != listeners:
        pytest.fail("the test left event listeners on the session's engine (event.remove them)", pytrace=False)


def _listeners(engine: Engine) -> list[tuple[str, int]]:
    """How many listeners each event of the engine and its pool has."""
    return [(name, len(getattr(dispatch, name)))
            for dispatch in (engine.dispatch, engine.pool.dispatch) for name in dispatch._event_names]


@pytest.fixture
def empty_database_url(backend, request):
    """Factory: URL of a new database with no tables, on `backend`."""
    counter = iter(range(1_000_000))

    def make(label: str = "empty") -> str:
        n = next(counter)
        if backend == "sqlite":
            path = request.getfixturevalue("_sqlite_dir") / f"{label}{n}_{secrets.token_hex(4)}.db"
            return f"sqlite+pysqlite:///{path}"
        server = request.getfixturevalue("mysql_server")
        return server.create_database(f"{label}{n}_{secrets.token_hex(2)}")

    return make


@pytest.fixture(scope="session")
def _mysql_create_tables(_mysql_schema):
    """The shared database's CREATE TABLE statements as MariaDB shows them (indexes and foreign keys
    included), parents first, without the AUTO_INCREMENT counter the tests' rows moved; and the
    database's name, whose schema_migrations rows a copy takes."""
    url, engine = _mysql_schema
    with engine.connect() as conn:
        statements = [re.sub(r" AUTO_INCREMENT=\d+", "", conn.exec_driver_sql(f"SHOW CREATE TABLE `{t.name}`").one()[1])
                      for t in metadata.sorted_tables]
    return statements, make_url(url).database


@pytest.fixture
def second_engine(backend, request, empty_database_url):
    """Factory: an engine on a new database of `backend` with the schema, for comparing two
    databases fed the same rows; disposed at the end of the test. The schema is the session's:
    on SQLite a copy of the template file, on MySQL its tables made by the shared database's own
    CREATE TABLE statements (much faster than migrating), checked fresh."""
    engines = []

    def make(label: str = "second") -> Engine:
        if backend == "sqlite":
            template = request.getfixturevalue("_sqlite_schema_file")
            path = template.with_name(f"{label}_{secrets.token_hex(6)}.db")
            shutil.copyfile(template, path)
            other = make_engine(f"sqlite+pysqlite:///{path}")
        else:
            statements, shared = request.getfixturevalue("_mysql_create_tables")
            other = make_engine(empty_database_url(label))
            with other.begin() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
                conn.exec_driver_sql(f"INSERT INTO schema_migrations SELECT * FROM `{shared}`.schema_migrations")
            _check_fresh(other)
        engines.append(other)
        return other

    yield make
    for other in engines:
        other.dispose()


_LOADED: dict[tuple[str, str], str] = {}  # (loader, backend) → its loaded copy: a SQLite path or a MySQL database


@pytest.fixture
def loaded(backend, engine, request):
    """Factory: `loaded(load)` fills this test's (empty) database with what `load(engine)` writes.
    The load runs once a session per backend, into a database of its own; each test gets a copy
    of its tables, which costs a few statements instead of the load (a history processed batch by
    batch takes about a second). Ids are the first load's."""

    def fill(load) -> None:
        key = (f"{load.__module__}.{load.__qualname__}", backend)
        if key not in _LOADED:
            if backend == "sqlite":
                path = request.getfixturevalue("_sqlite_dir") / f"loaded_{len(_LOADED)}.db"
                shutil.copyfile(request.getfixturevalue("_sqlite_schema_file"), path)
                url, _LOADED[key] = f"sqlite+pysqlite:///{path}", str(path)
            else:
                url = request.getfixturevalue("mysql_server").create_database(f"loaded{len(_LOADED)}")
                _LOADED[key] = make_url(url).database
            source = make_engine(url)
            try:
                upgrade(source)
                load(source)
            finally:
                source.dispose()
        tables = [t.name for t in metadata.sorted_tables if t.name != "schema_migrations"]  # parents first
        if backend == "mysql":
            with engine.begin() as conn:
                for name in tables:
                    conn.exec_driver_sql(f"INSERT INTO `{name}` SELECT * FROM `{_LOADED[key]}`.`{name}`")
            return
        # SQLite attaches and detaches only outside a transaction: the driver's own connection,
        # which leaves BEGIN to whoever issues it.
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("ATTACH DATABASE ? AS loaded", (_LOADED[key],))
            cursor.execute("BEGIN IMMEDIATE")
            for name in tables:
                cursor.execute(f'INSERT INTO main."{name}" SELECT * FROM loaded."{name}"')
            cursor.execute("COMMIT")
            cursor.execute("DETACH DATABASE loaded")
        finally:
            raw.close()

    return fill


@pytest.fixture
def fixture_bodies() -> dict[str, bytes]:
    """Every real webhook body in tests/fixtures, by relative path."""
    return {
        str(p.relative_to(FIXTURES)): p.read_bytes()
        for p in sorted(FIXTURES.rglob("*.json"))
    }


@pytest.fixture
def cli_env(db_url, tmp_path):
    """Environment for running the real `incidentctl` entry point against db_url."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INCIDENTCTL_", "DB_", "SLACK_"))}
    env["INCIDENTCTL_DATABASE_URL"] = db_url
    env["HOME"] = str(tmp_path / "home")
    return env


@pytest.fixture(scope="session")
def incidentctl_bin() -> str:
    return console_script()
