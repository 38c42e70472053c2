"""The OpenAPI document: valid 3.1, and describing exactly the routes the app serves."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from openapi_spec_validator import validate

from bridge.api.app import create_app, load_openapi
from bridge.api.security import _DEFAULT_SCOPE, SCOPE_ATTR
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
        assert "401" in op["responses"], f"{where}: no 401 response"
        assert any(code < "300" for code in op["responses"]), f"{where}: no success response"
        for segment in path.split("/"):
            if segment.startswith("{"):
                name = segment.strip("{}")
                params = [*doc["paths"][path].get("parameters", []), *op.get("parameters", [])]
                names = {_resolve(doc, p)["name"] for p in params}
                assert name in names, f"{where}: path parameter {name} not described"
        # the scope in the document is the one the guard enforces
        handler = handlers[(method, path)]
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
