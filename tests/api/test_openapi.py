"""The OpenAPI document: valid 3.1, and describing exactly the routes the app serves."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bridge.api.app import create_app, load_openapi
from bridge.api.security import _DEFAULT_SCOPE, PUBLIC_ATTR, SCOPE_ATTR
from bridge.store.store import Store
from tests.api.helpers import Api

METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def app_routes(app: web.Application) -> dict[tuple[str, str], Any]:
    """(method, path template) → handler of every route, without aiohttp's implicit HEADs."""
    out: dict[tuple[str, str], Any] = {}
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        assert path, f"route without a path: {route!r}"
        # /dav is one catch-all route for every WebDAV method (PROPFIND, MKCOL, LOCK, ...),
        # which OpenAPI cannot describe meaningfully; the README documents it instead.
        if path == "/dav" or path.startswith("/dav/"):
            continue
        out[(route.method.lower(), path)] = route.handler
    return out


def doc_operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def test_document_is_valid_openapi_3_1() -> None:
    doc = load_openapi()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_document_and_router_have_the_same_routes(store: Store) -> None:
    documented = set(doc_operations(load_openapi()))
    served = set(app_routes(create_app(store)))
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


def test_every_operation_is_described(store: Store) -> None:
    doc = load_openapi()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["basicAuth"]["scheme"] == "basic"
    assert {next(iter(s)) for s in doc["security"]} == {"bearerAuth", "basicAuth"}
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) >= {"type", "title", "status", "detail", "instance"}
    handlers = app_routes(create_app(store))
    for (method, path), op in doc_operations(doc).items():
        where = f"{method.upper()} {path}"
        assert op.get("summary"), f"{where}: no summary"
        handler = handlers[(method, path)]
        if op.get("security") == []:
            # documented as public: the handler authenticates by itself, if at all
            assert getattr(handler, PUBLIC_ATTR, False), f"{where}: documented public"
            continue
        assert not getattr(handler, PUBLIC_ATTR, False), f"{where}: public but not documented so"
        assert "401" in op["responses"], f"{where}: no 401 response"
        assert any(code < "300" for code in op["responses"]), f"{where}: no success response"
        for segment in path.split("/"):
            if segment.startswith("{"):
                name = segment.strip("{}")
                params = [*doc["paths"][path].get("parameters", []), *op.get("parameters", [])]
                names = {_resolve(doc, p)["name"] for p in params}
                assert name in names, f"{where}: path parameter {name} not described"
        # the scope in the document is the one the guard enforces
        needed = getattr(handler, SCOPE_ATTR, None) or _DEFAULT_SCOPE.get(method.upper(), "write")
        assert op["x-required-scope"] == needed, where
        assert f"Scope: {needed}." in op["description"], where


def _resolve(doc: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in obj:
        node: Any = doc
        for part in obj["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        obj = node
    return obj


async def test_document_is_served(api: Api) -> None:
    served = await api.get("/api/v1/openapi.json")
    assert served == load_openapi()


def test_route_comparison_notices_a_difference(store: Store) -> None:
    async def extra(request: web.Request) -> web.Response:
        return web.Response()

    app = create_app(store)
    app.router.add_post("/api/v1/undocumented/{id}", extra)
    documented = set(doc_operations(load_openapi()))
    assert set(app_routes(app)) - documented == {("post", "/api/v1/undocumented/{id}")}
    doc = load_openapi()
    paths = doc["paths"]
    assert isinstance(paths, dict)
    del paths["/api/v1/submit"]
    assert set(app_routes(create_app(store))) - set(doc_operations(doc)) == {
        ("post", "/api/v1/submit")
    }


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def response_validator(
    doc: dict[str, Any], method: str, path: str, status: int, content_type: str
) -> Draft202012Validator:
    """A validator for the documented body of this operation's response."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:kbridge:openapi", Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    response = doc["paths"][path][method]["responses"][str(status)]
    assert content_type in _resolve(doc, response)["content"], (method, path, status)
    if "$ref" in response:
        base = response["$ref"].removeprefix("#/")
    else:
        base = "/".join(_escape(p) for p in ("paths", path, method, "responses", str(status)))
    pointer = f"{base}/content/{_escape(content_type)}/schema"
    return Draft202012Validator({"$ref": f"urn:kbridge:openapi#/{pointer}"}, registry=registry)


async def test_responses_match_the_document(api: Api) -> None:
    doc = load_openapi()
    roles = await api.roles()

    async def check(method: str, template: str, url: str, **kwargs: Any) -> Any:
        resp = await api.request(method, url, **kwargs)
        body = await resp.json(content_type=None) if await resp.read() else None
        if body is not None:
            response_validator(
                doc, method.lower(), template, resp.status, resp.content_type
            ).validate(body)
        else:
            assert str(resp.status) in doc["paths"][template][method.lower()]["responses"]
        return body

    await check("GET", "/api/v1/store", "/api/v1/store")
    await check("GET", "/api/v1/folders", "/api/v1/folders")
    new = {"name": "Doc", "parent_id": roles["inbox"]}
    folder = await check("POST", "/api/v1/folders", "/api/v1/folders", json=new)
    fpath = f"/api/v1/folders/{folder['id']}"
    await check("GET", "/api/v1/folders/{id}", fpath)
    await check("PATCH", "/api/v1/folders/{id}", fpath, json={"name": "Doc 2"})
    await check("PATCH", "/api/v1/folders/{id}", fpath, json={"name": ""})
    await check("GET", "/api/v1/folders/{id}", "/api/v1/folders/f999999")
    item = await check(
        "POST",
        "/api/v1/folders/{id}/items",
        f"{fpath}/items",
        json={
            "props": {"PidTagSubject": "s", "PidLidBusyStatus": 1},
            "recipients": [{"props": {"PidTagSmtpAddress": "a@example.com"}}],
        },
    )
    ipath = f"/api/v1/items/{item['id']}"
    await check("GET", "/api/v1/folders/{id}/items", f"{fpath}/items", params={"limit": "5"})
    await check("GET", "/api/v1/folders/{id}/changes", f"{fpath}/changes")
    await check("GET", "/api/v1/items/{id}", ipath)
    await check("PATCH", "/api/v1/items/{id}", ipath, json={"props": {"PidTagRead": True}})
    await check("PATCH", "/api/v1/items/{id}", ipath, json={"props": {"PidTagNope": 1}})
    await check("GET", "/api/v1/items/{id}/recipients", f"{ipath}/recipients")
    await check(
        "PUT",
        "/api/v1/items/{id}/recipients",
        f"{ipath}/recipients",
        json=[{"PidTagSmtpAddress": "b@example.com"}],
    )
    await check(
        "POST",
        "/api/v1/items/{id}/attachments",
        f"{ipath}/attachments",
        json={"props": {"PidTagAttachDataBinary": "AAEC"}},
    )
    await check("GET", "/api/v1/items/{id}/attachments", f"{ipath}/attachments")
    await check("GET", "/api/v1/items/{id}/attachments/{num}", f"{ipath}/attachments/0")
    copy = await check(
        "POST", "/api/v1/items/{id}/copy", f"{ipath}/copy", json={"folder_id": roles["drafts"]}
    )
    await check("POST", "/api/v1/submit", "/api/v1/submit", json={"item_id": copy["id"]})
    await check(
        "POST", "/api/v1/items/{id}/move", f"{ipath}/move", json={"folder_id": roles["inbox"]}
    )
    await check("GET", "/api/v1/sync/status", "/api/v1/sync/status")
    await check("POST", "/api/v1/sync/run", "/api/v1/sync/run")
    await check("POST", "/api/v1/sync/offline", "/api/v1/sync/offline", json={"offline": True})
    await check("GET", "/api/v1/tokens", "/api/v1/tokens")
    await check("POST", "/api/v1/tokens", "/api/v1/tokens", json={"name": "t", "scope": "read"})
    await check("DELETE", "/api/v1/tokens/{name}", "/api/v1/tokens/t")
    await check("DELETE", "/api/v1/items/{id}", ipath)
    await check("DELETE", "/api/v1/folders/{id}", fpath)
    await check(
        "GET", "/api/v1/store", "/api/v1/store", headers={"Authorization": "Bearer kb_nope"}
    )
