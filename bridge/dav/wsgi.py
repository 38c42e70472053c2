"""A streaming WSGI adapter for aiohttp: runs a WSGI application in a thread pool, feeds
the request body to `wsgi.input` as the application reads it, and writes the response
iterator out chunk by chunk.

Written here because the existing adapters do not fit: aiohttp-wsgi reads the whole
request body into memory (or a spooled temp file) before calling the application and
collects the response the same way, and a2wsgi targets ASGI servers, not aiohttp. A 200 MB
PUT or GET must pass through with only a few chunks in memory, and each read or write
from the worker thread waits for the event loop (backpressure both ways)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade"})


class _Input:
    """`wsgi.input`: reads pull from the aiohttp request body on the event loop."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self._content = request.content
        self._loop = loop

    async def _read(self, size: int) -> bytes:
        if size < 0:
            return await self._content.read()
        parts: list[bytes] = []
        got = 0
        while got < size:
            data = await self._content.read(size - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def read(self, size: int | None = -1) -> bytes:
        return asyncio.run_coroutine_threadsafe(
            self._read(-1 if size is None else size), self._loop
        ).result()

    def readline(self, size: int = -1) -> bytes:
        return asyncio.run_coroutine_threadsafe(self._content.readline(), self._loop).result()

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


class WsgiMount:
    """Serve a WSGI application under a path prefix of an aiohttp app."""

    def __init__(self, app: WsgiApp, prefix: str, workers: int = 8) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wsgi")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def environ(self, request: web.Request, extra: dict[str, Any]) -> dict[str, Any]:
        raw_path = request.raw_path.split("?", 1)[0]
        path = unquote_to_bytes(raw_path).decode("latin-1")
        env: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": self.prefix,
            "PATH_INFO": path[len(self.prefix) :] if path.startswith(self.prefix) else path,
            "QUERY_STRING": request.query_string,
            "SERVER_NAME": request.host.rsplit(":", 1)[0],
            "SERVER_PORT": str(request.url.port or 80),
            "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
            "REMOTE_ADDR": request.remote or "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": request.scheme,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in request.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                env["CONTENT_TYPE"] = value
            elif key == "CONTENT_LENGTH":
                env["CONTENT_LENGTH"] = value
            elif key not in ("TRANSFER_ENCODING",):
                k = "HTTP_" + key
                env[k] = f"{env[k]},{value}" if k in env else value
        env.update(extra)
        return env

    async def handle(self, request: web.Request, extra: dict[str, Any]) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        env = self.environ(request, extra)
        env["wsgi.input"] = _Input(request, loop)
        response: dict[str, web.StreamResponse] = {}
        pending: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            if exc_info and response:
                raise exc_info[1].with_traceback(exc_info[2])
            pending["status"], pending["headers"] = status, headers
            return write

        async def prepare() -> None:
            code, _, reason = pending["status"].partition(" ")
            resp = web.StreamResponse(status=int(code), reason=reason or None)
            for name, value in pending["headers"]:
                lname = name.lower()
                if lname in _HOP_BY_HOP:
                    if lname == "connection" and value.lower() == "close":
                        resp.force_close()
                    continue
                if lname == "content-length":
                    resp.content_length = int(value)
                else:
                    resp.headers.add(name, value)
            await resp.prepare(request)
            response["r"] = resp

        async def send(data: bytes) -> None:
            if "r" not in response:
                await prepare()
            if data:
                await response["r"].write(data)

        def write(data: bytes) -> None:
            asyncio.run_coroutine_threadsafe(send(data), loop).result()

        def run() -> None:
            result = self.app(env, start_response)
            try:
                for chunk in result:
                    if chunk:
                        write(chunk)
                if "r" not in response:
                    write(b"")
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

        try:
            await loop.run_in_executor(self.pool, run)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("WSGI application failed on %s %s", request.method, request.path)
            if "r" not in response:
                return web.Response(status=500, text="internal error\n")
        resp = response["r"]
        await resp.write_eof()
        return resp
