"""SQL persistence: SQLite by default, PostgreSQL for scale, Alembic migrations."""
from plugin.store.database import UNAVAILABLE, Database, SqlUnitOfWork, normalise_url
from plugin.store.migrate import migrate

__all__ = ["UNAVAILABLE", "Database", "SqlUnitOfWork", "migrate", "normalise_url"]
