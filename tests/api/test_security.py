"""Authentication, scopes, folder limits, Host allow-list and cross-origin refusal."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import pytest

from bridge.api.app import load_openapi
from bridge.store.store import Store
from tests.api.helpers import Api, MakeToken, Unchanged, check_problem

SCOPES = ("read", "write", "send", "admin")
OPERATIONS = sorted(
    (method.upper(), path, op["x-required-scope"])
    for path, item in load_openapi()["paths"].items()
    for method, op in item.items()
    if method in ("get", "post", "put", "patch", "delete") and op.get("security") != []
)
# Table views are opened and moved with POST but only read (scope read).
WRITE_OPERATIONS = [(m, p) for m, p, s in OPERATIONS if m != "GET" and s != "read"]
# (token scope, method, path) for every operation that needs more than the token has
# (a read token on the write operations: test_read_token_cannot_write)
TOO_WEAK = [
    (scope, m, p)
    for m, p, needed in OPERATIONS
    for scope in SCOPES
    if SCOPES.index(scope) < SCOPES.index(needed) and not (scope == "read" and m != "GET")
]


async def fill_path(api: Api, path: str) -> str:
    """A path template with real ids: a new folder, an item with an attachment."""
    roles = await api.roles()
    folder = await api.new_folder(roles["inbox"], f"Target {uuid.uuid4().hex[:8]}")
    item = await api.new_item(
        folder["id"],
        {"PidTagSubject": "Target"},
        recipients=[{"PidTagSmtpAddress": "ann@example.com"}],
    )
    await api.post(
        f"/api/v1/items/{item['id']}/attachments",
        data=b"x",
        headers={"Content-Type": "text/plain"},
    )
    kind = "item" if path.startswith("/api/v1/items/") else "folder"
    return (
        path.replace("{id}", item["id"] if kind == "item" else folder["id"])
        .replace("{num}", "0")
        .replace("{name}", "admin")
    )


@pytest.mark.parametrize("path", ["/api/v1/store", "/api/v1/folders", "/api/v1/openapi.json"])
async def test_no_token_is_unauthorized(api: Api, path: str) -> None:
    resp = await api.as_token(None).request("GET", path)
    doc = await check_problem(resp, 401)
    assert doc["type"] == "urn:kbridge:problem:unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_unknown_route_needs_a_token_too(api: Api) -> None:
    resp = await api.as_token(None).request("GET", "/api/v1/nothing-here")
    await check_problem(resp, 401)
    doc = await api.problem("GET", "/api/v1/nothing-here", 404)
    assert doc["type"] == "urn:kbridge:problem:no-such-route"
    doc = await api.problem("PUT", "/api/v1/store", 405)
    assert doc["type"] == "urn:kbridge:problem:method-not-allowed"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer kb_not-a-real-token",
        "Bearer not-even-the-prefix",
        "Bearer ",
        "Bearer",
        "Token kb_whatever",
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"user:kb_wrong").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    ],
)
async def test_bad_token_is_unauthorized(api: Api, authorization: str) -> None:
    resp = await api.as_token(None).request(
        "GET", "/api/v1/store", headers={"Authorization": authorization}
    )
    await check_problem(resp, 401)
    assert "WWW-Authenticate" in resp.headers


async def test_basic_auth_with_token_as_password(api: Api) -> None:
    assert api.secret is not None
    for user in ("kbridge", "", "anyone"):
        creds = base64.b64encode(f"{user}:{api.secret}".encode()).decode()
        resp = await api.as_token(None).request(
            "GET", "/api/v1/store", headers={"Authorization": f"Basic {creds}"}
        )
        assert resp.status == 200


async def test_revoked_token_is_cut_off_at_once(api: Api) -> None:
    created = await api.post("/api/v1/tokens", json={"name": "plugin", "scope": "write"})
    assert created["scope"] == "write" and created["revoked"] is False
    assert created["folders"] is None
    plugin = api.as_token(created["token"])
    await plugin.get("/api/v1/folders")
    listed = await api.get("/api/v1/tokens")
    assert {t["name"] for t in listed["tokens"]} == {"admin", "plugin"}
    assert all("token" not in t for t in listed["tokens"])
    await api.delete("/api/v1/tokens/plugin")
    await check_problem(await plugin.request("GET", "/api/v1/folders"), 401)
    listed = await api.get("/api/v1/tokens")
    assert next(t for t in listed["tokens"] if t["name"] == "plugin")["revoked"] is True
    await api.problem("DELETE", "/api/v1/tokens/plugin", 404)


async def test_default_host_of_the_test_client_is_allowed(api: Api) -> None:
    # the test client sends Host: 127.0.0.1:<port>
    resp = await api.client.get("/api/v1/store", headers={"Authorization": f"Bearer {api.secret}"})
    assert resp.status == 200
    await resp.read()


@pytest.mark.parametrize("host", ["localhost", "localhost:1430", "[::1]:1430", "127.0.0.1:1"])
async def test_loopback_hosts_are_allowed(api: Api, host: str) -> None:
    await api.get("/api/v1/store", headers={"Host": host})


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:1430", "127.0.0.1.evil.example", "", "10.0.0.1"]
)
async def test_foreign_host_is_misdirected(api: Api, unchanged: Unchanged, host: str) -> None:
    async with unchanged():
        for method in ("GET", "DELETE"):
            doc = await api.problem(method, "/api/v1/folders", 421, headers={"Host": host})
            assert doc["type"] == "urn:kbridge:problem:host-not-allowed"


async def test_host_that_is_not_utf8_is_misdirected(api: Api) -> None:
    # raw bytes: the test client would not send a Host header that is not UTF-8
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(
            b"GET /api/v1/store HTTP/1.1\r\nHost: \xff\xfe.example\r\n"
            + f"Authorization: Bearer {api.secret}\r\n".encode()
            + b"Connection: close\r\n\r\n"
        )
        await writer.drain()
        async with asyncio.timeout(10):
            response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 421 "), head
    assert b"application/problem+json" in head
    assert json.loads(body)["type"] == "urn:kbridge:problem:host-not-allowed"


async def test_cross_origin_is_refused(api: Api, unchanged: Unchanged) -> None:
    roles = await api.roles()
    async with unchanged():
        for origin in ("http://evil.example", "https://evil.example:443", "null"):
            doc = await api.problem(
                "POST",
                "/api/v1/folders",
                403,
                json={"name": "csrf", "parent_id": roles["inbox"]},
                headers={"Origin": origin},
            )
            assert doc["type"] == "urn:kbridge:problem:cross-origin"
        await api.problem("GET", "/api/v1/store", 403, headers={"Sec-Fetch-Site": "cross-site"})
    await api.get("/api/v1/store", headers={"Origin": "http://127.0.0.1:1430"})
    await api.get("/api/v1/store", headers={"Origin": "http://localhost"})


@pytest.mark.parametrize(("method", "path"), WRITE_OPERATIONS)
async def test_read_token_cannot_write(
    api: Api, make_token: MakeToken, unchanged: Unchanged, method: str, path: str
) -> None:
    url = await fill_path(api, path)
    reader = api.as_token(await make_token("read"))
    async with unchanged(reader):
        doc = await reader.problem(method, url, 403, json={})
        assert doc["type"] == "urn:kbridge:problem:insufficient-scope"


@pytest.mark.parametrize(("scope", "method", "path"), TOO_WEAK)
async def test_scopes_are_enforced(
    api: Api, make_token: MakeToken, unchanged: Unchanged, scope: str, method: str, path: str
) -> None:
    url = await fill_path(api, path)
    weak = api.as_token(await make_token(scope))
    async with unchanged(weak):
        doc = await weak.problem(method, url, 403, json={})
        assert doc["type"] == "urn:kbridge:problem:insufficient-scope"


async def test_read_token_can_read(api: Api, make_token: MakeToken) -> None:
    reader = api.as_token(await make_token("read"))
    for method, path, needed in OPERATIONS:
        if needed != "read" or path == "/api/v1/events" or "/views" in path:
            continue  # views: tests/api/test_views.py
        if path.endswith("/search-criteria"):
            continue  # needs a search folder: tests/api/test_search_folders.py
        url = await fill_path(api, path)
        if path == "/api/v1/search":
            url += "?q=target"  # the query is required
        if path.endswith("/occurrences"):
            url += "?start=2026-01-01T00:00:00Z&end=2026-02-01T00:00:00Z"  # the range is required
        resp = await reader.request(method, url)
        assert resp.status == 200, f"{method} {url}: {resp.status}"


def row_id(store: Store, folder_id: str) -> int:
    rid = store.ids.parse("folder", folder_id)
    assert rid is not None
    return rid


async def test_folder_limited_token(
    api: Api, store: Store, make_token: MakeToken, unchanged: Unchanged
) -> None:
    roles = await api.roles()
    sub = await api.new_folder(roles["inbox"], "Sub")
    mine = await api.new_item(sub["id"], {"PidTagSubject": "mine"})
    theirs = await api.new_item(roles["drafts"], {"PidTagSubject": "theirs"})
    limited = api.as_token(await make_token("write", folders=[row_id(store, roles["inbox"])]))

    listed = await limited.get("/api/v1/folders")
    assert {f["id"] for f in listed["folders"]} == {roles["inbox"], sub["id"]}
    await limited.get(f"/api/v1/folders/{sub['id']}/items")
    await limited.get(f"/api/v1/items/{mine['id']}")
    await limited.patch(f"/api/v1/items/{mine['id']}", json={"props": {"PidTagSubject": "ok"}})

    forbidden: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/v1/folders/{roles['drafts']}", {}),
        ("GET", f"/api/v1/folders/{roles['drafts']}/items", {}),
        ("GET", f"/api/v1/folders/{roles['drafts']}/changes", {}),
        ("GET", f"/api/v1/items/{theirs['id']}", {}),
        ("GET", f"/api/v1/items/{theirs['id']}/recipients", {}),
        ("GET", f"/api/v1/items/{theirs['id']}/source", {}),
        ("GET", f"/api/v1/items/{theirs['id']}/attachments", {}),
        ("PATCH", f"/api/v1/items/{theirs['id']}", {"json": {"props": {"PidTagSubject": "x"}}}),
        ("DELETE", f"/api/v1/items/{theirs['id']}", {}),
        ("POST", f"/api/v1/items/{theirs['id']}/copy", {"json": {"folder_id": sub["id"]}}),
        ("POST", f"/api/v1/items/{mine['id']}/move", {"json": {"folder_id": roles["drafts"]}}),
        ("POST", f"/api/v1/items/{mine['id']}/copy", {"json": {"folder_id": roles["drafts"]}}),
        ("POST", f"/api/v1/folders/{roles['drafts']}/items", {"json": {"props": {}}}),
        ("POST", "/api/v1/folders", {"json": {"name": "Escape"}}),
        ("PATCH", f"/api/v1/folders/{sub['id']}", {"json": {"parent_id": roles["drafts"]}}),
        ("DELETE", f"/api/v1/folders/{roles['drafts']}", {}),
    ]
    async with unchanged(limited):
        for method, path, kwargs in forbidden:
            doc = await limited.problem(method, path, 403, **kwargs)
            assert doc["type"] == "urn:kbridge:problem:folder-not-allowed", (method, path)


async def test_tokens_api_validates_and_limits(api: Api, unchanged: Unchanged) -> None:
    roles = await api.roles()
    created = await api.post(
        "/api/v1/tokens", json={"name": "inbox-only", "scope": "read", "folders": [roles["inbox"]]}
    )
    assert created["folders"] == [roles["inbox"]]
    limited = api.as_token(created["token"])
    assert [f["id"] for f in (await limited.get("/api/v1/folders"))["folders"]] == [roles["inbox"]]
    async with unchanged():
        await api.problem("POST", "/api/v1/tokens", 400, json={"name": "x", "scope": "root"})
        await api.problem("POST", "/api/v1/tokens", 400, json={"scope": "read"})
        await api.problem("POST", "/api/v1/tokens", 409, json={"name": "admin", "scope": "read"})
        await api.problem(
            "POST", "/api/v1/tokens", 400, json={"name": "y", "scope": "read", "folders": "f1"}
        )
        await api.problem(
            "POST", "/api/v1/tokens", 404, json={"name": "z", "scope": "read", "folders": ["zz"]}
        )
        await api.problem("DELETE", "/api/v1/tokens/nobody", 404)
