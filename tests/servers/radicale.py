"""A private Radicale (CalDAV/CardDAV) for the tests: the PyPI package in the project's
venv, started from a temporary directory on a loopback port the OS assigns, with its own
config and an htpasswd file that users are appended to on the fly (Radicale reads it on
every login unless `htpasswd_cache` is on)."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.ports import free_ports

_CONFIG = """\
[server]
hosts = 127.0.0.1:{port}
max_connections = 20
timeout = 30

[auth]
type = htpasswd
htpasswd_filename = {root}/users
htpasswd_encryption = plain
delay = 0

[rights]
type = owner_only

[storage]
filesystem_folder = {root}/collections

[web]
type = none

[logging]
level = warning
mask_passwords = True
"""


class RadicaleError(RuntimeError):
    """Radicale could not be started; the message says why."""


@dataclass
class Radicale:
    root: Path
    port: int
    proc: subprocess.Popen[bytes]
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    host = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def add_user(self) -> tuple[str, str]:
        """A new account with no collections: (username, password)."""
        with self._lock:
            n = next(self._names)
            user, password = f"u{n}", f"pw-u{n}"
            with (self.root / "users").open("a") as f:
                f.write(f"{user}:{password}\n")
        return user, password

    def log(self) -> str:
        try:
            return (self.root / "radicale.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def _answers(url: str, user: str, password: str) -> bool:
    req = urllib.request.Request(url, method="PROPFIND", headers={"Depth": "0"})
    req.add_header("Authorization", "Basic " + b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return bool(resp.status == 207)
    except urllib.error.HTTPError as e:
        return e.code == 207
    except OSError:
        return False


def start(extra_config: str = "") -> Radicale:
    """Start a Radicale; raises RadicaleError with the reason when it cannot.
    `extra_config`: more sections appended to the config (sections not in it already)."""
    # Look it up without importing it: importing radicale registers its XML namespace
    # prefixes in ElementTree for the whole process, which changes how others write XML.
    if importlib.util.find_spec("radicale") is None:
        raise RadicaleError(
            "radicale is not installed in the test environment: run scripts/test "
            "(it installs the project's test extras)"
        )
    root = Path(tempfile.mkdtemp(prefix="kbridge-radicale-"))
    (root / "collections").mkdir()
    (root / "users").write_text("probe:probe\n")
    [port] = free_ports(1)
    (root / "config").write_text(_CONFIG.format(root=root.as_posix(), port=port) + extra_config)
    log = (root / "radicale.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--config", str(root / "config")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    server = Radicale(root, port, proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = server.log()
            shutil.rmtree(root, ignore_errors=True)
            raise RadicaleError(f"radicale exited with {proc.returncode}: {out}")
        with contextlib.suppress(OSError):
            if _answers(server.url, "probe", "probe"):
                return server
        time.sleep(0.05)
    out = server.log()
    server.stop()
    raise RadicaleError(f"radicale did not answer on port {port} within 20 s: {out}")
