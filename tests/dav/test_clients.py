"""Real clients against a running `kbridge serve`: litmus, rclone, and a 200 MB round trip
that must not grow the server's memory by its size."""

from __future__ import annotations

import base64
import http.client
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.conftest import Server, start_server

pytestmark = pytest.mark.system
SUMMARY = re.compile(r"<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed")
SUITES = {"basic", "copymove", "props", "locks", "http"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "data")
    try:
        yield srv
    finally:
        srv.stop()


def test_litmus_passes_every_suite(server: Server, tmp_path: Path) -> None:
    if shutil.which("litmus") is None:
        pytest.fail("litmus is not installed (scripts/test installs it)")
    work = tmp_path / "litmus"
    work.mkdir()  # litmus writes debug.log into its working directory
    out = subprocess.run(
        ["litmus", "-k", f"{server.url}/dav/", "kbridge", server.token],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    summaries = {m.group(1): m.groups()[1:] for m in SUMMARY.finditer(out)}
    assert set(summaries) == SUITES, out
    for suite, (run, passed, failed) in summaries.items():
        assert failed == "0" and run == passed, f"{suite}: {out}"
    assert "WARNING" not in out, out


def _rclone(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rclone", "--config", str(conf), "--low-level-retries", "1", "--retries", "1", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rclone_copies_a_tree_out_and_in(server: Server, tmp_path: Path) -> None:
    if shutil.which("rclone") is None:
        pytest.fail("rclone is not installed (scripts/test installs it)")
    obscured = subprocess.run(
        ["rclone", "obscure", server.token], capture_output=True, text=True, check=True
    ).stdout.strip()
    conf = tmp_path / "rclone.conf"
    conf.write_text(
        f"[kb]\ntype = webdav\nurl = {server.url}/dav\nvendor = other\n"
        f"user = rclone\npass = {obscured}\n"
    )
    src = tmp_path / "src"
    (src / "Sub").mkdir(parents=True)
    (src / "notes.txt").write_bytes(b"plain text\n")
    (src / "Sub" / "blob.bin").write_bytes(bytes(range(256)) * 1000)
    (src / "Sub" / "mail.eml").write_bytes(
        b"From: a@example.com\r\nSubject: via rclone\r\n\r\nbody\r\n"
    )
    status, folders = server.request("GET", "/api/v1/folders")
    assert status == 200
    result = _rclone(conf, "copy", str(src), "kb:Projects")
    assert result.returncode == 0, result.stderr
    status, folders = server.request("GET", "/api/v1/folders")
    by_name = {f["props"]["PidTagDisplayName"]: f for f in folders["folders"]}
    assert "Projects" in by_name and "Sub" in by_name
    sub = by_name["Sub"]["id"]
    status, listing = server.request("GET", f"/api/v1/folders/{sub}/items")
    subjects = sorted(i["props"].get("PidTagSubject") for i in listing["items"])
    assert subjects == ["blob.bin", "via rclone"], listing
    status, feed = server.request("GET", f"/api/v1/folders/{sub}/changes")
    assert len(feed["created"]) == 2

    out = tmp_path / "out"
    result = _rclone(conf, "copy", "kb:Projects", str(out))
    assert result.returncode == 0, result.stderr
    for rel in ("notes.txt", "Sub/blob.bin", "Sub/mail.eml"):
        assert (out / rel).read_bytes() == (src / rel).read_bytes(), rel
    result = _rclone(conf, "check", str(src), "kb:Projects")
    assert result.returncode == 0, result.stderr + result.stdout


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_200_mb_streams_both_ways_without_growing_memory(server: Server) -> None:
    size = 200 * 1024 * 1024
    block = bytes(range(256)) * 4096  # 1 MiB
    host, port = server.url.removeprefix("http://").split(":")
    auth = "Basic " + base64.b64encode(f"u:{server.token}".encode()).decode()
    before = _rss_kb(server.proc.pid)
    started = time.monotonic()

    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    conn.putrequest("PUT", "/dav/Drafts/big.bin")
    conn.putheader("Authorization", auth)
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    peak = before
    for n in range(size // len(block)):
        conn.send(block)
        if n % 20 == 0:
            peak = max(peak, _rss_kb(server.proc.pid))
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 201
    peak = max(peak, _rss_kb(server.proc.pid))

    conn.request("GET", "/dav/Drafts/big.bin", headers={"Authorization": auth})
    resp = conn.getresponse()
    assert resp.status == 200
    got = 0
    while chunk := resp.read(1024 * 1024):
        assert chunk == block[: len(chunk)] or len(chunk) % 256 == 0
        got += len(chunk)
        if got % (20 * 1024 * 1024) < len(chunk):
            peak = max(peak, _rss_kb(server.proc.pid))
    conn.close()
    assert got == size
    growth_mb = (peak - before) / 1024
    took = round(time.monotonic() - started, 1)
    print(json.dumps({"rss_growth_mb": round(growth_mb, 1), "seconds": took}))
    # What does grow is bounded: SQLite's page cache (16 MB per connection: writer,
    # checkpointer, the WebDAV reader threads) and the allocator's arenas.
    assert growth_mb < 100, f"RSS grew by {growth_mb:.0f} MB for a 200 MB round trip"
