"""A real SMTP submission server for the tests: aiosmtpd in the test's event loop on a
loopback port the OS assigns, with AUTH PLAIN/LOGIN against the test Dovecot's accounts,
delivering every accepted message into Dovecot over LMTP.

Recipients whose local part starts with `reject` are refused with a 550, those with a
`+busy` detail (`u7+busy@localhost`) with a 451 as long as `busy` is true, so that
rejections and temporary failures come from a real SMTP conversation.

`start(dovecot, tls=...)` serves STARTTLS (required before anything else, and before AUTH)
or implicit TLS, with the TLS Dovecot's certificate (`dovecot.start(tls=True)`).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import warnings
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers.dovecot import Dovecot


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    encrypted: bool = False  # whether it came over TLS


@dataclass
class Handler:
    dovecot: Dovecot
    received: list[Received] = field(default_factory=list)
    busy: bool = True
    # (user, password): also file each message in that account's Sent, as servers that
    # save sent mail themselves do
    saves_sent_for: tuple[str, str] | None = None

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        local = address.partition("@")[0].lower()
        if local.startswith("reject"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: no such user"
        if "+busy" in local and self.busy:
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        mail_from = str(envelope.mail_from)
        rcpts = list(envelope.rcpt_tos)
        transport = server.transport
        encrypted = transport is not None and transport.get_extra_info("ssl_object") is not None
        self.received.append(Received(mail_from, rcpts, data, encrypted))
        try:
            await asyncio.to_thread(self._deliver, mail_from, rcpts, data)
        except (OSError, smtplib.SMTPException) as exc:
            return f"451 4.3.0 local delivery failed: {exc}"
        return "250 OK delivered"

    def _deliver(self, mail_from: str, rcpts: list[str], data: bytes) -> None:
        # one transaction per recipient: smtplib reads only one reply to LMTP's DATA
        for rcpt in rcpts:
            with smtplib.LMTP(self.dovecot.host, self.dovecot.lmtp_port, timeout=10) as lmtp:
                lmtp.sendmail(mail_from, [rcpt], data)
        if self.saves_sent_for is not None:
            m = self.dovecot.client(*self.saves_sent_for)
            m.append("Sent", "(\\Seen)", None, data)


def _authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    if isinstance(auth_data, LoginPassword):
        user = auth_data.login.decode()
        ok = auth_data.password.decode() == f"pw-{user}"
        return AuthResult(success=ok, handled=False)
    return AuthResult(success=False, handled=False)


@dataclass
class Submission:
    handler: Handler
    server: asyncio.AbstractServer
    port: int
    host: str = "127.0.0.1"

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def start(dovecot: Dovecot, tls: str = "none") -> Submission:
    """A submission server: `tls` none, starttls or implicit."""
    handler = Handler(dovecot)
    context = None
    if tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(dovecot.ca_file, dovecot.root / "tls" / "key.pem")

    def protocol() -> SMTP:
        with warnings.catch_warnings():  # AUTH without TLS: on loopback, on purpose
            warnings.simplefilter("ignore", UserWarning)
            return SMTP(
                handler,
                hostname="submission.test",
                authenticator=_authenticator,
                auth_required=True,
                # (aiosmtpd knows of STARTTLS only: with implicit TLS, AUTH is over TLS too)
                auth_require_tls=tls == "starttls",
                tls_context=context if tls == "starttls" else None,
                require_starttls=tls == "starttls",
                decode_data=False,
            )

    server = await asyncio.get_running_loop().create_server(
        protocol, "127.0.0.1", 0, ssl=context if tls == "implicit" else None
    )
    port = int(server.sockets[0].getsockname()[1])
    return Submission(handler, server, port)
