"""CalDAV/CardDAV sync benchmark: the bridge's DAV engine against vdirsyncer, both syncing the
same Radicale account (one calendar of N events, a share of them recurring with an
exception, and one address book of M contacts).

    .venv/bin/python bench/bench_dav_sync.py [--events 10000] [--contacts 5000] [--json FILE]

Radicale is seeded by writing the resources straight into its storage folder, then warmed
up (its item cache built) before anything is timed. Measured, for each client: the initial
sync into an empty local copy and a second sync with nothing changed (for the bridge: in
the same session, so between full listings it asks for last-modified only, see
bridge/upstream/dav_marks.py; and again in a new session, which reads every CTag, as after
a restart or every 10 minutes: the first such also lists each collection once, because
the initial sync read no CTags, and then a later one). Also measured, as the floor of the
initial sync (the time the server alone needs to answer, answers dropped unparsed): a bare
client asking each collection for everything in one query, as the bridge's first pull does
(`DavAdapter.fetch_all`), and one that lists the collections and multigets every member in
the bridge's batches and requests in flight (its fallback). Figures are printed next to
their goals (bridge ≥ 2× faster initial sync, ≥ 20× faster no-change resync) and
written as JSON (default bench/out/bench_dav_sync.json); nothing is asserted.

Radicale's config is the tests' one plus `[reporting] max_expand_occurrence` raised from
10,000: Radicale 3.9 answers 400 to a REPORT that would carry more VEVENTs than that, and
vdirsyncer asks for all new resources of a collection in one calendar-multiget (10,000
events, a tenth with a moved occurrence: 11,000 VEVENTs), and the bridge's first pull asks
for a whole collection in one calendar-query (on a server with the default limit it is
refused and the bridge falls back to listing and multigets in batches of 500). The raised
limit is the same server for both clients.
Both run beside Radicale on the same machine (the bridge parses in worker processes: one
on two cores once a collection's data has all arrived, as after the one query of a first
pull; while multigets are still answered, only with three cores or more).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.collector import tune_gc, tune_malloc
from bridge.server import run_loop
from bridge.store.store import Store
from bridge.sync.dav_service import DavEndpoint, DavOptions, DavRunner
from bridge.upstream import dav_href
from bridge.upstream import dav_xml as X
from bridge.upstream.dav import HttpDavAdapter
from bridge.upstream.dav_base import ADDRESSBOOK, CALENDAR, DavSettings
from tests.servers import cyrus, radicale

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "out" / "bench_dav_sync.json"
GOAL_INITIAL = 2.0  # bridge at least this many times faster
GOAL_RESYNC = 20.0
RECURRING_EVERY = 10  # one event in ten is a weekly series with one moved occurrence
VDIRSYNCER = Path(sys.executable).with_name("vdirsyncer")
# Radicale (3.9) refuses, with 400, a REPORT whose answer holds more than
# `max_expand_occurrence` VEVENTs (10,000 by default). vdirsyncer asks for every new
# resource of a collection in one calendar-multiget, and 10,000 events of which 1,000 carry
# a moved occurrence are 11,000 VEVENTs; the bridge asks in batches of 500. The limit is
# raised for this server, so for both clients alike.
RADICALE_CONFIG = """
[reporting]
max_expand_occurrence = 1000000
"""

WORDS = (
    "Budget review", "Standup", "Design sync", "Customer call", "Lunch", "Dentist",
    "Planning", "Retrospective", "Interview", "Workshop", "Release", "1:1",
)  # fmt: skip
NAMES = ("Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hans", "Ines", "Jan")
LAST = ("Meyer", "Novak", "Olsen", "Petit", "Quinn", "Rossi", "Schulz", "Tanaka", "Ueda")


def event(i: int) -> bytes:
    day = i % 365
    month, mday = 1 + day // 31 % 12, 1 + day % 28
    start = f"2027{month:02d}{mday:02d}T{8 + i % 9:02d}0000Z"
    summary = f"{WORDS[i % len(WORDS)]} #{i}"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//kbridge bench//EN",
        "BEGIN:VEVENT",
        f"UID:bench-event-{i}@example.com",
        "DTSTAMP:20260101T000000Z",
        f"DTSTART:{start}",
        "DURATION:PT1H",
        f"SUMMARY:{summary}",
        f"LOCATION:Room {i % 40}",
        f"DESCRIPTION:Agenda item {i}: notes for the meeting, line one.",
    ]
    recurring = i % RECURRING_EVERY == 0
    if recurring:
        lines.append("RRULE:FREQ=WEEKLY;COUNT=20")
    lines.append("END:VEVENT")
    if recurring:
        moved = f"2027{month:02d}{mday:02d}T{8 + i % 9:02d}0000Z"
        lines += [
            "BEGIN:VEVENT",
            f"UID:bench-event-{i}@example.com",
            "DTSTAMP:20260101T000000Z",
            f"RECURRENCE-ID:{moved[:6]}{min(28, mday + 7):02d}{moved[8:]}",
            f"DTSTART:{moved[:6]}{min(28, mday + 8):02d}{moved[8:]}",
            "DURATION:PT1H",
            f"SUMMARY:{summary} (moved)",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def contact(i: int) -> bytes:
    first, last = NAMES[i % len(NAMES)], LAST[i // len(NAMES) % len(LAST)]
    return (
        "BEGIN:VCARD\r\nVERSION:3.0\r\n"
        f"UID:bench-contact-{i}@example.com\r\nFN:{first} {last} {i}\r\n"
        f"N:{last} {i};{first};;;\r\nEMAIL;TYPE=work:{first.lower()}.{i}@example.com\r\n"
        f"TEL;TYPE=cell:+49 170 {i:07d}\r\nORG:Example {i % 50}\r\nEND:VCARD\r\n"
    ).encode()


async def seed(
    server: radicale.Radicale, settings: DavSettings, events: int, contacts: int
) -> None:
    """Make the two collections through the server, fill them straight on disk, and warm
    Radicale's caches (listing, sync-collection, a full multiget) before timing."""
    adapter = HttpDavAdapter(settings)
    await adapter.connect()
    try:
        cal = await adapter.create_collection(CALENDAR, "Calendar")
        book = await adapter.create_collection(ADDRESSBOOK, "Contacts")
        root = server.root / "collections" / "collection-root" / settings.username
        for coll, count, make, ext in (
            (cal, events, event, "ics"),
            (book, contacts, contact, "vcf"),
        ):
            folder = root / dav_href.last_segment(coll.href)
            for i in range(count):
                (folder / f"r{i}.{ext}").write_bytes(make(i))
        for coll in (cal, book):
            members = await adapter.listing(coll)
            await adapter.changes(coll, None)
            async for _ in adapter.fetch(coll, [m.href for m in members]):
                pass
    finally:
        await adapter.close()


async def seed_by_put(settings: DavSettings, events: int, contacts: int) -> None:
    """For a server whose storage is not plain files (Cyrus): PUT every resource."""
    adapter = HttpDavAdapter(settings)
    await adapter.connect()
    try:
        cal = await adapter.create_collection(CALENDAR, "Calendar")
        book = await adapter.create_collection(ADDRESSBOOK, "Contacts")
        jobs = [(cal, f"r{i}.ics", event(i)) for i in range(events)]
        jobs += [(book, f"r{i}.vcf", contact(i)) for i in range(contacts)]
        gate = asyncio.Semaphore(8)

        async def put(job: tuple[Any, str, bytes]) -> None:
            async with gate:
                await adapter.put(job[0], job[1], job[2], create=True)

        await asyncio.gather(*(put(j) for j in jobs))
    finally:
        await adapter.close()


def _runner(store: Store, settings: DavSettings) -> DavRunner:
    """The bridge's CalDAV and CardDAV sync of the account, as `kbridge serve` sets it up."""
    return DavRunner(
        store,
        [DavEndpoint("caldav", settings), DavEndpoint("carddav", settings)],
        DavOptions(),
        adapter_factory=HttpDavAdapter,
    )


async def bridge_sync(settings: DavSettings, work: Path) -> dict[str, Any]:
    store = await Store.open(work / "bridge" / "store.sqlite")
    try:
        runner = _runner(store, settings)
        try:
            t = time.perf_counter()
            await runner.run(strict=True)
            initial = time.perf_counter() - t
            status = runner.status()
            t = time.perf_counter()
            await runner.run(strict=True)
            resync = time.perf_counter() - t
            again = runner.status()
        finally:
            await runner.close()
        # A new session (as after a restart): discovery, then the CTags of every collection
        # are read, which the runs in between full listings leave out (upstream/dav_marks.py).
        # The first one after the initial sync also lists each collection once: the initial
        # sync read no CTags, and a CTag now must be checked against the members.
        sessions = []
        for _ in range(2):
            runner = _runner(store, settings)
            try:
                t = time.perf_counter()
                await runner.run(strict=True)
                sessions.append(time.perf_counter() - t)
            finally:
                await runner.close()
        first_session, new_session = sessions
        async with store.core.reader.execute("SELECT count(*) FROM items") as cur:
            row = await cur.fetchone()
        items = int(row[0]) if row else 0
    finally:
        await store.close()
    paths = [
        p for s in status.values() for p in ((s["last_run"] or {}).get("paths") or {}).values()
    ]
    fetched = sum(int((s["last_run"] or {}).get("fetched", 0)) for s in status.values())
    refetched = sum(int((s["last_run"] or {}).get("fetched", 0)) for s in again.values())
    return {
        "initial_s": initial,
        "resync_s": resync,
        "resync_new_session_s": new_session,
        "resync_first_new_session_s": first_session,
        "items": items,
        "fetched": fetched,
        "resync_fetched": refetched,
        "paths": paths,
    }


# The bridge's sync runs in a process of its own started as `kbridge` is: from a main module
# that imports nothing more (here, `python -c`). A worker process that parses for it then
# starts with what the fork server preloaded, as under `kbridge serve`, instead of first
# importing this benchmark (its main module), which is about 0.8 s of CPU per worker at
# the moment the server is busy answering the first query.
_CHILD = """
import json, sys
sys.path[:0] = [{bench!r}, {root!r}]
from bench_dav_sync import bridge_child
bridge_child(sys.argv[1:])
"""


def bridge_in_a_process(settings: DavSettings, work: Path) -> dict[str, Any]:
    code = _CHILD.format(bench=str(HERE), root=str(HERE.parent))
    args = [settings.url, settings.username, settings.password, str(work)]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the bridge's sync failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def bridge_child(argv: list[str]) -> None:
    """In the child process: the bridge's syncs, with the memory settings and on the event
    loop of `kbridge serve`; the figures go to stdout as one JSON line."""
    url, user, password, work = argv
    tune_malloc()
    tune_gc()
    settings = DavSettings(url, user, password, timeout=600)
    print(json.dumps(run_loop(bridge_sync(settings, Path(work)))), flush=True)


async def bare_multiget(settings: DavSettings) -> dict[str, Any]:
    """The floor: what Radicale alone needs to answer. Lists every collection and multigets
    all members in batches as the bridge asks (the adapter's batch size and requests in
    flight), reading each answer whole and dropping it unparsed."""
    adapter = HttpDavAdapter(settings)
    size = max(1, settings.multiget_batch)
    count = received = 0

    gate = asyncio.Semaphore(max(1, settings.max_in_flight))

    async def multiget(href: str, addressbook: bool, batch: list[str]) -> None:
        nonlocal received
        async with gate:
            body = X.multiget(addressbook, batch)
            answer = await adapter.http.request("REPORT", href, body=body)
        if answer.status != 207:
            raise RuntimeError(f"REPORT {href}: {answer.status}")
        received += len(answer.body)

    t = time.perf_counter()
    await adapter.connect()
    try:
        for coll in await adapter.collections():
            href = dav_href.as_collection(coll.href)
            members = [m.href for m in await adapter.listing(coll)]
            count += len(members)
            book = coll.kind == ADDRESSBOOK
            batches = [members[i : i + size] for i in range(0, len(members), size)]
            await asyncio.gather(*(multiget(href, book, b) for b in batches))
    finally:
        await adapter.close()
    return {"initial_s": time.perf_counter() - t, "items": count, "bytes": received}


async def bare_query(settings: DavSettings) -> dict[str, Any]:
    """The floor of the bridge's first pull: each collection asked for every member with
    its data in one calendar-query / addressbook-query (as the adapter's `fetch_all`), the
    answer read whole and dropped unparsed."""
    adapter = HttpDavAdapter(settings)
    count = received = 0
    t = time.perf_counter()
    await adapter.connect()
    try:
        for coll in await adapter.collections():
            href = dav_href.as_collection(coll.href)
            body = X.query_all(coll.kind == ADDRESSBOOK)
            answer = await adapter.http.request(
                "REPORT", href, body=body, headers={"Depth": "1"}, limit=1 << 30
            )
            if answer.status != 207:
                raise RuntimeError(f"REPORT {href}: {answer.status}")
            received += len(answer.body)
            count += answer.body.count(b"getetag>") // 2
    finally:
        await adapter.close()
    return {"initial_s": time.perf_counter() - t, "items": count, "bytes": received}


VDIR_CONFIG = """\
[general]
status_path = "{work}/status/"

[pair cal]
a = "cal_remote"
b = "cal_local"
collections = ["from a"]

[storage cal_remote]
type = "caldav"
url = "{url}"
username = "{user}"
password = "{password}"

[storage cal_local]
type = "filesystem"
path = "{work}/cal/"
fileext = ".ics"

[pair card]
a = "card_remote"
b = "card_local"
collections = ["from a"]

[storage card_remote]
type = "carddav"
url = "{url}"
username = "{user}"
password = "{password}"

[storage card_local]
type = "filesystem"
path = "{work}/card/"
fileext = ".vcf"
"""


def vdirsyncer_sync(settings: DavSettings, work: Path) -> dict[str, Any]:
    base = work / "vdirsyncer"
    base.mkdir()
    config = base / "config"
    config.write_text(
        VDIR_CONFIG.format(
            work=base.as_posix(),
            url=settings.url,
            user=settings.username,
            password=settings.password,
        )
    )
    env = {**os.environ, "VDIRSYNCER_CONFIG": str(config)}

    def run(*args: str, stdin: str = "") -> float:
        t = time.perf_counter()
        proc = subprocess.run(
            [str(VDIRSYNCER), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=3600,
            check=False,
        )
        took = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError(f"vdirsyncer {' '.join(args)}: {proc.stderr[-2000:]}")
        return took

    discover = run("discover", stdin="y\n" * 20)
    initial = run("sync")
    resync = run("sync")
    items = sum(1 for p in base.rglob("*") if p.suffix in (".ics", ".vcf"))
    return {"discover_s": discover, "initial_s": initial, "resync_s": resync, "items": items}


def report(fig: dict[str, Any]) -> str:
    b, v, bare, query = fig["bridge"], fig["vdirsyncer"], fig["bare_multiget"], fig["bare_query"]
    n = fig["events"] + fig["contacts"]
    floor = (
        f"floor (the server answering, data dropped): one query per collection, as the "
        f"bridge's first pull: {query['initial_s']:.2f} s for {query['items']} items, "
        f"{query['bytes'] / 1e6:.1f} MB "
        f"(bridge / floor {b['initial_s'] / query['initial_s']:.2f}x);"
        f"\n  listing + multiget batches, the fallback: {bare['initial_s']:.2f} s for "
        f"{bare['items']} items, {bare['bytes'] / 1e6:.1f} MB\n"
        f"bridge paths: {', '.join(sorted(set(b.get('paths', []))))}"
    )
    if "error" in v:
        return (
            f"DAV sync: {fig['events']} events, {fig['contacts']} contacts\n"
            f"bridge: initial {b['initial_s']:.2f} s ({n / b['initial_s']:.0f} items/s), "
            f"no-change resync {b['resync_s']:.3f} s, {b['items']} items\n"
            f"{floor}\n"
            f"vdirsyncer failed: {v['error']}"
        )
    init_ratio = v["initial_s"] / b["initial_s"] if b["initial_s"] else float("inf")
    re_ratio = v["resync_s"] / b["resync_s"] if b["resync_s"] else float("inf")
    new_ratio = v["resync_s"] / b["resync_new_session_s"] if b["resync_new_session_s"] else 0.0
    first = b["resync_first_new_session_s"]
    first_ratio = v["resync_s"] / first if first else 0.0
    fig["ratio_initial"], fig["ratio_resync"] = init_ratio, re_ratio
    fig["ratio_resync_new_session"] = new_ratio
    mark = {True: "ok", False: "MISSED"}
    rows = [
        f"DAV sync: {fig['events']} events ({fig['events'] // RECURRING_EVERY} recurring), "
        f"{fig['contacts']} contacts; "
        + (f"Radicale {fig['radicale']}" if fig["server"] == "radicale" else "Cyrus")
        + ", "
        f"vdirsyncer {fig['vdirsyncer_version']}",
        "",
        f"{'':24}{'bridge':>12}{'vdirsyncer':>12}{'ratio':>9}  goal",
        f"{'initial sync (s)':24}{b['initial_s']:12.2f}{v['initial_s']:12.2f}{init_ratio:8.1f}x"
        f"  ≥ {GOAL_INITIAL:.0f}x {mark[init_ratio >= GOAL_INITIAL]}",
        f"{'initial items/s':24}{n / b['initial_s']:12.0f}{n / v['initial_s']:12.0f}",
        f"{'no-change resync (s)':24}{b['resync_s']:12.3f}{v['resync_s']:12.3f}{re_ratio:8.1f}x"
        f"  ≥ {GOAL_RESYNC:.0f}x {mark[re_ratio >= GOAL_RESYNC]}",
        f"{'  at a new session (s)':24}{b['resync_new_session_s']:12.3f}{v['resync_s']:12.3f}"
        f"{new_ratio:8.1f}x  (discovery and every CTag read)",
        f"{'  the first such (s)':24}{b['resync_first_new_session_s']:12.3f}{v['resync_s']:12.3f}"
        f"{first_ratio:8.1f}x  (and each collection listed once, to check it)",
        f"{'items in the copy':24}{b['items']:12d}{v['items']:12d}",
        f"(vdirsyncer discover, not timed above: {v['discover_s']:.2f} s; bridge resync "
        f"fetched {b['resync_fetched']} items)",
        floor,
    ]
    return "\n".join(rows)


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[-1].split()[-1]
    except (OSError, IndexError):
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--contacts", type=int, default=5000)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument(
        "--server",
        choices=("radicale", "cyrus"),
        default="radicale",
        help="cyrus needs root and Debian's cyrus-caldav; it is seeded by PUT",
    )
    args = ap.parse_args(argv)
    server: Any = radicale.start(RADICALE_CONFIG) if args.server == "radicale" else cyrus.start()
    try:
        user, password = server.add_user()
        settings = DavSettings(server.url, user, password, timeout=600)
        with tempfile.TemporaryDirectory(prefix="kbridge-bench-dav-") as tmp:
            work = Path(tmp)
            t = time.perf_counter()
            if args.server == "radicale":
                asyncio.run(seed(server, settings, args.events, args.contacts))
            else:
                asyncio.run(seed_by_put(settings, args.events, args.contacts))
            seeded = time.perf_counter() - t
            bridge = bridge_in_a_process(settings, work)
            bare = asyncio.run(bare_multiget(settings))
            query = asyncio.run(bare_query(settings))
            try:
                vdir = vdirsyncer_sync(settings, work)
            except RuntimeError as exc:  # reported, the bridge's figures still count
                vdir = {"error": str(exc)[-600:]}
    finally:
        server.stop()
    fig: dict[str, Any] = {
        "events": args.events,
        "contacts": args.contacts,
        "seed_and_warm_s": seeded,
        "bridge": bridge,
        "bare_multiget": bare,
        "bare_query": query,
        "vdirsyncer": vdir,
        "server": args.server,
        "radicale": _version([sys.executable, "-m", "radicale", "--version"]),
        "vdirsyncer_version": _version([str(VDIRSYNCER), "--version"]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    print(report(fig))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(fig, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
