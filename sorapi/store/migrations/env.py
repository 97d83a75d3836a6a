"""Alembic environment: the URL comes from the caller (`sorapi.store.migrate`), never from a file."""

from __future__ import annotations

from alembic import context

from sorapi.store.engine import make_sync_engine
from sorapi.store.models import Base

config = context.config
url = config.attributes["database_url"]

with make_sync_engine(url).connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
