from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

KBRIDGE = [sys.executable, "-m", "bridge"]


def kbridge(
    *args: str, data_dir: Path | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if data_dir is not None:
        env["KBRIDGE_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [*KBRIDGE, *args], capture_output=True, text=True, timeout=60, env=env, **kw
    )


@dataclass
class Server:
    proc: subprocess.Popen[str]
    data_dir: Path
    url: str
    token: str

    def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {token or self.token}",
                **({"Content-Type": "application/json"} if data else {}),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None

    output: str = ""
    errors: str = ""

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.output, self.errors = self.proc.communicate(timeout=15)
        return self.proc.returncode


def start_server(data_dir: Path, *extra: str) -> Server:
    proc = subprocess.Popen(
        [*KBRIDGE, "serve", "--data-dir", str(data_dir), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    info_file = data_dir / "server.json"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"kbridge serve exited: {err}")
        if info_file.exists():
            try:
                info = json.loads(info_file.read_text())
                break
            except ValueError:
                pass
        time.sleep(0.05)
    else:
        proc.kill()
        proc.communicate()
        raise AssertionError("kbridge serve did not start in time")
    token = (data_dir / "admin.token").read_text().strip()
    return Server(proc, data_dir, info["url"], token)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "data")
    try:
        yield srv
    finally:
        srv.stop()
