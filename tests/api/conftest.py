"""Fixtures of the REST API tests: a store on tmp_path, the app, tokens and a client helper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from bridge.api.app import ApiSettings, create_app
from bridge.store.store import Store
from tests.api.helpers import Api, MakeApi, MakeToken, Unchanged, db_snapshot


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "store.sqlite")
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def admin_secret(store: Store) -> str:
    _, secret = await store.tokens.create("admin", "admin")
    return secret


@pytest.fixture
def make_token(store: Store) -> MakeToken:
    """`await make_token("read")`, `await make_token("write", folders=[row ids])`."""
    counter = iter(range(1, 1_000_000))

    async def make(scope: str, folders: list[int] | None = None) -> str:
        _, secret = await store.tokens.create(f"{scope}-{next(counter)}", scope, folders)
        return secret

    return make


@pytest.fixture
def make_api(store: Store, admin_secret: str, aiohttp_client: AiohttpClient) -> MakeApi:
    """An app on the store with these settings and a client with the admin token."""

    async def make(settings: ApiSettings | None = None) -> Api:
        client = await aiohttp_client(create_app(store, settings=settings))
        return Api(client, admin_secret)

    return make


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()


@pytest.fixture
def unchanged(store: Store, api: Api) -> Unchanged:
    """`async with unchanged(): ...` asserts the database is identical afterwards.

    Pass the Api whose token the block uses: token bookkeeping (the time of last use) is
    written on a token's first request, so one request is made before the snapshot."""

    @asynccontextmanager
    async def check(client: Api | None = None) -> AsyncIterator[None]:
        await (client or api).get("/api/v1/store")
        await store.search.wait_current()  # the indexer writes in the background
        before = db_snapshot(store.core.path)
        yield
        assert db_snapshot(store.core.path) == before, "the request changed the store"

    return check
