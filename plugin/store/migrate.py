"""Apply the versioned schema migrations (Alembic) to a database."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from plugin.store.database import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(db: Database) -> Config:
    """An Alembic configuration for our migrations, bound to this database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = db.write_engine
    return config


def migrate(db: Database, revision: str = "head") -> None:
    """Bring the schema up to revision (default: the newest)."""
    command.upgrade(alembic_config(db), revision)


def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with db.read_engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
