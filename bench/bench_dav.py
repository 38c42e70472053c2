"""WebDAV benchmark: PROPFIND Depth 1 on a 10,000-item folder, GET of 1,000 items and PUT of
1,000 items against /dav/, compared with wsgidav's own FilesystemProvider serving the same
files through the same server and adapter in the same run.

    .venv/bin/python bench/bench_dav.py [--items 10000] [--requests 1000] [--concurrency 8]

Prints figures (requests/s, latency); asserts nothing about time."""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from wsgidav.fs_dav_provider import FilesystemProvider
from wsgidav.wsgidav_app import WsgiDAVApp

from bridge.api.app import create_app
from bridge.dav.wsgi import WsgiMount
from bridge.model import tags
from bridge.store.items import NewItem
from bridge.store.store import Store

PROPFIND = b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>'


def message(n: int) -> bytes:
    return (
        f"From: sender{n}@example.com\r\nTo: bench@example.com\r\nSubject: Message {n}\r\n"
        f"Message-ID: <{n}@bench.example>\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\n"
        + "Body line.\r\n"
        * 20
    ).encode()


async def fill_store(store: Store, count: int) -> tuple[int, list[str]]:
    folder = await store.folders.create(store.folders.roles["ipm_subtree"], "Bench")
    batch = [
        NewItem(
            props={tags.SUBJECT: f"Message {n}"}, source=message(n), source_type="message/rfc822"
        )
        for n in range(count)
    ]
    ids = await store.items.create_many(folder, batch)
    names = [f"Message {n} [m{iid}].eml" for n, iid in enumerate(ids)]
    return folder, names


def fill_dir(root: Path, count: int) -> list[str]:
    (root / "Bench").mkdir(parents=True)
    names = []
    for n in range(count):
        name = f"Message {n}.eml"
        (root / "Bench" / name).write_bytes(message(n))
        names.append(name)
    return names


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def fs_app(root: Path) -> tuple[web.Application, WsgiMount]:
    config: dict[str, Any] = {
        "provider_mapping": {"/": FilesystemProvider(str(root))},
        "mount_path": "/dav",
        "simple_dc": {"user_mapping": {"*": True}},
        "dir_browser": {"enable": False},
        "verbose": 1,
        "logging": {"enable": False},
        "property_manager": True,
        "lock_storage": True,
        "block_size": 256 * 1024,
    }
    mount = WsgiMount(WsgiDAVApp(config), "/dav")
    app = web.Application()

    async def handler(request: web.Request) -> web.StreamResponse:
        return await mount.handle(request, {})

    app.router.add_route("*", "/dav/{path:.*}", handler)
    return app, mount


async def timed(
    count: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> dict[str, float]:
    latencies: list[float] = []
    queue = iter(range(count))

    async def worker() -> None:
        for n in queue:
            t = time.perf_counter()
            await one(n)
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    total = time.perf_counter() - start
    latencies.sort()
    return {
        "req_per_s": round(count / total, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 2),
    }


async def run_suite(
    label: str, base: str, headers: dict[str, str], names: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers=headers) as http:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            async with http.request(
                "PROPFIND", f"{base}/dav/Bench/", data=PROPFIND, headers={"Depth": "1"}
            ) as resp:
                body = await resp.read()
                assert resp.status == 207, (label, resp.status, body[:300])
            times.append(time.perf_counter() - t)
        responses = body.count(b"response>") // 2
        out["propfind_depth1"] = {
            "members": responses - 1,
            "best_s": round(min(times), 3),
            "median_s": round(statistics.median(times), 3),
            "bytes": len(body),
        }
        sample = names[: args.requests]

        async def get(n: int) -> None:
            async with http.get(f"{base}/dav/Bench/{sample[n]}") as resp:
                await resp.read()
                assert resp.status == 200, (label, resp.status)

        out["get"] = await timed(len(sample), args.concurrency, get)

        async def put(n: int) -> None:
            async with http.put(f"{base}/dav/Bench/new-{n}.eml", data=message(n)) as resp:
                await resp.read()
                assert resp.status in (201, 204), (label, resp.status, await resp.text())

        out["put"] = await timed(args.requests, args.concurrency, put)
    return out


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = await Store.open(root / "store.sqlite")
        _, secret = await store.tokens.create("bench", "admin")
        t = time.perf_counter()
        _, names = await fill_store(store, args.items)
        fs_names = fill_dir(root / "files", args.items)
        print(
            f"setup: {args.items} items in the store and as files in {time.perf_counter() - t:.1f}s"
        )
        kb_runner, kb_url = await serve(create_app(store))
        app, mount = fs_app(root / "files")
        fs_runner, fs_url = await serve(app)
        auth = {"Authorization": "Basic " + base64.b64encode(f"b:{secret}".encode()).decode()}
        try:
            results = {
                "kbridge": await run_suite("kbridge", kb_url, auth, names, args),
                "wsgidav-fs": await run_suite("wsgidav-fs", fs_url, {}, fs_names, args),
            }
        finally:
            await kb_runner.cleanup()
            await fs_runner.cleanup()
            mount.close()
            await store.close()
    kb, fs = results["kbridge"], results["wsgidav-fs"]
    print(f"{'':28}{'kbridge':>14}{'wsgidav-fs':>14}")
    pf_kb, pf_fs = kb["propfind_depth1"], fs["propfind_depth1"]
    print(f"{'PROPFIND d1 members':28}{pf_kb['members']:>14}{pf_fs['members']:>14}")
    print(f"{'PROPFIND d1 best s':28}{pf_kb['best_s']:>14}{pf_fs['best_s']:>14}")
    print(f"{'PROPFIND d1 median s':28}{pf_kb['median_s']:>14}{pf_fs['median_s']:>14}")
    for op in ("get", "put"):
        for key in ("req_per_s", "p50_ms", "p95_ms"):
            print(f"{op.upper() + ' ' + key:28}{kb[op][key]:>14}{fs[op][key]:>14}")
    ratio = pf_kb["best_s"] / pf_fs["best_s"]
    print(f"PROPFIND kbridge / filesystem: {ratio:.2f}x (goal: < 1 s and within 2x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=8)
    asyncio.run(main(parser.parse_args()))
