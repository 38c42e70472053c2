"""A private Cyrus IMAP (CalDAV/CardDAV through its httpd) for the tests.

Debian's cyrus-common, cyrus-caldav and sasl2-bin; started from a temporary directory with
the templates in `tests/servers/cyrus/` on loopback ports the OS assigns. Only `http`
(CalDAV, CardDAV) and `imap` run. Users live in a private sasldb and are added on the fly
with saslpasswd2; an account's mailboxes (and its default calendar and address book) are
created at its first login.

Cyrus switches to its compiled-in user `cyrus`, so this needs root (the CI runs as root);
`start()` raises CyrusError with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
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

TEMPLATES = Path(__file__).with_name("cyrus")
# cyrus-imapd and dovecot-imapd conflict as Debian packages (both provide imap-server):
# scripts/test installs Dovecot's and unpacks Cyrus's imapd into /opt/cyrus-imapd.
BIN_DIRS = ("/usr/lib/cyrus/bin", "/usr/sbin", "/opt/cyrus-imapd/usr/lib/cyrus/bin")


class CyrusError(RuntimeError):
    """Cyrus could not be started; the message says why."""


def _which(name: str) -> str | None:
    for d in BIN_DIRS:
        p = Path(d) / name
        if p.exists():
            return str(p)
    return shutil.which(name)


@dataclass
class Cyrus:
    root: Path
    http_port: int
    imap_port: int
    proc: subprocess.Popen[bytes]
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    host = "127.0.0.1"

    @property
    def port(self) -> int:
        """The CalDAV/CardDAV (http) port."""
        return self.http_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}/"

    def add_user(self) -> tuple[str, str]:
        """A new account with its default calendar and address book: (username, password)."""
        with self._lock:
            n = next(self._names)
        user, password = f"u{n}", f"pw-u{n}"
        _saslpasswd(self.root, user, password)
        _first_login(self, user, password)
        return user, password

    def log(self) -> str:
        try:
            return (self.root / "master.log").read_text(errors="replace")[-4000:]
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


def _saslpasswd(root: Path, user: str, password: str) -> None:
    binary = shutil.which("saslpasswd2") or "/usr/sbin/saslpasswd2"
    done = subprocess.run(
        [binary, "-f", str(root / "conf" / "sasldb2"), "-u", "localhost", "-p", "-c", user],
        input=password.encode(),
        capture_output=True,
        timeout=10,
        check=False,
    )
    if done.returncode != 0:
        raise CyrusError(f"saslpasswd2 {user}: {done.stderr.decode(errors='replace')}")
    shutil.chown(root / "conf" / "sasldb2", "cyrus", "mail")


def _first_login(server: Cyrus, user: str, password: str) -> None:
    """Log in over IMAP once (autocreates INBOX), then PROPFIND the DAV homes (creates the
    default calendar and address book)."""
    import imaplib

    with imaplib.IMAP4(server.host, server.imap_port, timeout=10) as m:
        m.login(user, password)
        m.logout()
    for home in (f"dav/calendars/user/{user}/", f"dav/addressbooks/user/{user}/"):
        _propfind(server.url + home, user, password)


def _propfind(url: str, user: str, password: str) -> int:
    req = urllib.request.Request(url, method="PROPFIND", headers={"Depth": "0"})
    req.add_header("Authorization", "Basic " + b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def start() -> Cyrus:
    """Start a Cyrus; raises CyrusError with the reason when it cannot."""
    master = _which("cyrmaster") or _which("master")
    imapd = _which("imapd")
    if (
        master is None
        or imapd is None
        or _which("httpd") is None
        or shutil.which("saslpasswd2") is None
    ):
        raise CyrusError(
            "Cyrus is not installed: run scripts/test (it installs cyrus-common, "
            "cyrus-caldav and sasl2-bin, and unpacks cyrus-imapd into /opt/cyrus-imapd)"
        )
    if os.geteuid() != 0:
        raise CyrusError("the test Cyrus must be started as root (it switches to user cyrus)")
    root = Path(tempfile.mkdtemp(prefix="kbridge-cyrus-"))
    root.chmod(0o755)
    for sub in ("conf/socket", "conf/db", "conf/proc", "conf/log", "spool", "sieve"):
        (root / sub).mkdir(parents=True)
    http_port, imap_port = free_ports(2)
    values = {
        "@ROOT@": str(root),
        "@HTTP_PORT@": str(http_port),
        "@IMAP_PORT@": str(imap_port),
        "@IMAPD@": imapd,
    }
    for name in ("imapd.conf", "cyrus.conf"):
        text = (TEMPLATES / f"{name}.in").read_text()
        for k, v in values.items():
            text = text.replace(k, v)
        (root / name).write_text(text)
    _saslpasswd(root, "admin", "admin-pw")
    subprocess.run(["chown", "-R", "cyrus:mail", str(root)], check=True, timeout=10)
    proc = subprocess.Popen(
        [
            master,
            "-C",
            str(root / "imapd.conf"),
            "-M",
            str(root / "cyrus.conf"),
            "-p",
            str(root / "master.pid"),
            "-L",
            str(root / "master.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Cyrus(root, http_port, imap_port, proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = server.log()
            shutil.rmtree(root, ignore_errors=True)
            raise CyrusError(f"cyrmaster exited with {proc.returncode}: {out}")
        with contextlib.suppress(OSError):
            if _propfind(server.url + "dav/", "admin", "admin-pw") in (207, 200, 403, 404):
                return server
        time.sleep(0.05)
    out = server.log()
    server.stop()
    raise CyrusError(f"cyrus did not answer on port {http_port} within 20 s: {out}")
