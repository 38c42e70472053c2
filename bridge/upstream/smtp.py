"""SMTP submission: hand a finished message to the upstream's submission server.

This is not a sync adapter: the outbox drain (`bridge/sync/outbox.py`) opens a session,
sends each queued message and learns from the outcome whether it left, was rejected for
good (a 5xx reply: `Rejected`) or should be tried again later (a 4xx reply or a dropped
connection: `Deferred`, `ConnectFailed`).

Transport: implicit TLS, STARTTLS (required, not opportunistic) or clear text, which is
refused unless the server is on the loopback interface. Login: AUTH PLAIN, else AUTH
LOGIN, when the server offers AUTH. Client library: aiosmtplib (asyncio, typed, no
dependencies of its own).
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiosmtplib

from bridge.upstream.base import AuthFailed, ConnectFailed, UpstreamError
from bridge.upstream.tls import client_context, untrusted


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: str  # implicit | starttls | none
    username: str
    password: str
    verify_tls: bool = True
    saves_sent: bool = False
    timeout: float = 60.0
    ca_file: str | None = None  # certificates trusted besides the system's


class Rejected(UpstreamError):
    """The server refused the message for good (a 5xx reply). `recipients` are the
    refused addresses when the refusal was per recipient, else empty (all of them)."""

    def __init__(self, code: int, text: str, recipients: Sequence[str] = ()) -> None:
        super().__init__(f"{code} {text}".strip())
        self.code = code
        self.text = text
        self.recipients = list(recipients)


class Deferred(UpstreamError):
    """The server refused for now (a 4xx reply): try again later."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}".strip())
        self.code = code


@dataclass(frozen=True)
class Refusal:
    """One recipient the server refused while accepting the message for the others."""

    address: str
    code: int
    text: str


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_BCC = re.compile(rb"^(?:resent-)?bcc[ \t]*:", re.IGNORECASE)


def strip_bcc(raw: bytes) -> bytes:
    """The message without Bcc (and Resent-Bcc) header fields, continuation lines
    included; the body is left as it is."""
    end = raw.find(b"\r\n\r\n")
    sep = b"\r\n"
    if end < 0 or (0 <= raw.find(b"\n\n") < end):
        end, sep = raw.find(b"\n\n"), b"\n"
    if end < 0:
        head, rest = raw, b""
    else:
        head, rest = raw[:end], raw[end:]
    lines = head.split(sep)
    kept: list[bytes] = []
    dropping = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = bool(_BCC.match(line))
        if not dropping:
            kept.append(line)
    return sep.join(kept) + rest


def _failure(exc: Exception) -> UpstreamError:
    """An aiosmtplib error as one of ours."""
    why = untrusted(exc)
    if why is not None:
        return ConnectFailed(f"SMTP connection failed: {why}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return AuthFailed(f"the SMTP server rejected the login: {exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = [(str(e.recipient), e.code, e.message) for e in exc.recipients]
        if refused and all(code >= 500 for _, code, _ in refused):
            _, code, text = refused[0]
            return Rejected(code, text, [addr for addr, _, _ in refused])
        code, text = next(((c, t) for _, c, t in refused if c < 500), (451, "try again"))
        return Deferred(code, text)
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
        return ConnectFailed(f"SMTP connection failed: {exc}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return ConnectFailed(f"SMTP server timed out: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if exc.code >= 500:
            return Rejected(exc.code, exc.message)
        if exc.code >= 400:
            return Deferred(exc.code, exc.message)
        return ConnectFailed(f"unexpected SMTP reply {exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return Rejected(554, f"the SMTP server cannot take this message: {exc}")
    if isinstance(exc, OSError | ssl.SSLError | TimeoutError | aiosmtplib.SMTPException):
        return ConnectFailed(f"SMTP connection failed: {exc}")
    return UpstreamError(str(exc))


class SmtpSession:
    """One logged-in connection; `send` may be called for several messages."""

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client

    async def send(self, sender: str, recipients: Sequence[str], raw: bytes) -> list[Refusal]:
        """Send one message; returns the recipients refused while others were accepted.
        Raises Rejected, Deferred or ConnectFailed."""
        options = []
        if any(b > 0x7F for b in raw) and self.client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        try:
            errors, _ = await self.client.sendmail(
                sender, list(recipients), raw, mail_options=options
            )
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
            raise _failure(exc) from exc
        except ValueError as exc:  # an address aiosmtplib cannot put on the wire
            raise Rejected(553, f"address not accepted: {exc}") from exc
        return [Refusal(str(addr), resp.code, resp.message) for addr, resp in errors.items()]


@asynccontextmanager
async def session(settings: SmtpSettings) -> AsyncIterator[SmtpSession]:
    """Connect and log in; raises AuthFailed or ConnectFailed."""
    if settings.tls == "none" and not is_loopback(settings.host):
        raise ConnectFailed(f"refusing to send a password unencrypted to {settings.host}")
    secure = settings.tls != "none"
    client = aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        use_tls=settings.tls == "implicit",
        start_tls=settings.tls == "starttls",
        tls_context=client_context(settings.verify_tls, settings.ca_file) if secure else None,
        validate_certs=settings.verify_tls if secure else False,
        timeout=settings.timeout,
    )
    try:
        await client.connect()
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        if client.supports_extension("auth") and settings.username:
            methods = client.server_auth_methods
            if "plain" in methods:
                await client.auth_plain(settings.username, settings.password)
            elif "login" in methods:
                await client.auth_login(settings.username, settings.password)
            else:
                raise AuthFailed(
                    "the SMTP server offers neither AUTH PLAIN nor AUTH LOGIN "
                    f"(it offers {', '.join(methods) or 'nothing'})"
                )
    except UpstreamError:
        client.close()
        raise
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
        client.close()
        raise _failure(exc) from exc
    try:
        yield SmtpSession(client)
    finally:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError):
            client.close()
