"""Helpers of the REST API tests: the client wrapper, problem checks, store snapshots."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

MakeToken = Callable[..., Awaitable[str]]
MakeApi = Callable[..., Awaitable["Api"]]
Unchanged = Callable[..., Any]

PROBLEM_TYPE = "application/problem+json"
PROBLEM_PREFIX = "urn:kbridge:problem:"


class Api:
    """A test client that authenticates with one token and names a loopback Host."""

    def __init__(self, client: TestClient[Any, Any], secret: str | None) -> None:
        self.client = client
        self.secret = secret

    def as_token(self, secret: str | None) -> Api:
        """The same server, another token (None: no Authorization header)."""
        return Api(self.client, secret)

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        out = {"Host": "127.0.0.1"}
        if self.secret is not None:
            out["Authorization"] = f"Bearer {self.secret}"
        out.update(extra or {})
        return out

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> aiohttp.ClientResponse:
        """The response, with its body already read (so it can be inspected at leisure)."""
        resp = await self.client.request(method, path, headers=self.headers(headers), **kwargs)
        await resp.read()
        return resp

    async def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        """Make a request, assert its status, return the decoded JSON body (None if empty)."""
        resp = await self.request(method, path, **kwargs)
        body = await resp.read()
        assert resp.status == expect, f"{method} {path}: {resp.status} {body[:2000]!r}"
        return await resp.json(content_type=None) if body else None

    async def get(self, path: str, expect: int = 200, **kwargs: Any) -> Any:
        return await self.call("GET", path, expect, **kwargs)

    async def post(self, path: str, expect: int = 201, **kwargs: Any) -> Any:
        return await self.call("POST", path, expect, **kwargs)

    async def patch(self, path: str, expect: int = 200, **kwargs: Any) -> Any:
        return await self.call("PATCH", path, expect, **kwargs)

    async def put(self, path: str, expect: int = 200, **kwargs: Any) -> Any:
        return await self.call("PUT", path, expect, **kwargs)

    async def delete(self, path: str, expect: int = 204, **kwargs: Any) -> Any:
        return await self.call("DELETE", path, expect, **kwargs)

    async def problem(
        self, method: str, path: str, status: int | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Make a request that must fail with a problem document; return the document."""
        resp = await self.request(method, path, **kwargs)
        return await check_problem(resp, status)

    async def roles(self) -> dict[str, str]:
        """Folder ids by role, from the store object."""
        doc = await self.get("/api/v1/store")
        roles: dict[str, str] = doc["default_folders"]
        return roles

    async def new_item(
        self, folder_id: str, props: dict[str, Any] | None = None, **body: Any
    ) -> dict[str, Any]:
        doc: dict[str, Any] = await self.post(
            f"/api/v1/folders/{folder_id}/items", json={"props": props or {}, **body}
        )
        return doc

    async def new_folder(self, parent_id: str, name: str, **body: Any) -> dict[str, Any]:
        doc: dict[str, Any] = await self.post(
            "/api/v1/folders", json={"name": name, "parent_id": parent_id, **body}
        )
        return doc


async def check_problem(resp: aiohttp.ClientResponse, status: int | None = None) -> dict[str, Any]:
    """Assert that a response is a 4xx RFC 9457 problem of this bridge."""
    body = await resp.read()
    assert 400 <= resp.status < 500, f"{resp.status} {body[:2000]!r}"
    if status is not None:
        assert resp.status == status, f"expected {status}, got {resp.status} {body[:2000]!r}"
    assert resp.content_type == PROBLEM_TYPE, resp.content_type
    doc: dict[str, Any] = await resp.json(content_type=None)
    assert doc["type"].startswith(PROBLEM_PREFIX), doc
    assert doc["status"] == resp.status
    assert isinstance(doc["title"], str) and doc["title"]
    assert isinstance(doc["detail"], str) and doc["detail"]
    return doc


def db_snapshot(path: Path) -> str:
    """A digest of every row of every table (through a separate connection)."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        digest = hashlib.sha256()
        for line in conn.iterdump():
            digest.update(line.encode("utf-8", "surrogatepass"))
            digest.update(b"\n")
        return digest.hexdigest()
    finally:
        conn.close()
