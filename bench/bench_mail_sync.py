"""Mail sync benchmark: the bridge's initial sync and no-change resync against mbsync and a
bare FETCH client, on one private Dovecot.

    .venv/bin/python bench/bench_mail_sync.py [--messages 20000] [--seed 1430] [--json FILE]

A deterministic corpus (plain text, HTML with a text alternative, attachments; 2 KB to
about 1 MB) is written straight into the account's Maildir and indexed by Dovecot once.
Then, on the same server: the bridge (the mail Engine on ImapAdapter, in a child process,
into a fresh store) pulls everything and resyncs with no change; mbsync (isync) pulls into a
Maildir and resyncs; a bare client only streams `UID FETCH 1:* (BODY.PEEK[])` through the
protocol layer and drops it (the ceiling). The bridge's initial sync counts until every
message is stored with its properties; the full-text index, which follows in the
background, is timed on its own ("fully indexed"). The CPU time of the initial sync (the
bridge's process and its parsing worker) is printed too: on a machine shared with other
work it varies less than the wall clock. So is mbsync's, user and system apart: it writes
and syncs one file per message (its default `FSync yes`), which the kernel pays for.
Figures are printed next to their targets and written as JSON (default
bench/out/bench_mail_sync.json); nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from bench_store import MessageFactory  # noqa: E402

from tests.servers import dovecot as dv  # noqa: E402

DEFAULT_JSON = HERE / "out" / "bench_mail_sync.json"
FOLDERS = (("INBOX", 0.7), ("Archive", 0.2), ("Projects/Alpha", 0.1))
TARGET_RATIO = 2.0  # bridge msgs/s over mbsync's
TARGET_RSS = 150.0  # MB

# -- the corpus ----------------------------------------------------------------------------


def _split(raw: bytes) -> tuple[bytes, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    keep = [
        line
        for line in head.split(b"\r\n")
        if not line.lower().startswith((b"content-type:", b"content-transfer-encoding:"))
    ]
    return b"\r\n".join(keep) + b"\r\n", body


def _b64(data: bytes) -> bytes:
    text = base64.b64encode(data)
    return b"\r\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + b"\r\n"


class Corpus:
    """Realistic messages: 70 % plain text, 20 % HTML with a text alternative, 10 % with
    one or two attachments (PDF-like binary, mostly 10-200 KB, now and then up to 1 MB)."""

    def __init__(self, seed: int) -> None:
        self.factory = MessageFactory(seed)
        self.rng = random.Random(seed + 7)

    def make(self, n: int) -> bytes:
        raw = self.factory.make()[1]
        kind = self.rng.random()
        if kind < 0.7:
            return raw
        head, body = _split(raw)
        boundary = f"=_b{n:06d}".encode()
        if kind < 0.9:
            html = (
                b"<html><head><meta charset='utf-8'></head><body><div style='font-family:"
                b"Calibri'>"
                + b"".join(b"<p>" + p + b"</p>\r\n" for p in body.split(b"\r\n\r\n"))
                + b"</div></body></html>\r\n"
            )
            return (
                head + b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n'
                b"\r\n--" + boundary + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n--" + boundary + b"\r\n"
                b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
                b"\r\n" + html + b"--" + boundary + b"--\r\n"
            )
        parts = [
            b"--" + boundary + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n"
        ]
        for a in range(self.rng.choice((1, 1, 1, 2))):
            size = int(min(1 << 20, self.rng.lognormvariate(10.8, 1.0)))
            data = self.rng.randbytes(size)
            name = f"document-{n}-{a}.pdf".encode()
            parts.append(
                b"--" + boundary + b'\r\nContent-Type: application/pdf; name="' + name + b'"\r\n'
                b'Content-Disposition: attachment; filename="' + name + b'"\r\n'
                b"Content-Transfer-Encoding: base64\r\n\r\n" + _b64(data)
            )
        return (
            head + b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
            + b"".join(parts) + b"--" + boundary + b"--\r\n"
        )  # fmt: skip


def seed_maildir(maildir: Path, count: int, seed: int) -> dict[str, Any]:
    """Write `count` messages into the Maildir++ folders of FOLDERS; flags from the file
    names (:2,S read, F flagged), dates spread over two years (file mtime)."""
    corpus = Corpus(seed)
    rng = random.Random(seed + 11)
    dirs: dict[str, Path] = {}
    for name, _ in FOLDERS:
        path = maildir if name == "INBOX" else maildir / ("." + name.replace("/", "."))
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        dirs[name] = path
    (maildir / "subscriptions").write_text("".join(n + "\n" for n, _ in FOLDERS[1:]))
    total = 0
    per_folder = dict.fromkeys(dirs, 0)
    base = time.time() - 2 * 365 * 86400
    weights = [w for _, w in FOLDERS]
    names = [n for n, _ in FOLDERS]
    for n in range(count):
        folder = rng.choices(names, weights)[0]
        raw = corpus.make(n)
        flags = ("F" if rng.random() < 0.05 else "") + ("S" if rng.random() < 0.6 else "")
        when = base + n * (2 * 365 * 86400 / count)
        path = dirs[folder] / "cur" / f"{int(when)}.M{n}P1.bench,S={len(raw)}:2,{flags}"
        path.write_bytes(raw)
        os.utime(path, (when, when))
        total += len(raw)
        per_folder[folder] += 1
    return {"messages": count, "bytes": total, "per_folder": per_folder}


def chown_tree(root: Path, user: str, group: str) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        shutil.chown(dirpath, user, group)
        for name in filenames:
            shutil.chown(os.path.join(dirpath, name), user, group)


# -- the three clients ---------------------------------------------------------------------


def peak_rss_mb() -> float | None:
    """This process's peak resident set size."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_cpu_s() -> tuple[float, float] | None:
    """User and system CPU time of this process's ended and waited-for children: around a
    `subprocess.run`, that child's (None where the platform has no `resource` module)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


async def bridge_worker(host: str, port: int, user: str, password: str, path: Path) -> None:
    """Child process: initial sync into a fresh store, then a no-change resync. Its peak RSS
    is its own: the parsing worker process that a large pull starts tells its CPU time and
    peak RSS at its end (`ParsePool.used`)."""
    from bridge.store.store import Store
    from bridge.sync.engine import Engine
    from bridge.upstream.imap import ImapAdapter, ImapSettings

    settings = ImapSettings(host, port, "none", user, password)
    store = await Store.open(path)
    out: dict[str, Any] = {}
    try:
        for phase in ("initial", "resync"):
            t0, cpu0 = time.perf_counter(), time.process_time()
            adapter = ImapAdapter(settings)
            await adapter.connect()
            engine = Engine(store, adapter)
            try:
                report = await engine.run(adapter.delimiter or "/")
            finally:
                await adapter.close()
            out[phase + "_s"] = time.perf_counter() - t0
            # CPU time, less dependent on other load of the machine than the wall clock:
            # this process (all its threads) and the parsing worker (ended by now).
            out[phase + "_cpu_s"] = time.process_time() - cpu0
            out[phase + "_worker_cpu_s"] = sum(u.cpu_s for u in engine.pool.used)
            rss = [u.peak_rss_mb for u in engine.pool.used if u.peak_rss_mb is not None]
            if rss:
                out["peak_rss_children_mb"] = max(rss)
            out[phase + "_fetched"] = report.fetched
            out[phase + "_paths"] = report.paths
            if phase == "initial":
                # The full-text index follows the pull in the background: the time until
                # every message is also searchable.
                if not await store.search.wait_current(max_wait=3600):
                    raise SystemExit("bench: the search index did not catch up")
                out["indexed_s"] = time.perf_counter() - t0
                # mbsync resyncs once its first run has written and synced everything; so
                # does the bridge, once its checkpoints have copied the index into the
                # database file (else they take a core from the resync it times)
                await store.core.checkpoints_done()
    finally:
        await store.close()
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


# The bridge runs in a process whose main module imports nothing more (`python -c`), as
# under `kbridge serve`: its parsing worker then starts with what the fork server preloaded,
# instead of first importing this benchmark (its main module) again.
_CHILD = """
import sys
sys.path[:0] = [{bench!r}, {root!r}]
from bench_mail_sync import bridge_child
bridge_child(sys.argv[1:])
"""


def bridge_child(argv: list[str]) -> None:
    """In the child process: the syncs, with the memory settings and on the event loop of
    `kbridge serve`; the figures go to stdout as one JSON line."""
    from bridge.collector import tune_gc, tune_malloc
    from bridge.server import run_loop

    port, user, password, path = argv
    tune_malloc()
    tune_gc()
    run_loop(bridge_worker("127.0.0.1", int(port), user, password, Path(path)))


def run_bridge(server: dv.Dovecot, user: str, password: str, work: Path) -> dict[str, Any]:
    code = _CHILD.format(bench=str(HERE), root=str(HERE.parent))
    cmd = [sys.executable, "-c", code, str(server.imap_port), user, password]
    cmd.append(str(work / "bridge" / "store.sqlite"))
    (work / "bridge").mkdir()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench: the bridge worker failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    # Counted here, not in the worker: a scan of every item would fill that process's page
    # cache and add its size to the peak RSS of the sync.
    db = sqlite3.connect(work / "bridge" / "store.sqlite")
    try:
        row = db.execute(
            "SELECT count(*), sum(size) FROM items WHERE upstream IS NOT NULL"
        ).fetchone()
    finally:
        db.close()
    result["stored"], result["stored_bytes"] = row[0], row[1] or 0
    return result


MBSYNCRC = """\
IMAPAccount bench
Host 127.0.0.1
Port {port}
User {user}
Pass {password}
SSLType None
AuthMechs PLAIN

IMAPStore remote
Account bench

MaildirStore local
Path {path}/
Inbox {path}/INBOX
SubFolders Verbatim

Channel bench
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
"""


def run_mbsync(server: dv.Dovecot, user: str, password: str, work: Path) -> dict[str, Any]:
    binary = shutil.which("mbsync")
    if binary is None:
        raise SystemExit("bench: mbsync is not installed (apt-get install isync)")
    target = work / "mbsync"
    target.mkdir()
    rc = work / "mbsyncrc"
    rc.write_text(MBSYNCRC.format(port=server.imap_port, user=user, password=password, path=target))
    rc.chmod(0o600)
    out: dict[str, Any] = {}
    for phase in ("initial", "resync"):
        t0, cpu0 = time.perf_counter(), children_cpu_s()
        proc = subprocess.run([binary, "-q", "-c", str(rc), "-a"], capture_output=True, text=True)
        out[phase + "_s"] = time.perf_counter() - t0
        cpu = children_cpu_s()
        if cpu is not None and cpu0 is not None:
            out[phase + "_user_s"] = cpu[0] - cpu0[0]
            out[phase + "_system_s"] = cpu[1] - cpu0[1]
        if proc.returncode != 0:
            raise SystemExit(f"bench: mbsync failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    files = [p for p in target.rglob("*") if p.is_file() and p.parent.name in ("cur", "new")]
    out["stored"] = len(files)
    out["stored_bytes"] = sum(p.stat().st_size for p in files)
    return out


async def bare_fetch(server: dv.Dovecot, user: str, password: str) -> dict[str, Any]:
    """Stream every message of every folder through the protocol layer and drop it."""
    from bridge.upstream.imap_proto import Connection, Response, quote

    conn = Connection(max_literal=64 << 20, timeout=120)
    count = size = 0

    def sink(resp: Response) -> None:
        nonlocal count, size
        if resp.kind == "FETCH":
            count += 1
            size += sum(len(v) for v in resp.values[2] if isinstance(v, bytes))

    t0 = time.perf_counter()
    await conn.open(server.host, server.imap_port, "none", None)
    try:
        await conn.run("LOGIN", quote(user), quote(password))
        for name, _ in FOLDERS:
            await conn.run("EXAMINE", quote(name))
            await conn.run("UID FETCH 1:* (BODY.PEEK[])", sink=sink)
        await conn.run("LOGOUT")
    finally:
        await conn.close()
    return {"initial_s": time.perf_counter() - t0, "stored": count, "stored_bytes": size}


def settle() -> None:
    """Write out what earlier steps left in the page cache (the corpus, the other client's
    store), so that a client's own writes are not slowed by the writeback of theirs."""
    if hasattr(os, "sync"):
        os.sync()


def index_mailboxes(server: dv.Dovecot, user: str, password: str) -> float:
    """Let Dovecot index the Maildir once (as it would have while mail arrived)."""
    t0 = time.perf_counter()
    m = server.client(user, password)
    for name, _ in FOLDERS:
        typ, data = m.select(f'"{name}"', readonly=True)
        if typ != "OK":
            raise SystemExit(f"bench: Dovecot cannot open {name}: {data}")
        m.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE)")
    server.close_clients()
    return time.perf_counter() - t0


# -- report ----------------------------------------------------------------------------------


def _rate(fig: dict[str, Any], corpus: dict[str, Any]) -> tuple[float, float]:
    seconds = fig["initial_s"]
    return corpus["messages"] / seconds, corpus["bytes"] / 1e6 / seconds


def _mark(ok: bool | None) -> str:
    return {True: "ok", False: "MISSED", None: "n/a"}[ok]


def report(fig: dict[str, Any]) -> str:
    corpus, br, mb, bare = fig["corpus"], fig["bridge"], fig["mbsync"], fig["bare_fetch"]
    b_rate, b_mb = _rate(br, corpus)
    m_rate, m_mb = _rate(mb, corpus)
    c_rate, c_mb = _rate(bare, corpus)
    ratio = b_rate / m_rate
    rss = br.get("peak_rss_mb")
    child_rss = br.get("peak_rss_children_mb")
    complete = br["stored"] == mb["stored"] == bare["stored"] == corpus["messages"]
    rows = [
        ("bridge initial sync", f"{b_rate:,.0f} msgs/s  {b_mb:,.1f} MB/s  "
         f"{br['initial_s']:.2f} s", f"≥ {TARGET_RATIO:g}× mbsync", _mark(ratio >= TARGET_RATIO)),
        ("bridge initial sync CPU", f"{br['initial_cpu_s']:.2f} s + worker "
         f"{br['initial_worker_cpu_s']:.2f} s", "", ""),
        ("bridge fully indexed (FTS)", f"{corpus['messages'] / br['indexed_s']:,.0f} msgs/s  "
         f"{br['indexed_s']:.2f} s", "", ""),
        ("mbsync initial sync", f"{m_rate:,.0f} msgs/s  {m_mb:,.1f} MB/s  "
         f"{mb['initial_s']:.2f} s", "", ""),
        ("mbsync initial sync CPU", "n/a" if mb.get("initial_user_s") is None
         else f"{mb['initial_user_s']:.2f} s user + {mb['initial_system_s']:.2f} s system",
         "", ""),
        ("bare UID FETCH 1:* (ceiling)", f"{c_rate:,.0f} msgs/s  {c_mb:,.1f} MB/s  "
         f"{bare['initial_s']:.2f} s", "", ""),
        ("bridge / mbsync", f"{ratio:.2f}×", f"≥ {TARGET_RATIO:g}×", _mark(ratio >= TARGET_RATIO)),
        ("bridge / ceiling", f"{b_rate / c_rate:.0%}", "", ""),
        ("bridge no-change resync", f"{br['resync_s']:.3f} s", f"≤ mbsync ({mb['resync_s']:.3f} s)",
         _mark(br["resync_s"] <= mb["resync_s"])),
        ("mbsync no-change resync", f"{mb['resync_s']:.3f} s", "", ""),
        ("bridge peak RSS", "n/a" if rss is None else f"{rss:.1f} MB", f"< {TARGET_RSS:g} MB",
         _mark(None if rss is None else rss < TARGET_RSS)),
        ("bridge parsing worker peak RSS", "n/a" if child_rss is None else f"{child_rss:.1f} MB",
         "", ""),
        ("messages stored (bridge/mbsync/bare)",
         f"{br['stored']:,} / {mb['stored']:,} / {bare['stored']:,}",
         f"{corpus['messages']:,} each", _mark(complete)),
    ]  # fmt: skip
    widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
    lines = [
        f"kbridge mail sync benchmark: {corpus['messages']:,} messages, "
        f"{corpus['bytes'] / 1e6:,.1f} MB in {len(corpus['per_folder'])} folders "
        f"(Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs, Dovecot indexing {fig['index_s']:.1f} s)",
        f"{'figure':<{widths[0]}}  {'value':>{widths[1]}}  {'target':<{widths[2]}}  check",
    ]
    lines += [
        f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip() for a, b, c, d in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--messages", type=int, default=20_000, help="messages in the corpus")
    ap.add_argument("--seed", type=int, default=1430)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    args = ap.parse_args(argv)
    if args.messages < 1:
        ap.error("--messages must be positive")

    server = dv.start(dv.FULL)
    work = Path(tempfile.mkdtemp(prefix="kbridge-bench-mail-"))
    try:
        user, password = server.add_user()
        maildir = server.root / "mail" / user / "Maildir"
        print(f"writing {args.messages:,} messages into {maildir} ...", flush=True)
        corpus = seed_maildir(maildir, args.messages, args.seed)
        if os.name == "posix" and os.geteuid() == 0:
            chown_tree(server.root / "mail" / user, "nobody", "nogroup")
        print("Dovecot indexes the mailboxes ...", flush=True)
        index_s = index_mailboxes(server, user, password)
        asyncio.run(bare_fetch(server, user, password))  # warm the page cache
        print("bridge: initial sync and no-change resync ...", flush=True)
        settle()
        bridge = run_bridge(server, user, password, work)
        print("mbsync: initial sync and no-change resync ...", flush=True)
        settle()
        mbsync = run_mbsync(server, user, password, work)
        print("bare UID FETCH 1:* ...", flush=True)
        bare = asyncio.run(bare_fetch(server, user, password))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    figures = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "seed": args.seed,
        "corpus": corpus,
        "index_s": index_s,
        "bridge": bridge,
        "mbsync": mbsync,
        "bare_fetch": bare,
        "targets": {"ratio_to_mbsync": TARGET_RATIO, "rss_mb": TARGET_RSS},
    }
    print()
    print(report(figures))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
