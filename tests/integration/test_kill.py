"""`kbridge serve` killed in the middle of a sync run, at every step of it.

Local changes of every kind are journaled while offline (flags, a move into a new folder,
deletions, a new draft, the folder creation itself) and the server changes meanwhile. Then
`kbridge serve` goes online with KBRIDGE_TEST_CRASH_AFTER=N, which ends the process
abruptly (as `kill -9` would) after the Nth step of the run; N runs over every step. Each
time a plain restart must finish the job: the cache and the server agree, nothing is lost,
nothing is there twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bridge.model import tags
from bridge.store.rfc822 import item_from_rfc822
from bridge.store.store import Store
from bridge.sync import crashpoint
from tests.integration.conftest import Account, sync
from tests.integration.convergence import assert_converged
from tests.servers import dovecot as dv

MAX_STEPS = 40  # far more than one run of this scenario takes
STOP_TIMEOUT = 60  # s; a loaded 2-core CI machine is slow to stop a busy process
RUN_TIMEOUT = 30.0
GRACE = 3.0  # s a synced bridge is left running before it is stopped
BATCH = 2  # crash runs at a time
KBRIDGE = [sys.executable, "-m", "bridge"]


def write_config(path: Path, account: Account) -> Path:
    path.write_text(
        f"""
upstream:
  preset: generic
  username: {account.user}
  password: {account.password}
  imap: {{host: 127.0.0.1, port: {account.server.imap_port}, tls: none}}
  smtp: {{host: 127.0.0.1, port: 9, tls: none}}
sync: {{interval: 60}}
"""
    )
    return path


def status(data: Path) -> dict[str, Any] | None:
    """The running server's sync status, or None while it is not answering yet."""
    try:
        info = json.loads((data / "server.json").read_text())
        token = (data / "admin.token").read_text().strip()
        req = urllib.request.Request(
            info["url"] + "/api/v1/sync/status", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return dict(json.loads(resp.read()))
    except (OSError, ValueError, KeyError):
        return None


def launch(data: Path, config: Path, crash_after: int | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != crashpoint.ENV}
    if crash_after is not None:
        env[crashpoint.ENV] = str(crash_after)
    (data / "server.json").unlink(missing_ok=True)  # left behind by a crashed run
    with (data.parent / f"{data.name}.err").open("wb") as err:
        return subprocess.Popen(
            [*KBRIDGE, "serve", "--config", str(config), "--data-dir", str(data), "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )


def finish(proc: subprocess.Popen[bytes], data: Path) -> tuple[int | None, str]:
    """Wait until `kbridge serve` crashes (its exit code) or has synced everything (None,
    after a clean stop); with what it wrote on stderr."""
    deadline = time.monotonic() + RUN_TIMEOUT
    err = data.parent / f"{data.name}.err"
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return proc.returncode, err.read_text(errors="replace")
            st = status(data)
            if st is not None and st["state"] == "online" and st["journal_pending"] == 0:
                # A later run (the one that picks up the server's answer to this run's
                # changes) may still reach the step: it is given time before the stop.
                try:
                    proc.wait(GRACE)
                    return proc.returncode, err.read_text(errors="replace")
                except subprocess.TimeoutExpired:
                    pass
                proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    raise AssertionError(
                        f"kbridge serve did not stop within {STOP_TIMEOUT} s of SIGTERM:\n"
                        + err.read_text(errors="replace")
                    ) from None
                if proc.returncode == crashpoint.EXIT_CODE:
                    # the step was reached in a later run (the one that picks up the
                    # server's answer to this run's changes) just as the test stopped it
                    return proc.returncode, err.read_text(errors="replace")
                assert proc.returncode == 0, err.read_text(errors="replace")
                return None, err.read_text(errors="replace")
            time.sleep(0.05)
        raise AssertionError(f"kbridge serve neither crashed nor synced: {status(data)}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def serve(data: Path, config: Path, crash_after: int | None) -> tuple[int | None, str]:
    return finish(launch(data, config, crash_after), data)


async def prepare(data: Path, account: Account) -> list[str]:
    """A synced cache with offline changes of every kind journaled, and the server changed
    meanwhile. Returns the Message-IDs that must each end up exactly once."""
    m = account.client()
    ids = []
    for i in range(6):
        ids.append(f"<k{i}.{time.monotonic_ns()}@test>")
        dv.append(m, "INBOX", dv.message(f"m{i}", msgid=ids[-1]))
    await asyncio.to_thread(data.mkdir)
    store = await Store.open(data / "store.sqlite")
    try:
        await sync(store, account)
        items, _ = await store.queries.list(store.folders.roles["inbox"])
        by = {str(i.props[tags.SUBJECT]): i.id for i in items}
        await store.items.update(by["m0"], {tags.READ: True, tags.FLAG_STATUS: 2})
        archive = await store.folders.create(store.folders.roles["ipm_subtree"], "Archive")
        await store.items.move(by["m1"], archive)
        await store.items.delete(by["m2"])
        await store.items.delete(by["m3"], hard=True)
        await store.items.update(by["m4"], {tags.SUBJECT: "m4 edited"})  # re-uploaded
        ids.append(f"<draft.{time.monotonic_ns()}@local>")
        draft = dv.message("draft", msgid=ids[-1])
        await store.items.create(store.folders.roles["drafts"], item_from_rfc822(draft))
    finally:
        await store.close()
    ids.append(f"<new.{time.monotonic_ns()}@test>")
    dv.append(m, "INBOX", dv.message("new", msgid=ids[-1]))
    m.select("INBOX")
    m.uid("STORE", "6", "+FLAGS", "(\\Seen)")  # m5
    return [i for i in ids if i != ids[3]]  # m3 is deleted for good


async def test_killed_at_every_step_of_a_sync_run(dovecot: dv.Dovecot, tmp_path: Path) -> None:
    """Crash runs go BATCH at a time. The restart is a real `kbridge serve` after the first
    and the last crash; after the others the same recovery (open the store, one sync run)
    runs in-process, to keep the test short."""
    steps: list[str] = []
    done = False
    for first in range(1, MAX_STEPS + 1, BATCH):
        batch = []
        for n in range(first, first + BATCH):
            account = Account(dovecot, *dovecot.add_user())
            data = tmp_path / f"run{n}"
            expected = await prepare(data, account)
            config = write_config(tmp_path / f"bridge{n}.yaml", account)
            batch.append((n, account, data, config, expected, launch(data, config, n)))
        try:
            for n, account, data, config, expected, proc in batch:
                code, err = finish(proc, data)
                if code is None:
                    done = True  # the run has fewer than n steps: every one of them was tried
                    continue
                assert code == crashpoint.EXIT_CODE, err
                steps.append(err.strip().rsplit("after step: ", 1)[-1])
                if n == 1:
                    restarted, err = serve(data, config, crash_after=None)
                    assert restarted is None, err
                await check(data, account, expected, steps[-1], restart=n > 1)
        finally:
            for *_, left in batch:  # none left running when one of them failed
                if left.poll() is None:
                    left.kill()
                    left.wait()
        if done:
            break
    else:
        raise AssertionError(f"a sync run took more than {MAX_STEPS} steps")
    assert len(steps) >= 8, steps  # the pull and push steps were all reached
    # the last crash again, restarted by the command this time
    account = Account(dovecot, *dovecot.add_user())
    data = tmp_path / "last"
    expected = await prepare(data, account)
    config = write_config(tmp_path / "last.yaml", account)
    code, err = serve(data, config, crash_after=len(steps))
    assert code == crashpoint.EXIT_CODE, err
    restarted, err = serve(data, config, crash_after=None)
    assert restarted is None, err
    await check(data, account, expected, steps[-1], restart=False)


async def check(
    data: Path, account: Account, expected: list[str], step: str, *, restart: bool
) -> None:
    store = await Store.open(data / "store.sqlite")
    try:
        if restart:
            await sync(store, account)
        snap = await assert_converged(store, account.client(), expected)
    finally:
        await store.close()
        account.server.close_clients()
    m0, m1, m2, m4, m5, draft, new = expected
    assert snap["INBOX"][m0] == [frozenset({"\\Seen", "\\Flagged"})], step
    assert snap["INBOX"][m5] == [frozenset({"\\Seen"})], step
    assert m1 in snap["Archive"] and m2 in snap["Trash"] and draft in snap["Drafts"], step
    assert {m4, new} <= set(snap["INBOX"]), step
