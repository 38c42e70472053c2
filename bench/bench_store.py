"""Store benchmark: bulk insert, raw import, server cold start, memory, first page listing.

    .venv/bin/python bench/bench_store.py [--count 100000] [--batch 1000] [--dir DIR]

Generates realistic messages deterministically, inserts them through the store API, then
starts `kbridge serve` on the result and measures start time, memory and a first listing.
Figures are printed next to their targets and written as JSON (default
bench/out/bench_store.json); nothing is asserted. Without --dir the data lives in a temporary
directory that is removed at the end; with --dir it is kept (the directory must not hold a
store yet).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import http.client
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.datadir import DataDir
from bridge.model import flags, tags
from bridge.server import ensure_admin_token
from bridge.store import props as P
from bridge.store.items import NewItem
from bridge.store.rfc822 import item_from_rfc822
from bridge.store.store import Store

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "out" / "bench_store.json"

TARGET_INSERT = 5000.0  # items/s
TARGET_START = 1.0  # s
TARGET_RSS = 100.0  # MB
START_RUNS = 3
LIST_RUNS = 20
STOP_TIMEOUT = 5.0
READY_TIMEOUT = 60.0
LIST_PATH = "/api/v1/folders/{inbox}/items?sort=-PidTagMessageDeliveryTime&limit=50"

# -- deterministic message generation ------------------------------------------------------

FIRST = (
    "Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hans", "Ines", "Jan",
    "Katrin", "Lukas", "Marie", "Noah", "Olga", "Paul", "Rita", "Stefan", "Tereza", "Uwe",
    "Jürgen", "Zoë", "Łukasz", "Søren", "Renée",
)  # fmt: skip
LAST = (
    "Novák", "Müller", "Schmidt", "Dvořák", "Smith", "Jones", "Brown", "Fischer", "Weber",
    "Horák", "Martin", "Bernard", "Rossi", "Bianchi", "Kowalski", "Nielsen", "Taylor",
)  # fmt: skip
DOMAINS = (
    "example.com", "example.org", "example.net", "corp.example", "mail.example.cz",
    "lists.example.org", "partner.example.de",
)  # fmt: skip
SUBJECT_HEADS = (
    "Quarterly report", "Meeting notes", "Invoice", "Project status", "Travel plans",
    "Budget review", "Release schedule", "Customer feedback", "Contract draft",
    "Team lunch", "Server maintenance", "Hiring update", "Training session", "Offer",
    "Order confirmation", "Weekly newsletter", "Security notice", "Design review",
)  # fmt: skip
SUBJECT_TAILS = (
    "", " for Q3", " – please review", " (updated)", " next week", " – action needed",
    " #{n}", " and next steps", " – final", " tomorrow", " ref. {n}",
)  # fmt: skip
SUBJECT_PREFIXES = ("", "", "", "", "Re: ", "Re: ", "Fwd: ", "AW: ")
CATEGORIES = ("Red Category", "Blue Category", "Work", "Personal", "Follow up", "Projects")
TEXT = (
    "the project team will review the numbers before the meeting and send a short summary "
    "to everyone involved please let me know if the proposed date works for you we still "
    "need the signed contract and the updated budget figures from finance thanks for the "
    "quick reply the customer asked about delivery times and the new pricing model I have "
    "attached nothing but described the changes below so that we can discuss them on "
    "Thursday další schůzka bude v pondělí ráno, prosím potvrďte účast danke für die "
    "schnelle Antwort wir melden uns nächste Woche the server maintenance window starts at "
    "ten and should be over by noon all mailboxes remain available during the upgrade"
)
WORDS = TEXT.split()
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SPAN_START = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
SPAN_SECONDS = 2 * 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    address: str
    header: str  # the name and address as an RFC 5322 mailbox (RFC 2047 words if needed)


def _mailbox(name: str, address: str) -> str:
    if name.isascii():
        return f'"{name}" <{address}>'
    encoded = base64.b64encode(name.encode("utf-8")).decode("ascii")
    return f"=?utf-8?b?{encoded}?= <{address}>"


def _rfc5322_date(when: dt.datetime) -> str:
    return (
        f"{DAYS[when.weekday()]}, {when.day:02d} {MONTHS[when.month - 1]} {when.year} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} +0000"
    )


def _wrap(words: list[str], width: int = 72) -> list[str]:
    lines: list[str] = []
    line: list[str] = []
    size = 0
    for word in words:
        if size + len(word) + 1 > width and line:
            lines.append(" ".join(line))
            line, size = [], 0
        line.append(word)
        size += len(word) + 1
    if line:
        lines.append(" ".join(line))
    return lines


class MessageFactory:
    """Realistic messages from small pools, the same sequence for the same seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.people = [
            Person(
                f"{first} {last}",
                address := f"{_ascii(first)}.{_ascii(last)}@{rng.choice(DOMAINS)}".lower(),
                _mailbox(f"{first} {last}", address),
            )
            for first in FIRST
            for last in rng.sample(LAST, 4)
        ]
        self.owner = Person(
            "Jana Svobodová", "jana@example.com", _mailbox("Jana Svobodová", "jana@example.com")
        )
        # Text is cut from one long deterministic corpus: cheap, and varied enough.
        corpus_lines = _wrap([rng.choice(WORDS) for _ in range(12000)])
        self.corpus = "\r\n".join(corpus_lines) + "\r\n"
        self.filler = "\r\n".join("> " + line for line in corpus_lines) + "\r\n"
        self.count = 0

    def _text(self, length: int) -> str:
        start = self.rng.randrange(0, len(self.corpus) - length - 1)
        start = self.corpus.index("\r\n", start) + 2
        return self.corpus[start : start + length].rsplit(" ", 1)[0] + "\r\n"

    def make(self) -> tuple[NewItem, bytes]:
        """One message: the item as a sync would store it (props + raw source) and the raw."""
        rng = self.rng
        self.count += 1
        n = self.count
        sender = rng.choice(self.people)
        rcpts = [self.owner, *rng.sample(self.people, rng.randint(0, 2))]
        subject = (
            rng.choice(SUBJECT_PREFIXES)
            + rng.choice(SUBJECT_HEADS)
            + rng.choice(SUBJECT_TAILS).format(n=rng.randint(100, 9999))
        )
        submitted = SPAN_START + dt.timedelta(seconds=rng.randrange(SPAN_SECONDS))
        delivered = submitted + dt.timedelta(seconds=rng.randint(1, 900))
        body = self._text(rng.randint(200, 2000))
        categories = rng.sample(CATEGORIES, rng.randint(1, 2)) if rng.random() < 0.2 else []
        read = rng.random() < 0.6
        domain = sender.address.rsplit("@", 1)[1]
        message_id = f"<{n}.{rng.getrandbits(48):012x}@{domain}>"
        raw = self._raw(
            n, sender, rcpts, subject, submitted, delivered, body, categories, message_id
        )
        props: dict[int, Any] = {
            tags.SUBJECT: subject,
            tags.SENDER_NAME: sender.name,
            tags.SENDER_EMAIL_ADDRESS: sender.address,
            tags.SENDER_SMTP_ADDRESS: sender.address,
            tags.SENDER_ADDRTYPE: "SMTP",
            tags.SENT_REPRESENTING_NAME: sender.name,
            tags.SENT_REPRESENTING_SMTP_ADDRESS: sender.address,
            tags.CLIENT_SUBMIT_TIME: submitted,
            tags.MESSAGE_DELIVERY_TIME: delivered,
            tags.INTERNET_MESSAGE_ID: message_id,
            tags.BODY: body,
            tags.IMPORTANCE: 1,
            tags.MESSAGE_FLAGS: flags.MSGFLAG_READ if read else 0,
        }
        recipients = [
            {
                tags.RECIPIENT_TYPE: flags.MAPI_TO if i < 2 else flags.MAPI_CC,
                tags.DISPLAY_NAME: r.name,
                tags.EMAIL_ADDRESS: r.address,
                tags.SMTP_ADDRESS: r.address,
                tags.ADDRTYPE: "SMTP",
            }
            for i, r in enumerate(rcpts)
        ]
        item = NewItem(
            props=props,
            named={P.KEYWORDS: categories} if categories else {},
            recipients=recipients,
            source=raw,
            source_type="message/rfc822",
        )
        return item, raw

    def _raw(
        self,
        n: int,
        sender: Person,
        rcpts: list[Person],
        subject: str,
        submitted: dt.datetime,
        delivered: dt.datetime,
        body: str,
        categories: list[str],
        message_id: str,
    ) -> bytes:
        rng = self.rng
        to = ", ".join(r.header for r in rcpts[:2])
        cc = ", ".join(r.header for r in rcpts[2:])
        subject_header = (
            subject
            if subject.isascii()
            else "=?utf-8?b?" + base64.b64encode(subject.encode("utf-8")).decode("ascii") + "?="
        )
        received = "".join(
            f"Received: from mx{hop}.{DOMAINS[hop % len(DOMAINS)]} "
            f"(mx{hop}.{DOMAINS[hop % len(DOMAINS)]} [192.0.2.{(n + hop) % 250 + 1}])\r\n"
            f"\tby mail.example.com with ESMTPS id {n:08x}{hop};\r\n"
            f"\t{_rfc5322_date(delivered)}\r\n"
            for hop in range(rng.randint(1, 4))
        )
        head = (
            f"Return-Path: <{sender.address}>\r\n"
            f"{received}"
            f"Message-ID: {message_id}\r\n"
            f"Date: {_rfc5322_date(submitted)}\r\n"
            f"From: {sender.header}\r\n"
            f"To: {to}\r\n"
            + (f"Cc: {cc}\r\n" if cc else "")
            + f"Subject: {subject_header}\r\n"
            + (f"Keywords: {', '.join(categories)}\r\n" if categories else "")
            + "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
            "\r\n"
        )
        text = head + body
        target = rng.randint(2048, 20480)
        missing = target - len(text.encode("utf-8"))
        if missing > 0:
            # The quoted history of the thread pads the source to its size.
            start = rng.randrange(0, max(1, len(self.filler) - missing - 200))
            start = self.filler.index("\r\n", start) + 2
            text += "\r\n" + self.filler[start : start + missing]
            text = text[: text.rfind("\r\n") + 2]
        return text.encode("utf-8")


def _ascii(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name.translate(_NO_DECOMPOSITION))
    return plain.encode("ascii", "ignore").decode("ascii")


_NO_DECOMPOSITION = str.maketrans("łŁøØ", "lLoO")


# -- the store -------------------------------------------------------------------------------


async def bulk_insert(data_dir: DataDir, count: int, batch: int, seed: int) -> dict[str, Any]:
    factory = MessageFactory(seed)
    store = await Store.open(data_dir.store)
    try:
        inbox = store.folders.roles["inbox"]
        gen_s = insert_s = 0.0
        source_bytes = 0
        done = 0
        while done < count:
            t0 = time.perf_counter()
            items = [factory.make()[0] for _ in range(min(batch, count - done))]
            t1 = time.perf_counter()
            await store.items.create_many(inbox, items)
            t2 = time.perf_counter()
            gen_s += t1 - t0
            insert_s += t2 - t1
            source_bytes += sum(len(i.source or b"") for i in items)
            done += len(items)
        await ensure_admin_token(store, data_dir)
    finally:
        await store.close()
    return {
        "count": count,
        "batch": batch,
        "generate_s": gen_s,
        "insert_s": insert_s,
        "items_per_s": count / insert_s if insert_s else 0.0,
        "source_mb": source_bytes / 1e6,
        "db_mb": _db_size(data_dir.store) / 1e6,
        "inbox": store.ids.api_id("folder", inbox),
    }


async def raw_import(path: Path, count: int, batch: int, seed: int) -> dict[str, Any]:
    factory = MessageFactory(seed + 1)
    raws = [factory.make()[1] for _ in range(count)]
    store = await Store.open(path)
    try:
        inbox = store.folders.roles["inbox"]
        t0 = time.perf_counter()
        for start in range(0, count, batch):
            items = [item_from_rfc822(raw) for raw in raws[start : start + batch]]
            await store.items.create_many(inbox, items)
        elapsed = time.perf_counter() - t0
    finally:
        await store.close()
    return {
        "count": count,
        "batch": batch,
        "elapsed_s": elapsed,
        "items_per_s": count / elapsed if elapsed else 0.0,
    }


def _db_size(path: Path) -> int:
    """The database with its WAL (what the cache occupies on disk right now)."""
    return sum(
        p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
    )


# -- the server ------------------------------------------------------------------------------


def _kbridge() -> str:
    name = "kbridge.exe" if sys.platform == "win32" else "kbridge"
    exe = Path(sys.executable).parent / name
    found = str(exe) if exe.exists() else shutil.which("kbridge")
    if not found:
        raise SystemExit(f"bench: no kbridge executable next to {sys.executable} or on PATH")
    return found


def rss_mb(pid: int) -> float | None:
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return None
    return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)


class Server:
    """One `kbridge serve` process on the data dir, reached over its server.json URL."""

    def __init__(self, data_dir: DataDir) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: http.client.HTTPConnection | None = None
        self.token = data_dir.admin_token.read_text(encoding="utf-8").strip()
        self.log = data_dir.path / "bench-server.log"

    def start(self) -> float:
        """Spawn and wait until GET /api/v1/store answers 200; the wall time in seconds."""
        self.data_dir.clear_server_info()
        cmd = [_kbridge(), "serve", "--data-dir", str(self.data_dir.path), "--port", "0"]
        with self.log.open("ab") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = t0 + READY_TIMEOUT
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"bench: kbridge serve exited with {self.proc.returncode}; see {self.log}"
                )
            if self.conn is None:
                info = self.data_dir.read_server_info()
                if info and info.get("pid") == self.proc.pid:
                    host_port = str(info["url"]).split("://", 1)[1]
                    self.conn = http.client.HTTPConnection(host_port, timeout=30)
            if self.conn is not None:
                try:
                    status, _ = self.get("/api/v1/store")
                except OSError:
                    self.conn.close()
                    status = 0
                if status == 200:
                    return time.perf_counter() - t0
            time.sleep(0.002)
        self.stop()
        raise SystemExit(f"bench: kbridge serve not ready after {READY_TIMEOUT:.0f} s")

    def get(self, path: str) -> tuple[int, bytes]:
        assert self.conn is not None
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def stop(self) -> int | None:
        """SIGTERM; the exit code, or None if it did not exit within STOP_TIMEOUT."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None


def serve_figures(data_dir: DataDir, inbox: str) -> dict[str, Any]:
    server = Server(data_dir)
    starts: list[float] = []
    exit_codes: list[int | None] = []
    rss_start: list[float | None] = []
    list_ms: list[float] = []
    rss_list: float | None = None
    path = LIST_PATH.format(inbox=inbox)
    try:
        for run in range(START_RUNS):
            starts.append(server.start())
            assert server.proc is not None
            pid = server.proc.pid
            rss_start.append(rss_mb(pid))
            if run == START_RUNS - 1:
                for n in range(LIST_RUNS):
                    t0 = time.perf_counter()
                    status, body = server.get(path)
                    list_ms.append((time.perf_counter() - t0) * 1000)
                    if status != 200:
                        raise SystemExit(f"bench: GET {path} answered {status}: {body[:300]!r}")
                    if n == 0:
                        rss_list = rss_mb(pid)
            exit_codes.append(server.stop())
    finally:
        server.stop()  # only does something if a run above failed half-way
    known = [r for r in rss_start if r is not None]
    return {
        "start_s": starts,
        "start_median_s": statistics.median(starts),
        "exit_codes": exit_codes,
        "rss_start_mb": statistics.median(known) if known else None,
        "rss_after_list_mb": rss_list,
        "list_ms": list_ms,
        "list_median_ms": statistics.median(list_ms),
    }


# -- report ----------------------------------------------------------------------------------


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} MB"


def _mark(ok: bool | None) -> str:
    return {True: "ok", False: "MISSED", None: "n/a"}[ok]


def report(fig: dict[str, Any]) -> str:
    ins, raw, srv = fig["insert"], fig["raw_import"], fig["serve"]
    rss = srv["rss_start_mb"]
    rss_list = srv["rss_after_list_mb"]
    codes = ", ".join("timeout" if c is None else str(c) for c in srv["exit_codes"])
    rows = [
        ("bulk insert (create_many)", f"{ins['items_per_s']:,.0f} items/s", "≥ 5,000 items/s",
         _mark(ins["items_per_s"] >= TARGET_INSERT)),
        ("raw import (parse + insert)", f"{raw['items_per_s']:,.0f} items/s", "", ""),
        ("data generation (excluded)", f"{ins['generate_s']:.1f} s", "", ""),
        ("raw sources generated", f"{ins['source_mb']:,.1f} MB", "", ""),
        ("DB file size (+WAL)", f"{ins['db_mb']:,.1f} MB", "", ""),
        (f"cold start (median of {START_RUNS})", f"{srv['start_median_s']:.3f} s", "< 1 s",
         _mark(srv["start_median_s"] < TARGET_START)),
        ("RSS after start", _mb(rss), "< 100 MB",
         _mark(None if rss is None else rss < TARGET_RSS)),
        ("RSS after first listing", _mb(rss_list), "< 100 MB",
         _mark(None if rss_list is None else rss_list < TARGET_RSS)),
        (f"first page listing (median of {LIST_RUNS})", f"{srv['list_median_ms']:.1f} ms", "",
         ""),
        ("exit code after SIGTERM", codes, f"0 within {STOP_TIMEOUT:.0f} s",
         _mark(all(c == 0 for c in srv["exit_codes"]))),
    ]  # fmt: skip
    widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
    lines = [
        f"kbridge store benchmark: {ins['count']:,} messages, batch {ins['batch']}, "
        f"raw import {raw['count']:,} (Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs)",
        f"{'figure':<{widths[0]}}  {'value':>{widths[1]}}  {'target':<{widths[2]}}  check",
    ]
    lines += [
        f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip() for a, b, c, d in rows
    ]
    lines.append(f"cold starts: {', '.join(f'{s:.3f} s' for s in srv['start_s'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--count", type=int, default=100_000, help="messages to bulk-insert")
    ap.add_argument("--batch", type=int, default=1000, help="items per create_many call")
    ap.add_argument("--raw-count", type=int, default=5000, help="raw messages to import")
    ap.add_argument("--seed", type=int, default=1430)
    ap.add_argument("--dir", type=Path, help="data dir to build (kept); default: a temp dir")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    args = ap.parse_args(argv)
    if args.count < 1 or args.batch < 1 or args.raw_count < 1:
        ap.error("--count, --batch and --raw-count must be positive")

    tmp: Path | None = None
    if args.dir:
        path = Path(args.dir)
    else:
        path = tmp = Path(tempfile.mkdtemp(prefix="kbridge-bench-"))
    data_dir = DataDir(path.resolve())
    if data_dir.store.exists():
        ap.error(f"{data_dir.store} exists; give --dir an empty or new directory")
    data_dir.create()
    try:
        print(f"bulk insert of {args.count:,} messages into {data_dir.path} ...", flush=True)
        insert = asyncio.run(bulk_insert(data_dir, args.count, args.batch, args.seed))
        raw_count = min(args.raw_count, args.count)
        print(f"raw import (parse + insert) of {raw_count:,} messages ...", flush=True)
        raw = asyncio.run(
            raw_import(data_dir.path / "raw-import" / "store.sqlite", raw_count, args.batch,
                       args.seed)
        )  # fmt: skip
        print(f"kbridge serve: {START_RUNS} cold starts ...", flush=True)
        serve = serve_figures(data_dir, insert["inbox"])
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    figures = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "seed": args.seed,
        "insert": insert,
        "raw_import": raw,
        "serve": serve,
        "targets": {
            "insert_items_per_s": TARGET_INSERT,
            "start_s": TARGET_START,
            "rss_mb": TARGET_RSS,
        },
    }
    print()
    print(report(figures))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
