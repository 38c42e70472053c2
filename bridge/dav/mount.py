"""`/dav/`: the wsgidav application over the store, mounted in the aiohttp app on the same
port. The guard middleware has already checked the token and its scope; wsgidav's own
authentication is off."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from wsgidav.error_printer import ErrorPrinter
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from bridge.dav.locks import StoreLockStorage
from bridge.dav.provider import VISIBLE_KEY, StoreProvider
from bridge.dav.reader import Reader
from bridge.dav.wsgi import WsgiMount
from bridge.store.store import Store
from bridge.sync.service import SyncService

PREFIX = "/dav"
BLOCK_SIZE = 256 * 1024


class DavMount:
    def __init__(self, store: Store, max_buffered: int) -> None:
        self.reader = Reader(store.core.path)
        self.provider = StoreProvider(store, self.reader, max_buffered)
        locks = StoreLockStorage(self.reader, self._persist_lock)
        config: dict[str, Any] = {
            "provider_mapping": {"/": self.provider},
            "mount_path": PREFIX,
            "lock_storage": locks,
            "property_manager": None,
            "middleware_stack": [ErrorPrinter, RequestResolver],
            # The guard middleware authenticates; wsgidav's own authenticator is not in the
            # middleware stack.
            "http_authenticator": {"domain_controller": None, "accept_basic": False},
            "simple_dc": {"user_mapping": {"*": True}},
            "dir_browser": {"enable": False},
            "block_size": BLOCK_SIZE,
            "add_header_MS_Author_Via": True,
            "verbose": 1,
            "logging": {"enable": False, "enable_loggers": []},
        }
        self.app = WsgiDAVApp(config)
        self.wsgi = WsgiMount(self.app, PREFIX)

    def _persist_lock(self, key: str, value: str | None) -> None:
        self.provider.write(self.provider.store.dav.put_lock_entry(key, value))

    def close(self) -> None:
        self.wsgi.close()
        self.reader.close()


DAV_KEY = web.AppKey("dav", DavMount)


async def dav_handler(request: web.Request) -> web.StreamResponse:
    from bridge.api.security import visible_folders

    mount = request.app[DAV_KEY]
    if request.path == PREFIX:
        raise web.HTTPMovedPermanently(PREFIX + "/")
    visible = await visible_folders(request)
    return await mount.wsgi.handle(request, {VISIBLE_KEY: visible})


def setup(
    app: web.Application, store: Store, max_buffered: int, sync: SyncService | None = None
) -> None:
    """Register `/dav` and `/dav/...` and tie the mount's threads to the app's lifetime."""
    mount = DavMount(store, max_buffered)
    mount.provider.sync = sync
    app[DAV_KEY] = mount

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        mount.provider.loop = asyncio.get_running_loop()
        yield
        await asyncio.to_thread(mount.close)

    app.cleanup_ctx.append(lifetime)
    app.router.add_route("*", PREFIX, dav_handler)
    app.router.add_route("*", PREFIX + "/{path:.*}", dav_handler)


logging.getLogger("wsgidav").setLevel(logging.WARNING)
