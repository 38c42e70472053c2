"""IMAP and SMTP submission over TLS against real servers (Dovecot, aiosmtpd) with a
certificate for 127.0.0.1: implicit TLS and STARTTLS, with the certificate checked (trusted
through the config's ca_file, or SSL_CERT_FILE as OpenSSL reads it) or not checked when the
settings say so; and what a client must refuse around STARTTLS, from a small scripted
server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.config import load_config
from bridge.model import tags
from bridge.store.store import Store
from bridge.sync.engine import Engine
from bridge.sync.imap_service import ImapSyncService
from bridge.sync.outbox import Outbox
from bridge.sync.services import for_config
from bridge.upstream import smtp
from bridge.upstream.base import ConnectFailed
from bridge.upstream.imap import ImapAdapter, ImapSettings
from tests.integration.test_smtp_submission import draft, header_block, mailbox, rcpt
from tests.servers import dovecot as dv
from tests.servers import submission

GUARD = 20.0
UNTRUSTED = r"not trusted \(self-signed certificate\); name it, .* in ca_file"


@pytest.fixture(scope="session")
def dovecot_tls() -> Iterator[dv.Dovecot]:
    server = dv.start(dv.FULL, tls=True)
    yield server
    server.stop()


@pytest.fixture
def trusted(dovecot_tls: dv.Dovecot, monkeypatch: pytest.MonkeyPatch) -> dv.Dovecot:
    """The server, its certificate trusted the way OpenSSL finds trusted certificates."""
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot_tls.ca_file))
    return dovecot_tls


def settings(server: dv.Dovecot, tls: str, user: str, verify_tls: bool = True) -> ImapSettings:
    port = server.imaps_port if tls == "implicit" else server.imap_port
    return ImapSettings(server.host, port, tls, user, f"pw-{user}", verify_tls, timeout=5)


async def pull(store: Store, imap: ImapSettings) -> tuple[int, bool]:
    """Sync once; (messages fetched, whether the connection was encrypted)."""
    adapter = ImapAdapter(imap)
    await asyncio.wait_for(adapter.connect(), GUARD)
    try:
        assert adapter.conn.writer is not None
        encrypted = adapter.conn.writer.get_extra_info("ssl_object") is not None
        report = await asyncio.wait_for(Engine(store, adapter).run(adapter.delimiter or "/"), GUARD)
        return report.fetched, encrypted
    finally:
        await adapter.close()


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
async def test_mail_syncs_over_tls_with_the_certificate_checked(
    store: Store, trusted: dv.Dovecot, tls: str
) -> None:
    user, password = trusted.add_user()
    dv.append(trusted.client(user, password), "INBOX", dv.message(f"over {tls}"))
    try:
        fetched, encrypted = await pull(store, settings(trusted, tls, user))
    finally:
        trusted.close_clients()
    assert (fetched, encrypted) == (1, True)
    items, _ = await store.queries.list(store.folders.roles["inbox"], limit=10)
    assert [i.props.get(tags.SUBJECT) for i in items] == [f"over {tls}"]


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
async def test_an_untrusted_certificate_is_refused_unless_checks_are_off(
    store: Store, dovecot_tls: dv.Dovecot, tls: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    user, _ = dovecot_tls.add_user()
    adapter = ImapAdapter(settings(dovecot_tls, tls, user))
    with pytest.raises(ConnectFailed, match=UNTRUSTED):
        await asyncio.wait_for(adapter.connect(), GUARD)
    fetched, encrypted = await pull(store, settings(dovecot_tls, tls, user, verify_tls=False))
    assert (fetched, encrypted) == (0, True)


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_mail_is_submitted_over_tls_with_the_certificate_checked(
    store: Store, trusted: dv.Dovecot, tls: str
) -> None:
    sub = await submission.start(trusted, tls)
    user, password = trusted.add_user()
    to = trusted.add_user()[0]
    try:
        iid = await draft(store, f"sent over {tls}", rcpt(f"{to}@localhost"), sender=f"{user}@l")
        await store.items.submit(iid)
        settings = smtp.SmtpSettings(sub.host, sub.port, tls, user, password, timeout=5)
        report = await asyncio.wait_for(Outbox(store, settings).drain(), GUARD)
        assert (report.sent, report.failed, report.deferred) == (1, 0, 0), report
        assert [got.encrypted for got in sub.handler.received] == [True]
        [raw] = mailbox(trusted, to)
        assert f"subject: sent over {tls}".encode() in header_block(raw)
    finally:
        await sub.close()
        trusted.close_clients()


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_an_untrusted_smtp_certificate_is_refused_unless_checks_are_off(
    dovecot_tls: dv.Dovecot, tls: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    sub = await submission.start(dovecot_tls, tls)
    user, password = dovecot_tls.add_user()
    strict = smtp.SmtpSettings(sub.host, sub.port, tls, user, password, timeout=5)
    try:
        with pytest.raises(ConnectFailed, match=UNTRUSTED):
            async with smtp.session(strict):
                pass
        lax = smtp.SmtpSettings(sub.host, sub.port, tls, user, password, False, timeout=5)
        async with smtp.session(lax) as session:
            transport = session.client.transport
            assert transport is not None and transport.get_extra_info("ssl_object") is not None
    finally:
        await sub.close()


async def test_a_config_s_ca_file_is_trusted_by_imap_and_smtp(
    store: Store, dovecot_tls: dv.Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the YAML file to the wire: the server's self-signed certificate, named by
    upstream.ca_file, is trusted with verify_tls on; the sync pulls and sends over TLS."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    sub = await submission.start(dovecot_tls, "starttls")
    user, password = dovecot_tls.add_user()
    to = dovecot_tls.add_user()[0]
    (tmp_path / "server.pem").write_bytes(dovecot_tls.ca_file.read_bytes())
    (tmp_path / "bridge.yaml").write_text(
        f"upstream:\n  username: {user}\n  password: {password}\n  ca_file: server.pem\n"
        f"  imap: {{host: 127.0.0.1, port: {dovecot_tls.imaps_port}, tls: implicit}}\n"
        f"  smtp: {{host: 127.0.0.1, port: {sub.port}, tls: starttls}}\n"
    )
    service = for_config(store, load_config(tmp_path / "bridge.yaml"))
    assert isinstance(service, ImapSyncService)
    dv.append(dovecot_tls.client(user, password), "INBOX", dv.message("trusted by ca_file"))
    iid = await draft(store, "sent with ca_file", rcpt(f"{to}@localhost"), sender=f"{user}@l")
    await store.items.submit(iid)
    await service.start()
    try:
        await service.run_now()
        deadline = asyncio.get_running_loop().time() + GUARD
        while service.state != "online" or sub.handler.received == []:
            assert asyncio.get_running_loop().time() < deadline, (service.state, service.message)
            await asyncio.sleep(0.05)
    finally:
        await service.stop()
        await sub.close()
        dovecot_tls.close_clients()
    items, _ = await store.queries.list(store.folders.roles["inbox"], limit=10)
    assert [i.props.get(tags.SUBJECT) for i in items] == ["trusted by ca_file"]
    assert [got.encrypted for got in sub.handler.received] == [True]


# -- what a client must refuse around STARTTLS -------------------------------------------------


@dataclass
class TlsScript:
    """A scripted IMAP server that offers STARTTLS and records the commands it is sent,
    each with whether it came over TLS."""

    context: ssl.SSLContext
    after_ok: bytes = b""  # sent in clear text right after the STARTTLS OK
    commands: list[tuple[str, bool]] = field(default_factory=list)
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        secure = False
        writer.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n")
        try:
            while line := await reader.readline():
                tag, _, rest = line.decode().strip().partition(" ")
                verb = rest.split(" ")[0].upper()
                self.commands.append((verb, secure))
                if verb == "STARTTLS" and not secure:
                    writer.write(f"{tag} OK begin TLS now\r\n".encode() + self.after_ok)
                    await writer.drain()
                    await writer.start_tls(self.context)
                    secure = True
                    continue
                if verb == "CAPABILITY":
                    writer.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\n")
                if verb == "LOGIN":
                    writer.write(f"{tag} NO [PRIVACYREQUIRED] LOGIN is disabled\r\n".encode())
                    continue
                writer.write(f"{tag} OK {verb.lower()} done\r\n".encode())
                await writer.drain()
        except (OSError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def script(dovecot_tls: dv.Dovecot) -> AsyncIterator[TlsScript]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(dovecot_tls.ca_file, dovecot_tls.root / "tls" / "key.pem")
    found = TlsScript(context)
    server = await asyncio.start_server(found.serve, "127.0.0.1", 0)
    found.port = int(server.sockets[0].getsockname()[1])
    try:
        yield found
    finally:
        server.close()


def script_settings(script: TlsScript) -> ImapSettings:
    return ImapSettings("127.0.0.1", script.port, "starttls", "u", "p", verify_tls=False, timeout=5)


async def test_capabilities_are_asked_again_after_starttls(script: TlsScript) -> None:
    """RFC 3501 6.2.1: what the server announced in clear text is discarded. Here it said
    LOGINDISABLED; over TLS it offers AUTH=PLAIN, which the login must then use."""
    adapter = ImapAdapter(script_settings(script))
    await asyncio.wait_for(adapter.connect(), GUARD)
    await adapter.close()
    before_login = [c for c in script.commands if c[0] in ("CAPABILITY", "AUTHENTICATE", "LOGIN")]
    assert before_login[:2] == [("CAPABILITY", True), ("AUTHENTICATE", True)]


async def test_clear_text_after_the_starttls_ok_is_refused(script: TlsScript) -> None:
    """Bytes after the OK, before the handshake, would pass for an answer that came over
    TLS: a man in the middle could inject them. The client refuses and sends nothing."""
    script.after_ok = b"* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\n"
    adapter = ImapAdapter(script_settings(script))
    with pytest.raises(ConnectFailed, match="sent data after agreeing to STARTTLS"):
        await asyncio.wait_for(adapter.connect(), GUARD)
    assert [verb for verb, _ in script.commands] == ["STARTTLS"]
