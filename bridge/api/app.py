"""The aiohttp application: middlewares, routes, and the OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import yaml
from aiohttp import web

from bridge.api import (
    attachments,
    calendar,
    events,
    folders,
    items,
    search,
    search_folders,
    status_page,
    system,
    views,
)
from bridge.api.problems import problem_middleware
from bridge.api.security import (
    ALLOWED_HOSTS_KEY,
    LOOPBACK_NAMES,
    SESSIONS_KEY,
    STORE_KEY,
    guard_middleware,
)
from bridge.api.sessions import LoginSessions
from bridge.dav import mount as dav_mount
from bridge.store.store import Store
from bridge.sync.service import SyncService

OPENAPI_KEY = web.AppKey("openapi", dict)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)
    max_request_bytes: int = 64 * 1024 * 1024
    max_json_bytes: int = 16 * 1024 * 1024


# The C loader (when PyYAML has it) reads the document several times faster.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_openapi() -> dict[str, object]:
    text = resources.files("bridge.api").joinpath("openapi.yaml").read_text(encoding="utf-8")
    doc = yaml.load(text, Loader=_YAML_LOADER)
    assert isinstance(doc, dict)
    return doc


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_KEY])


def create_app(
    store: Store, sync: SyncService | None = None, settings: ApiSettings | None = None
) -> web.Application:
    settings = settings or ApiSettings()
    app = web.Application(
        middlewares=[problem_middleware, guard_middleware],
        client_max_size=settings.max_request_bytes,
    )
    app[STORE_KEY] = store
    app[SESSIONS_KEY] = LoginSessions()
    app[system.SYNC_KEY] = sync or SyncService(store)
    app[ALLOWED_HOSTS_KEY] = frozenset(LOOPBACK_NAMES | {h.lower() for h in settings.allowed_hosts})
    app[folders.JSON_LIMIT] = settings.max_json_bytes
    app[items.RAW_LIMIT] = settings.max_request_bytes
    app[OPENAPI_KEY] = load_openapi()
    for module in (folders, items, attachments, events, system, views, search, status_page):
        app.router.add_routes(module.routes)
    app.router.add_routes(search_folders.routes)
    app.router.add_routes(calendar.routes)
    app.router.add_get("/api/v1/openapi.json", openapi)
    views.setup(app)
    dav_mount.setup(app, store, settings.max_request_bytes, app[system.SYNC_KEY])
    app.on_shutdown.append(events.close_streams)
    return app
