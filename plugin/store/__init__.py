"""SQL persistence: SQLite by default, PostgreSQL for scale, Alembic migrations."""
from plugin.store.database import Database, SqlUnitOfWork, normalise_url
from plugin.store.migrate import migrate

__all__ = ["Database", "SqlUnitOfWork", "migrate", "normalise_url"]
