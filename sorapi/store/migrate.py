"""Alembic migrations, run programmatically (`sorapi migrate`, `sorapi dev`, the test suite)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Bring the schema to `revision`; safe to run on every start (a no-op when current)."""
    command.upgrade(alembic_config(database_url), revision)
