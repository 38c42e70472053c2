"""Search folder benchmark: what keeping search folders up to date costs writers, and how
fast a search folder is created and read.

    .venv/bin/python bench/bench_search_folders.py [--items 50000] [--folders 5]

Fills a fresh store's Inbox in transactions of 1,000 items (one in 20 with a reminder, so
the Reminders folder has work), first with only the Reminders folder, then with `--folders`
more search folders; then times creating a search folder over the whole Inbox, reading its
first page and a one-item change. Prints the figures;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.model import tags
from bridge.model.named import NamedProp, PSETID_Common
from bridge.store.items import NewItem
from bridge.store.search_folders import Criteria
from bridge.store.store import Store

REMINDER_SET = NamedProp(PSETID_Common, lid=0x8503)
BATCH = 1000


def batch(start: int) -> list[NewItem]:
    out = []
    for n in range(start, start + BATCH):
        named = {REMINDER_SET: True} if n % 20 == 0 else {}
        subject = f"{'budget' if n % 7 == 0 else 'note'} {n}"
        out.append(NewItem(props={tags.SUBJECT: subject}, named=named))
    return out


async def fill(store: Store, inbox: int, start: int, count: int) -> float:
    began = time.perf_counter()
    for first in range(start, start + count, BATCH):
        await store.items.create_many(inbox, batch(first))
    return time.perf_counter() - began


async def run(items: int, folders: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "store.sqlite")
        try:
            inbox = store.folders.roles["inbox"]
            top = store.folders.roles["ipm_subtree"]
            half = items // 2 // BATCH * BATCH or BATCH
            took = await fill(store, inbox, 0, half)
            print(f"{half} items, Reminders only          {half / took:10.0f} items/s")
            for n in range(folders):
                restriction = {
                    "content": {"prop": "PidTagSubject", "value": f"{n}", "match": "substring"}
                }
                await store.search_folders.create(
                    top, f"S{n}", Criteria(restriction, (inbox,), True)
                )
            took = await fill(store, inbox, half, half)
            print(f"{half} items, {folders} more search folders   {half / took:10.0f} items/s")
            began = time.perf_counter()
            budget = {"content": {"prop": "PidTagSubject", "value": "budget", "match": "prefix"}}
            sf = await store.search_folders.create(top, "Budget", Criteria(budget, (inbox,), True))
            print(f"create over {2 * half} items            {time.perf_counter() - began:10.3f} s")
            folder = await store.folders.get(sf)
            print(f"  links {folder.content_count}, unread {folder.unread_count}")
            began = time.perf_counter()
            page, _ = await store.search_folders.list(sf, sort=[(tags.SUBJECT, False)], limit=50)
            print(f"first page of 50 by subject             {time.perf_counter() - began:10.3f} s")
            began = time.perf_counter()
            await store.items.update(page[0].id, {tags.READ: True})
            print(f"one item marked read                    {time.perf_counter() - began:10.3f} s")
            rem = await store.folders.get(store.folders.roles["reminders"])
            print(f"Reminders: {rem.content_count} links")
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--folders", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.items, args.folders))


if __name__ == "__main__":
    main()
