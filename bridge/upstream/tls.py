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
