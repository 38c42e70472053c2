"""`kbridge serve`: open the store, start the API on the configured address, stop cleanly."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from bridge.api.app import ApiSettings, create_app
from bridge.collector import tune_gc, tune_malloc
from bridge.config import Config, is_loopback
from bridge.datadir import DataDir
from bridge.store.store import Store
from bridge.sync.services import for_config

log = logging.getLogger(__name__)

T = TypeVar("T")


async def ensure_admin_token(store: Store, data_dir: DataDir) -> bool:
    """A new data dir gets an admin token, written to `admin.token` (0600). True if made."""
    if await store.tokens.list():
        return False
    _, secret = await store.tokens.create("admin", "admin")
    data_dir.write_secret(data_dir.admin_token, secret + "\n")
    return True


async def serve(config: Config, *, out: Callable[[str], None] = print) -> None:
    data_dir = DataDir(config.data_dir)
    data_dir.create()
    data_dir.lock()
    store = await Store.open(data_dir.store)
    runner: web.AppRunner | None = None
    sync = for_config(store, config)
    try:
        await ensure_admin_token(store, data_dir)
        settings = ApiSettings(
            allowed_hosts=config.security.allowed_hosts,
            max_request_bytes=config.security.max_request_bytes,
            max_json_bytes=config.security.max_json_bytes,
        )
        runner = web.AppRunner(create_app(store, sync, settings), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, config.listen.host, config.listen.port, shutdown_timeout=2.0)
        await site.start()
        port = _bound_port(runner) or config.listen.port
        host = config.listen.host
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        data_dir.write_server_info({"url": url, "pid": os.getpid()})
        await sync.start()
        if not is_loopback(host):
            log.warning("listening on %s: reachable from other machines", host)
        out(f"kbridge listening on {url}")
        out(f"  data dir:    {data_dir.path}")
        out(f"  admin token: {data_dir.admin_token}")
        upstream = "none (local-only mode)" if config.upstream is None else config.upstream.preset
        out(f"  upstream:    {upstream}")
        await _wait_for_stop()
        out("kbridge stopping")
    finally:
        await sync.stop()
        if runner is not None:
            await runner.cleanup()
        await store.close()
        data_dir.clear_server_info()
        data_dir.release()


def _bound_port(runner: web.AppRunner) -> int | None:
    for server in runner.sites:
        sockets = getattr(getattr(server, "_server", None), "sockets", None) or []
        for sock in sockets:
            return int(sock.getsockname()[1])
    return None


async def _wait_for_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            # Windows: no loop signal handlers; fall back to the process-wide handler.
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    await stop.wait()


def run(config: Config, out: Callable[[str], None] = print) -> None:
    """Run the server until SIGINT/SIGTERM, on uvloop where the platform has it."""
    tune_malloc()
    tune_gc()
    run_loop(serve(config, out=out))


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the server's event loop: uvloop where the platform has it."""
    if sys.platform != "win32":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
