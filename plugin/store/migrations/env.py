"""Alembic environment: runs migrations on the engine our code hands it."""
from alembic import context

from plugin.store.tables import metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
