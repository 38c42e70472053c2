"""CalDAV upstream adapter benchmark: a private Radicale (or Cyrus, as root) with one
calendar of N events; times PUT, sync-collection, PROPFIND listing and multiget with a few
batch sizes and numbers of batches in flight.

    .venv/bin/python bench/bench_dav_upstream.py [--items 1000] [--server radicale|cyrus]

Prints figures; asserts nothing about time."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.upstream.dav import HttpDavAdapter
from bridge.upstream.dav_base import CALENDAR, DavSettings
from tests.contract.dav_fixtures import event
from tests.servers import cyrus, radicale


async def run(items: int, server_name: str) -> None:
    server = radicale.start() if server_name == "radicale" else cyrus.start()
    try:
        user, password = server.add_user()
        base = DavSettings(server.url, user, password, timeout=120)
        a = HttpDavAdapter(base)
        await a.connect()
        cal = await a.create_collection(CALENDAR, "bench")
        t = time.perf_counter()
        sem = asyncio.Semaphore(4)

        async def put(i: int) -> str:
            async with sem:
                body = event(f"bench-{i}", f"event {i}", "x" * 400)
                return (await a.put(cal, f"e{i}.ics", body, create=True)).href

        hrefs = await asyncio.gather(*(put(i) for i in range(items)))
        dt = time.perf_counter() - t
        print(f"{server_name}: PUT {items} items, 4 at once: {dt:.2f} s ({items / dt:.0f}/s)")
        t = time.perf_counter()
        delta = await a.changes(cal, None)
        print(f"sync-collection (initial): {len(delta.changed)} in {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        listed = await a.listing(cal)
        print(f"PROPFIND depth 1: {len(listed)} in {time.perf_counter() - t:.2f} s")
        await a.close()
        for batch in (50, 200, 500):
            for in_flight in (1, 4):
                b = HttpDavAdapter(
                    DavSettings(
                        server.url,
                        user,
                        password,
                        timeout=120,
                        multiget_batch=batch,
                        max_in_flight=in_flight,
                    )
                )
                await b.connect()
                t = time.perf_counter()
                n = 0
                async for f in b.fetch(cal, hrefs):
                    n += f.data is not None
                dt = time.perf_counter() - t
                print(
                    f"multiget batch {batch:4d}, {in_flight} in flight: {n} items in "
                    f"{dt:.2f} s ({n / dt:.0f}/s)"
                )
                await b.close()
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--server", choices=["radicale", "cyrus"], default="radicale")
    args = p.parse_args()
    asyncio.run(run(args.items, args.server))


if __name__ == "__main__":
    main()
