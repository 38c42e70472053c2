"""Fixtures of the WebDAV tests: the app on a store in tmp_path, clients with tokens."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from bridge.api.app import create_app
from bridge.store.store import Store
from tests.api.conftest import admin_secret, make_token, store  # noqa: F401

PROPFIND_ALL = b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>'


class Dav:
    """A WebDAV client on the test server, with the token as Basic password."""

    def __init__(self, client: TestClient[Any, Any], secret: str | None) -> None:
        self.client = client
        self.secret = secret

    def as_token(self, secret: str | None) -> Dav:
        return Dav(self.client, secret)

    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        h = {"Host": "127.0.0.1"}
        if self.secret is not None:
            h["Authorization"] = "Basic " + base64.b64encode(f"u:{self.secret}".encode()).decode()
        h.update(headers or {})
        resp = await self.client.request(method, path, headers=h, **kw)
        body = await resp.read()
        return resp, body

    async def propfind(
        self, path: str, body: bytes = PROPFIND_ALL, depth: str = "1"
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        return await self.request(
            "PROPFIND", path, data=body, headers={"Depth": depth, "Content-Type": "text/xml"}
        )


@pytest.fixture
async def dav(store: Store, admin_secret: str, aiohttp_client: AiohttpClient) -> Dav:  # noqa: F811
    client = await aiohttp_client(create_app(store))
    return Dav(client, admin_secret)
