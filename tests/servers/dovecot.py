"""A private Dovecot for the tests: started from a temporary directory on loopback ports
the OS assigns, with its own config (no /etc/dovecot), passwd-file users added on the fly.

`imap_capability` limits what the server announces, so that the CONDSTORE-only and plain
listing paths of the sync engine run against the same real server.

`start(tls=True)` gives a server as one is deployed: a certificate for 127.0.0.1 (made for
it, `Dovecot.ca_file`), IMAP over implicit TLS on `imaps_port` and STARTTLS on `imap_port`.
(It would refuse a password before TLS, but takes a loopback connection for a secured one.)
"""

from __future__ import annotations

import contextlib
import imaplib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.ports import free_ports

FULL = None  # announce Dovecot's own capability list
BASE_CAPS = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT UNSELECT CHILDREN NAMESPACE "
    "UIDPLUS LIST-EXTENDED ESEARCH LIST-STATUS MOVE LITERAL+ SPECIAL-USE"
)
CONDSTORE_ONLY = BASE_CAPS + " CONDSTORE"
# Nor ESEARCH: a UID listing is then one number each (`SEARCH`), not ranges.
PLAIN = " ".join(c for c in BASE_CAPS.split() if c != "ESEARCH")
# Neither MOVE (moves are COPY + EXPUNGE) nor UIDPLUS (a plain EXPUNGE). Dovecot still
# answers with COPYUID and APPENDUID codes, which the bridge takes where they come.
MINIMAL = " ".join(c for c in BASE_CAPS.split() if c not in ("MOVE", "UIDPLUS"))
USERS = 500

_CONFIG = """\
instance_name = dovecot-test-{imap_port}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
{tls}auth_mechanisms = plain login
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u/Maildir
mail_privileged_group =
{trusted}shutdown_clients = yes
hostname = localhost
postmaster_address = postmaster@localhost
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
  default_fields = uid={mail_user} gid={mail_group} home={root}/home/%u
}}
namespace inbox {{
  type = private
  separator = /
  prefix =
  inbox = yes
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
{capability}}}
protocol lmtp {{
  auth_username_format = %Ln
}}
service anvil {{
  chroot =
}}
{imap_services}service imap-login {{
  chroot =
{imap_login_executable}  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


# cyrus-imapd and dovecot-imapd conflict as Debian packages (both provide imap-server).
# Where Cyrus is installed, the Dovecot IMAP binaries are unpacked from the dovecot-imapd
# package into this directory instead (`dpkg-deb -x dovecot-imapd_*.deb DIR`).
IMAP_LIBEXEC = (Path("/usr/lib/dovecot"), Path("/opt/dovecot-imapd/usr/lib/dovecot"))

IMAP_SERVICES = (
    "imap",
    "imap-hibernate",
    "imap-urlauth",
    "imap-urlauth-login",
    "imap-urlauth-worker",
)


def _imap_libexec() -> Path | None:
    extra = os.environ.get("KBRIDGE_DOVECOT_IMAP_DIR")
    candidates = (Path(extra), *IMAP_LIBEXEC) if extra else IMAP_LIBEXEC
    return next((d for d in candidates if (d / "imap").exists()), None)


class DovecotError(RuntimeError):
    """Dovecot could not be started; the message says why."""


_PLAIN_CONFIG = "ssl = no\ndisable_plaintext_auth = no\n"
_TLS_CONFIG = """\
ssl = yes
ssl_cert = <{root}/tls/cert.pem
ssl_key = <{root}/tls/key.pem
disable_plaintext_auth = yes
"""


@dataclass
class Dovecot:
    root: Path
    imap_port: int
    lmtp_port: int
    proc: subprocess.Popen[bytes]
    imaps_port: int = 0  # 0: no implicit TLS listener
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _clients: list[imaplib.IMAP4] = field(default_factory=list)

    host = "127.0.0.1"

    @property
    def ca_file(self) -> Path:
        """The certificate of a TLS server (self-signed: it is its own authority)."""
        return self.root / "tls" / "cert.pem"

    def add_user(self) -> tuple[str, str]:
        """A new, empty mailbox account: (username, password). Accounts are written at
        start: Dovecot notices a changed passwd-file only by its mtime (in seconds)."""
        with self._lock:
            n = next(self._names)
        if n > USERS:
            raise DovecotError(f"the test Dovecot has only {USERS} accounts")
        return f"u{n}", f"pw-u{n}"

    def client(self, user: str, password: str) -> imaplib.IMAP4:
        """A second, plain IMAP client (stdlib) for server-side edits."""
        m = imaplib.IMAP4(self.host, self.imap_port, timeout=10)
        m.login(user, password)
        self._clients.append(m)
        return m

    def close_clients(self) -> None:
        while self._clients:
            m = self._clients.pop()
            with contextlib.suppress(Exception):
                m.logout()
            with contextlib.suppress(Exception):
                m.shutdown()

    def log(self) -> str:
        try:
            return (self.root / "dovecot.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def _certificate(directory: Path) -> None:
    directory.mkdir()
    try:
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
                *("-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")),
                *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DovecotError(f"cannot make a TLS certificate with openssl: {exc}") from exc
    for name in ("key.pem", "cert.pem"):
        (directory / name).chmod(0o644)  # read by Dovecot's unprivileged processes


def start(capability: str | None = FULL, *, tls: bool = False) -> Dovecot:
    """Start a Dovecot; raises DovecotError with the reason when it cannot. A port taken by
    another process between its choice and Dovecot's start is chosen again."""
    for _ in range(2):
        try:
            return _start(capability, tls)
        except DovecotError as exc:
            if not any(m in str(exc) for m in _PORT_TAKEN):
                raise
    return _start(capability, tls)


_PORT_TAKEN = ("Address already in use", "duplicate listener")


def _start(capability: str | None, tls: bool) -> Dovecot:
    binary = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
    )
    if binary is None:
        raise DovecotError(
            "dovecot is not installed: run scripts/test (it installs dovecot-imapd and "
            "dovecot-lmtpd) or apt-get install dovecot-imapd dovecot-lmtpd"
        )
    libexec = _imap_libexec()
    if libexec is None:
        raise DovecotError(
            "the Dovecot IMAP server is not installed: apt-get install dovecot-imapd, or, "
            "where it conflicts with cyrus-imapd, unpack it: apt-get download dovecot-imapd && "
            "dpkg-deb -x dovecot-imapd_*.deb /opt/dovecot-imapd"
        )
    root = Path(tempfile.mkdtemp(prefix="kbridge-dovecot-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        internal_user, internal_group, login_user = "dovecot", "dovecot", "dovenull"
        mail_user, mail_group = "nobody", "nogroup"
    else:
        me = pwd.getpwuid(os.geteuid()).pw_name
        internal_user = internal_group = login_user = me
        mail_user, mail_group = str(os.geteuid()), str(os.getegid())
    for sub in ("mail", "home", "run", "state"):
        (root / sub).mkdir()
    if os.geteuid() == 0:
        for sub in ("mail", "home"):
            shutil.chown(root / sub, mail_user, mail_group)
    (root / "users").write_text("".join(f"u{n}:pw-u{n}::::::\n" for n in range(1, USERS + 1)))
    (root / "users").chmod(0o644)
    imap_port, lmtp_port, imaps_port = free_ports(3)
    imaps_port = imaps_port if tls else 0
    if tls:
        _certificate(root / "tls")
    cap_line = f"  imap_capability = {capability}\n" if capability else ""
    (root / "dovecot.conf").write_text(
        _CONFIG.format(
            root=root,
            imap_port=imap_port,
            imaps_port=imaps_port,
            lmtp_port=lmtp_port,
            tls=_TLS_CONFIG.format(root=root) if tls else _PLAIN_CONFIG,
            # (a trusted network may log in without TLS)
            trusted="" if tls else "login_trusted_networks = 127.0.0.0/8\n",
            internal_user=internal_user,
            internal_group=internal_group,
            login_user=login_user,
            mail_user=mail_user,
            mail_group=mail_group,
            capability=cap_line,
            imap_services="".join(
                f"service {name} {{\n  executable = {libexec / name}\n}}\n"
                for name in IMAP_SERVICES
            ),
            imap_login_executable=f"  executable = {libexec / 'imap-login'}\n",
        )
    )
    proc = subprocess.Popen(
        [binary, "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    server = Dovecot(root, imap_port, lmtp_port, proc, imaps_port)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            if proc.stdout is not None:
                proc.stdout.close()
            shutil.rmtree(root, ignore_errors=True)
            raise DovecotError(f"dovecot exited with {proc.returncode}: {out}{server.log()}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", imap_port), timeout=1) as s,
        ):
            if s.recv(100).startswith(b"* OK"):
                return server
        time.sleep(0.02)
    log = server.log()
    server.stop()
    raise DovecotError(f"dovecot did not answer on port {imap_port} within 10 s: {log}")


def append(m: imaplib.IMAP4, mailbox: str, raw: bytes, flags: str = "") -> int:
    """APPEND with the stdlib client; returns the new UID (UIDPLUS)."""
    typ, data = m.append(mailbox, f"({flags})" if flags else None, None, raw)
    assert typ == "OK", data
    code = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
    return int(code.split("APPENDUID", 1)[1].split()[1].rstrip("]"))


def message(subject: str, *, msgid: str | None = None, body: str = "hello\r\n") -> bytes:
    """A small RFC 5322 message."""
    mid = msgid or f"<{subject.replace(' ', '.')}.{time.monotonic_ns()}@test>"
    return (
        f"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\n"
        f"Subject: {subject}\r\nMessage-ID: {mid}\r\n"
        f"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n{body}"
    ).encode()
