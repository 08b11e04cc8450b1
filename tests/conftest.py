"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL.

Every test that uses ``db``/``app``/``client`` runs once per backend. PostgreSQL
is reached at ``INCIDENT_TEST_POSTGRES_URL`` (default: the local server, database
``test``); each test run creates its own database there and drops it at the end,
so parallel runs never meet. Without PostgreSQL those cases are skipped, unless
``INCIDENT_REQUIRE_POSTGRES=1`` (CI), where a missing PostgreSQL is a failure.
"""
from __future__ import annotations

import itertools
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from plugin.app import create_app
from plugin.egress import stop_all as stop_egress
from plugin.settings import Settings, load_settings
from plugin.store import Database, migrate, normalise_url
from plugin.store.tables import metadata

PG_URL = os.environ.get("INCIDENT_TEST_POSTGRES_URL", "postgresql+psycopg://incident:incident@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("INCIDENT_REQUIRE_POSTGRES", "") in {"1", "true", "yes"}


def uid(name: str) -> str:
    """A readable 26-character id: uid('alice') -> 'alice000000000000000000000'."""
    return (name + "0" * 26)[:26]


ALICE, BOB, CAROL, ADMIN = uid("alice"), uid("bob"), uid("carol"), uid("admin")
TEAM, OTHER_TEAM = uid("team"), uid("otherteam")


def as_user(user_id: str) -> dict[str, str]:
    """Headers of a request the chat host makes for user_id."""
    return {"Mattermost-User-ID": user_id}


# ----- PostgreSQL: one database per test run ----------------------------------------------
@contextmanager
def new_postgres_database(prefix: str) -> Iterator[str]:
    """Create an empty PostgreSQL database, yield its URL, drop it afterwards.

    Skips the test when PostgreSQL cannot be reached, or fails it when
    ``INCIDENT_REQUIRE_POSTGRES`` is set.
    """
    admin_url = normalise_url(PG_URL)
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {PG_URL}: {exc.orig}"
        if REQUIRE_PG:
            pytest.fail(message + " (INCIDENT_REQUIRE_POSTGRES is set)", pytrace=False)
        pytest.skip(message)
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        # Apps built on it count their outgoing requests; save the counts while the database still exists.
        stop_egress()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with new_postgres_database("incident_test") as url:
        db = Database(url)
        migrate(db)
        db.dispose()
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "incidents.db"
    db = Database(f"sqlite:///{path}")
    migrate(db)
    db.dispose()
    return path


def _truncate_all(url: str) -> None:
    engine = sa.create_engine(url)
    names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {names}")
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "incidents.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    _truncate_all(url)
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(environ={
        "INCIDENT_DATABASE_URL": database_url,
        "INCIDENT_ADMIN_USER_IDS": ADMIN,
        "INCIDENT_DATA_DIR": str(tmp_path),
        # Tests send due reminders themselves, on a clock they control.
        "INCIDENT_REMINDER_SCAN_SECONDS": "0",
    })


@pytest.fixture
def app(settings: Settings):
    application = create_app(settings, migrate_db=False)
    application.config["TESTING"] = True
    yield application
    application.extensions["incident"].db.dispose()


@pytest.fixture
def components(app):
    return app.extensions["incident"]


@pytest.fixture
def ticking_clock(components):
    """The service's clock advances a millisecond per call: incidents started one after
    another are never a tie for "newest" (a fast host starts several within one millisecond)."""
    ticks = itertools.count(1_700_000_000_000)
    components.service.clock = lambda: next(ticks)
