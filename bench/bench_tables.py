"""Table benchmark: views and full-text search on a large store, and notmuch side by side.

    .venv/bin/python bench/bench_tables.py [--messages 1000000] [--notmuch-messages 20000]

Builds (or reuses, cached under bench/out/ by its parameters) a store of --messages
generated messages in the Inbox: realistic subjects, senders, dates, sizes, categories and
a short body, stored as properties without raw sources (the measure is queries, not import).
Measures through the code paths of the REST API (the view manager and the search index
in-process, as bridge/api/views.py and search.py call them; plus a few requests over HTTP
to the aiohttp app), then indexes the first --notmuch-messages of the same kind of messages
with notmuch (a Maildir) and as a separate kbridge store (with raw sources), and compares
indexing rates and query times. Figures are printed next to their targets and written to
bench/out/bench_tables.json; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench_store import (
    CATEGORIES,
    DOMAINS,
    FIRST,
    LAST,
    SPAN_SECONDS,
    SPAN_START,
    SUBJECT_HEADS,
    SUBJECT_PREFIXES,
    SUBJECT_TAILS,
    WORDS,
    MessageFactory,
    _ascii,
)

from bridge.api.views import _rows_json
from bridge.model import flags, tags
from bridge.model.restrictions import parse as parse_restriction
from bridge.store import props as P
from bridge.store.items import NewItem
from bridge.store.search_query import parse as parse_query
from bridge.store.store import Store
from bridge.store.tables import spec as S
from bridge.store.tables.manager import ViewManager
from bridge.store.tables.view import View

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
DEFAULT_JSON = OUT / "bench_tables.json"
BATCH = 5000
SEED = 2024
RUNS = 50
OWNER = 1

TARGETS_MS = {
    "first_page": (10.0, 50.0),  # p50, p99
    "categorized": 100.0,
    "content": 300.0,
    "fts": 50.0,
}
NOTMUCH_RATE_FACTOR = 5.0

# -- deterministic messages without raw sources ---------------------------------------------


class PropsFactory:
    """Messages as properties and a short body, from the pools of bench_store."""

    def __init__(self, seed: int) -> None:
        rng = self.rng = random.Random(seed)
        self.people = [
            (f"{first} {last}", f"{_ascii(first)}.{_ascii(last)}@{rng.choice(DOMAINS)}".lower())
            for first in FIRST
            for last in rng.sample(LAST, 4)
        ]
        self.owner = ("Jana Svobodová", "jana@example.com")
        self.count = 0

    def make(self) -> NewItem:
        rng = self.rng
        self.count += 1
        name, address = rng.choice(self.people)
        subject = (
            rng.choice(SUBJECT_PREFIXES)
            + rng.choice(SUBJECT_HEADS)
            + rng.choice(SUBJECT_TAILS).format(n=rng.randint(100, 9999))
        )
        submitted = SPAN_START + dt.timedelta(seconds=rng.randrange(SPAN_SECONDS))
        delivered = submitted + dt.timedelta(seconds=rng.randint(1, 900))
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40)))
        categories = rng.sample(CATEGORIES, rng.randint(1, 2)) if rng.random() < 0.2 else []
        props: dict[int, Any] = {
            tags.SUBJECT: subject,
            tags.SENDER_NAME: name,
            tags.SENDER_EMAIL_ADDRESS: address,
            tags.SENDER_SMTP_ADDRESS: address,
            tags.SENDER_ADDRTYPE: "SMTP",
            tags.CLIENT_SUBMIT_TIME: submitted,
            tags.MESSAGE_DELIVERY_TIME: delivered,
            tags.INTERNET_MESSAGE_ID: f"<{self.count}.{rng.getrandbits(40):010x}@example.com>",
            tags.BODY: body,
            tags.IMPORTANCE: rng.choice((1, 1, 1, 0, 2)),
            tags.MESSAGE_FLAGS: flags.MSGFLAG_READ if rng.random() < 0.6 else 0,
        }
        return NewItem(
            props=props,
            named={P.KEYWORDS: categories} if categories else {},
            recipients=[
                {
                    tags.RECIPIENT_TYPE: flags.MAPI_TO,
                    tags.DISPLAY_NAME: self.owner[0],
                    tags.SMTP_ADDRESS: self.owner[1],
                    tags.EMAIL_ADDRESS: self.owner[1],
                    tags.ADDRTYPE: "SMTP",
                }
            ],
        )


# -- building the stores ---------------------------------------------------------------------


async def _wait_indexed(store: Store) -> None:
    while not await store.search.wait_current(60.0):
        pass


async def build_store(path: Path, count: int, seed: int) -> dict[str, Any]:
    """The query store: `count` messages in the Inbox, indexed for full-text search."""
    factory = PropsFactory(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    store = await Store.open(path)
    try:
        inbox = store.folders.roles["inbox"]
        t0 = time.perf_counter()
        done = 0
        while done < count:
            items = [factory.make() for _ in range(min(BATCH, count - done))]
            await store.items.create_many(inbox, items)
            done += len(items)
            if done % 100_000 == 0 or done == count:
                print(f"  {done:,} messages, {time.perf_counter() - t0:.0f} s", flush=True)
        inserted = time.perf_counter() - t0
        await _wait_indexed(store)
        total = time.perf_counter() - t0
    finally:
        await store.close()
    return {"messages": count, "insert_s": inserted, "indexed_s": total}


def query_store(messages: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The cached query store for these parameters (built on first use)."""
    where = OUT / f"tables-{messages}-{seed}"
    done = where / "built.json"
    if done.exists():
        return where / "store.sqlite", json.loads(done.read_text(encoding="utf-8"))
    shutil.rmtree(where, ignore_errors=True)
    print(f"building a store of {messages:,} messages in {where} ...", flush=True)
    info = asyncio.run(build_store(where / "store.sqlite", messages, seed))
    done.write_text(json.dumps(info) + "\n", encoding="utf-8")
    return where / "store.sqlite", info


# -- measuring -----------------------------------------------------------------------------

COLUMNS = [tags.SUBJECT, tags.SENDER_NAME, tags.MESSAGE_DELIVERY_TIME, tags.MESSAGE_SIZE]
BY_DATE = [(tags.MESSAGE_DELIVERY_TIME, "desc")]
BY_SENDER_DATE = [(tags.SENDER_NAME, "asc"), (tags.MESSAGE_DELIVERY_TIME, "desc")]
CONTENT = {"content": {"prop": "PidTagSubject", "value": "review", "match": "substring",
                       "ignore_case": True}}  # fmt: skip
CONTENT_NO_INDEX = {"content": {"prop": "PidTagSubject", "value": "eview", "match": "substring",
                                "ignore_case": True}}  # fmt: skip
FTS_QUERIES = {"word": "invoice", "phrase": '"budget review"', "from": "from:anna"}


def _ms(seconds: float) -> float:
    return seconds * 1000


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p99": p99, "max": ordered[-1], "n": len(ordered)}


async def _timed(runs: int, body: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    t0 = time.perf_counter()
    await body()  # warm-up: the first run pays for the page cache (and a search's count)
    first = _ms(time.perf_counter() - t0)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await body()
        samples.append(_ms(time.perf_counter() - t0))
    return {**_stats(samples), "first": first}


class Bench:
    """The figures of one store, through the view manager and the search index."""

    def __init__(self, store: Store, mgr: ViewManager, runs: int) -> None:
        self.store = store
        self.mgr = mgr
        self.runs = runs
        self.inbox = store.folders.roles["inbox"]

    def spec(
        self, keys: list[tuple[int, str]], categories: int = 0, restriction: Any = None
    ) -> S.ViewSpec:
        r = None
        if restriction is not None:
            r = parse_restriction(restriction, S.resolver(self.store.core.named))
        return S.build(COLUMNS, r, keys, categories)

    async def first_page(self, spec: S.ViewSpec) -> tuple[View, list[dict[str, Any]]]:
        """What POST /views + GET /rows?count=50 do: create the view, read 50 rows with
        their properties (bridge/api/views.py)."""
        view = await self.mgr.create(OWNER, self.mgr.contents(self.inbox, False), spec)
        entries, _ = await view.query(50)
        rows = await _rows_json(self.store, view, entries)
        return view, rows

    async def page_once(self, spec: S.ViewSpec) -> None:
        view, rows = await self.first_page(spec)
        assert rows, "the first page is empty"
        self.mgr.release(view.id, OWNER)

    async def views(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        by_date = self.spec(BY_DATE)
        out["first_page"] = await _timed(self.runs, lambda: self.page_once(by_date))
        categorized = self.spec(BY_SENDER_DATE, 2)
        out["categorized"] = await _timed(
            max(5, self.runs // 5), lambda: self.page_once(categorized)
        )
        view, rows = await self.first_page(categorized)
        out["categorized_total"] = view.total
        out["categorized_first_rows"] = [r["row_type"] for r in rows[:4]]
        self.mgr.release(view.id, OWNER)
        content = self.spec(BY_DATE, 0, CONTENT)
        out["content"] = await _timed(max(5, self.runs // 5), lambda: self.page_once(content))
        plain = self.spec(BY_DATE, 0, CONTENT_NO_INDEX)
        out["content_no_index"] = await _timed(3, lambda: self.page_once(plain))
        view, _ = await self.first_page(content)
        out["content_total"] = view.total
        self.mgr.release(view.id, OWNER)
        out["seek_middle"] = await self._seek_middle(by_date)
        out["after_insert"] = await self._after_insert(by_date)
        return out

    async def _seek_middle(self, spec: S.ViewSpec) -> dict[str, float]:
        view, _ = await self.first_page(spec)

        async def seek() -> None:
            view.seek("beginning", view.total // 2)
            entries, _ = await view.query(50)
            await _rows_json(self.store, view, entries)

        try:
            return await _timed(max(5, self.runs // 5), seek)
        finally:
            self.mgr.release(view.id, OWNER)

    async def _after_insert(self, spec: S.ViewSpec) -> dict[str, float]:
        """An item comes into the Inbox while the view is open: the time from its commit
        until the view's first page has been read again (the manager refreshes the view
        from the store's events, then QueryRows)."""
        view, _ = await self.first_page(spec)
        factory = PropsFactory(SEED + 7)
        samples = []
        created: list[int] = []
        try:
            for _ in range(max(5, self.runs // 5)):
                item = factory.make()
                item.props[tags.MESSAGE_DELIVERY_TIME] = dt.datetime.now(dt.UTC)
                created += await self.store.items.create_many(self.inbox, [item])
                t0 = time.perf_counter()
                await self.mgr.catch_up()
                again = await self.mgr.get(view.id, OWNER)
                assert again is not None
                again.seek("beginning", 0)
                entries, _ = await again.query(50)
                rows = await _rows_json(self.store, again, entries)
                samples.append(_ms(time.perf_counter() - t0))
                assert rows[0]["instance_key"], "no first row"
        finally:
            self.mgr.release(view.id, OWNER)
            for iid in created:
                await self.store.items.delete(iid, hard=True)
        return _stats(samples)

    async def fts(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, q in FTS_QUERIES.items():
            query = parse_query(q)

            async def run(query: Any = query) -> None:
                page = await self.store.search.search(query, limit=50)
                assert page.complete

            out[name] = await _timed(self.runs, run)
            page = await self.store.search.search(query, limit=50)
            out[name]["total"] = page.total
        return out


async def http_figures(store: Store, runs: int) -> dict[str, Any]:
    """A few calls over HTTP to the aiohttp app: the same work plus the request overhead."""
    from aiohttp import ClientSession
    from aiohttp.test_utils import TestServer

    from bridge.api.app import create_app

    _, secret = await store.tokens.create(f"bench-{time.time_ns()}", "read")
    server = TestServer(create_app(store), host="127.0.0.1")
    await server.start_server()
    inbox = store.ids.api_id("folder", store.folders.roles["inbox"])
    headers = {"Authorization": f"Bearer {secret}", "Host": "127.0.0.1"}
    base = f"http://127.0.0.1:{server.port}"
    body = {
        "columns": ["PidTagSubject", "PidTagSenderName", "PidTagMessageDeliveryTime"],
        "sort": {"keys": [{"prop": "PidTagMessageDeliveryTime", "order": "desc"}]},
    }
    out: dict[str, Any] = {}
    try:
        async with ClientSession(headers=headers) as http:

            async def first_page() -> None:
                async with http.post(f"{base}/api/v1/folders/{inbox}/views", json=body) as r:
                    assert r.status == 201, await r.text()
                    vid = (await r.json())["id"]
                async with http.get(f"{base}/api/v1/views/{vid}/rows?count=50") as r:
                    assert r.status == 200, await r.text()
                    await r.read()
                async with http.delete(f"{base}/api/v1/views/{vid}") as r:
                    assert r.status == 204

            async def search() -> None:
                async with http.get(f"{base}/api/v1/search?q=invoice&limit=50") as r:
                    assert r.status == 200, await r.text()
                    await r.read()

            out["first_page"] = await _timed(runs, first_page)
            out["fts_word"] = await _timed(runs, search)
    finally:
        await server.close()
    return out


async def query_figures(path: Path, runs: int, http: bool) -> dict[str, Any]:
    store = await Store.open(path)
    try:
        await _wait_indexed(store)
        mgr = await ViewManager.open(store)
        try:
            bench = Bench(store, mgr, runs)
            figures = {"views": await bench.views(), "fts": await bench.fts()}
        finally:
            await mgr.close()
        if http:
            figures["http"] = await http_figures(store, runs)
        return figures
    finally:
        await store.close()


# -- notmuch side by side --------------------------------------------------------------------

NOTMUCH_QUERIES = {"word": "invoice", "phrase": '"budget review"', "from": "from:anna"}


def write_maildir(root: Path, count: int, seed: int) -> list[NewItem]:
    """The first `count` messages of bench_store's factory, as a Maildir and as items (with
    their raw sources) for a kbridge store."""
    factory = MessageFactory(seed)
    items = []
    new = root / "INBOX" / "new"
    for sub in ("new", "cur", "tmp"):
        (root / "INBOX" / sub).mkdir(parents=True, exist_ok=True)
    for n in range(count):
        item, raw = factory.make()
        (new / f"{1700000000 + n}.{n}.bench").write_bytes(raw)
        items.append(item)
    return items


def _notmuch(config: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NOTMUCH_CONFIG": str(config)}
    return subprocess.run(["notmuch", *args], env=env, capture_output=True, check=True)


def notmuch_figures(root: Path, runs: int) -> dict[str, Any]:
    config = root / "notmuch-config"
    config.write_text(
        f"[database]\npath={root}\n\n[user]\nname=Jana Svobodová\n"
        "primary_email=jana@example.com\n\n[new]\ntags=unread;inbox;\nignore=\n\n"
        "[search]\nexclude_tags=\n\n[maildir]\nsynchronize_flags=true\n",
        encoding="utf-8",
    )
    t0 = time.perf_counter()
    _notmuch(config, "new", "--quiet")
    indexed = time.perf_counter() - t0
    count = int(_notmuch(config, "count", "*").stdout.decode().strip())
    out: dict[str, Any] = {"messages": count, "index_s": indexed, "rate": count / indexed}
    for name, q in NOTMUCH_QUERIES.items():
        args = ["search", "--output=messages", "--sort=newest-first", "--limit=50", q]
        _notmuch(config, *args)
        samples = []
        for _ in range(runs):
            t1 = time.perf_counter()
            _notmuch(config, *args)
            samples.append(_ms(time.perf_counter() - t1))
        out[name] = _stats(samples)
        out[name]["total"] = int(_notmuch(config, "count", q).stdout.decode().strip())
    return out


async def kbridge_index(path: Path, items: list[NewItem], runs: int) -> dict[str, Any]:
    """The same messages into a new store: from the first insert until the full-text index
    is ready for a search, then the same queries."""
    store = await Store.open(path)
    try:
        inbox = store.folders.roles["inbox"]
        t0 = time.perf_counter()
        for start in range(0, len(items), 1000):
            await store.items.create_many(inbox, items[start : start + 1000])
        inserted = time.perf_counter() - t0
        await _wait_indexed(store)
        ready = time.perf_counter() - t0
        out: dict[str, Any] = {
            "messages": len(items),
            "insert_s": inserted,
            "index_s": ready,
            "rate": len(items) / ready,
        }
        mgr = await ViewManager.open(store)
        try:
            out.update(await Bench(store, mgr, runs).fts())
        finally:
            await mgr.close()
        return out
    finally:
        await store.close()


def compare(count: int, seed: int, runs: int) -> dict[str, Any]:
    if shutil.which("notmuch") is None:
        return {"skipped": "notmuch is not installed"}
    root = Path(tempfile.mkdtemp(prefix="kbridge-notmuch-"))
    try:
        print(f"writing {count:,} messages as a Maildir ...", flush=True)
        items = write_maildir(root / "mail", count, seed)
        print("notmuch new ...", flush=True)
        nm = notmuch_figures(root / "mail", runs)
        print(f"kbridge: the same {count:,} messages into a new store ...", flush=True)
        kb = asyncio.run(kbridge_index(root / "kbridge" / "store.sqlite", items, runs))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"notmuch": nm, "kbridge": kb}


# -- report ------------------------------------------------------------------------------------


def _mark(ok: bool | None) -> str:
    return {True: "ok", False: "MISSED", None: ""}[ok]


def _f(value: float) -> str:
    return f"{value:,.1f} ms"


def report(fig: dict[str, Any]) -> str:
    v, fts = fig["queries"]["views"], fig["queries"]["fts"]
    http = fig["queries"].get("http", {})
    p50_t, p99_t = TARGETS_MS["first_page"]
    rows: list[tuple[str, str, str, str]] = [
        ("first page, by received date (p50)", _f(v["first_page"]["p50"]), f"< {p50_t:.0f} ms",
         _mark(v["first_page"]["p50"] < p50_t)),
        ("first page, by received date (p99)", _f(v["first_page"]["p99"]), f"< {p99_t:.0f} ms",
         _mark(v["first_page"]["p99"] < p99_t)),
        ("categorized sender > date, first page (p50)", _f(v["categorized"]["p50"]),
         f"< {TARGETS_MS['categorized']:.0f} ms",
         _mark(v["categorized"]["p50"] < TARGETS_MS["categorized"])),
        ("CONTENT substring on subject (p50)", _f(v["content"]["p50"]),
         f"< {TARGETS_MS['content']:.0f} ms", _mark(v["content"]["p50"] < TARGETS_MS["content"])),
        ("  same, needle without a word (no prefilter)", _f(v["content_no_index"]["p50"]), "", ""),
    ]  # fmt: skip
    for name in FTS_QUERIES:
        f = fts[name]
        rows.append((f"FTS {name} {FTS_QUERIES[name]!r} (p50 / p99)",
                     f"{f['p50']:.1f} / {f['p99']:.1f} ms", f"< {TARGETS_MS['fts']:.0f} ms",
                     _mark(f["p99"] < TARGETS_MS["fts"])))  # fmt: skip
        rows.append(("  first run (matches counted, page cache cold)", _f(f["first"]), "", ""))
    rows += [
        ("SeekRow to the middle + 50 rows (p50)", _f(v["seek_middle"]["p50"]), "", ""),
        ("first page again after an insert (p50)", _f(v["after_insert"]["p50"]), "", ""),
    ]
    if http:
        rows += [
            ("HTTP: create view + 50 rows + release (p50)", _f(http["first_page"]["p50"]), "", ""),
            ("HTTP: GET /search?q=invoice (p50)", _f(http["fts_word"]["p50"]), "", ""),
        ]
    rows.append(("peak RSS", f"{fig['peak_rss_mb']:,.0f} MB", "", ""))
    cmp_ = fig.get("notmuch", {})
    if "notmuch" in cmp_:
        nm, kb = cmp_["notmuch"], cmp_["kbridge"]
        ratio = kb["rate"] / nm["rate"]
        rows.append((f"indexing {kb['messages']:,} msgs: kbridge / notmuch",
                     f"{kb['rate']:,.0f} / {nm['rate']:,.0f} msg/s ({ratio:.1f}×)",
                     f"≥ {NOTMUCH_RATE_FACTOR:.0f}×",
                     _mark(ratio >= NOTMUCH_RATE_FACTOR)))  # fmt: skip
        for name in NOTMUCH_QUERIES:
            rows.append((f"  query {name} (p50): kbridge / notmuch",
                         f"{kb[name]['p50']:.1f} / {nm[name]['p50']:.1f} ms",
                         "kbridge ≤ notmuch",
                         _mark(kb[name]["p50"] <= nm[name]["p50"])))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    build = fig["build"]
    lines = [
        f"kbridge table benchmark: {fig['messages']:,} messages in the Inbox (properties and a "
        f"short body, no raw sources; built in {build['indexed_s']:.0f} s incl. full-text "
        f"index{', cached' if fig['cached'] else ''}), {fig['runs']} runs per figure "
        f"(Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs)",
        f"{'figure':<{widths[0]}}  {'value':>{widths[1]}}  {'target':<{widths[2]}}  check",
    ]
    lines += [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip()
              for a, b, c, d in rows]  # fmt: skip
    lines.append(
        f"categorized view: {v['categorized_total']:,} rows; CONTENT 'review': "
        f"{v['content_total']:,} rows; FTS totals: "
        + ", ".join(f"{n} {fts[n]['total']:,}" for n in FTS_QUERIES)
    )
    if "notmuch" in cmp_:
        nm = cmp_["notmuch"]
        lines.append(
            f"notmuch compared on a subset of {nm['messages']:,} messages (it indexes about "
            f"{nm['rate']:,.0f} msg/s, too slow for the full store): the same messages as a "
            "Maildir for `notmuch new` and as a separate kbridge store with raw sources, "
            "timed from the first insert until the full-text index is search-ready; notmuch "
            "query times include starting the notmuch process."
        )
    elif cmp_:
        lines.append(f"notmuch comparison skipped: {cmp_.get('skipped')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--messages", type=int, default=1_000_000, help="messages in the store")
    ap.add_argument("--notmuch-messages", type=int, default=20_000,
                    help="messages for the notmuch comparison (0: skip it)")  # fmt: skip
    ap.add_argument("--runs", type=int, default=RUNS, help="runs per figure (p50/p99)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--no-http", action="store_true", help="skip the HTTP figures")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    args = ap.parse_args(argv)
    if args.messages < 1000 or args.runs < 1 or args.notmuch_messages < 0:
        ap.error("--messages must be at least 1000, --runs positive")
    cached = (OUT / f"tables-{args.messages}-{args.seed}" / "built.json").exists()
    path, build = query_store(args.messages, args.seed)
    print(f"measuring on {path} ...", flush=True)
    queries = asyncio.run(query_figures(path, args.runs, not args.no_http))
    notmuch: dict[str, Any] = {}
    if args.notmuch_messages:
        notmuch = compare(args.notmuch_messages, args.seed, max(10, args.runs // 2))
    figures = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "messages": args.messages,
        "runs": args.runs,
        "seed": args.seed,
        "cached": cached,
        "build": build,
        "queries": queries,
        "notmuch": notmuch,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "targets_ms": TARGETS_MS,
    }
    print()
    print(report(figures))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
