"""The TLS client context of every upstream connection: the system's trusted certificates,
plus those of `ca_file` (a private authority's, or a server's own self-signed certificate,
as a default Kerio Connect has), or no checks at all where the settings turn them off."""

from __future__ import annotations

import ssl

from bridge.upstream.base import ConnectFailed


def client_context(verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext:
    """Raises ConnectFailed when `ca_file` cannot be read as PEM certificates."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConnectFailed(f"cannot read trusted certificates from {ca_file}: {exc}") from exc
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def untrusted(exc: BaseException) -> str | None:
    """What to tell when `exc` is (or wraps) a refused server certificate, with what to do
    about it; None for any other error."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    refused = False
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, ssl.SSLCertVerificationError):
            refused = True
            why = getattr(err, "verify_message", None)  # (aiohttp's subclass has none)
            if why:
                return _untrusted(why)
        # aiohttp keeps the ssl error as an attribute, others chain it
        stack += [getattr(err, "certificate_error", None), err.__cause__, err.__context__]
    return _untrusted("verification failed") if refused else None


def _untrusted(why: str) -> str:
    return (
        f"TLS: the server's certificate is not trusted ({why}); name it, or the authority "
        "that issued it, in ca_file, or turn verify_tls off"
    )
