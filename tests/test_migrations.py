"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from sorapi.store.engine import make_sync_engine
from sorapi.store.migrate import MIGRATIONS_DIR, alembic_config, upgrade
from sorapi.store.models import Base


def _drift(url: str) -> list:
    upgrade(url)
    with make_sync_engine(url).connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def test_one_head() -> None:
    assert len(ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_heads()) == 1
    assert MIGRATIONS_DIR.is_dir()


def test_postgres_schema_matches_the_models(pg_url: str) -> None:
    assert _drift(pg_url) == []
    upgrade(pg_url)  # a second run is a no-op
