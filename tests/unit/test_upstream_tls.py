"""The TLS client context of the upstream connections."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from bridge.upstream.base import ConnectFailed
from bridge.upstream.tls import client_context, untrusted


def test_checks_are_on_unless_turned_off() -> None:
    strict, lax = client_context(), client_context(verify=False)
    assert (strict.verify_mode, strict.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert (lax.verify_mode, lax.check_hostname) == (ssl.CERT_NONE, False)


def test_an_unreadable_ca_file_is_a_connection_error_that_names_it(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("no certificate here\n")
    for path in (tmp_path / "junk.pem", tmp_path / "missing.pem"):
        with pytest.raises(ConnectFailed, match=f"trusted certificates from {path}"):
            client_context(ca_file=str(path))


def test_only_a_refused_certificate_is_explained() -> None:
    refused = ssl.SSLCertVerificationError(1, "certificate verify failed")
    wrapped = ConnectionError("handshake")
    wrapped.__cause__ = refused
    for exc in (refused, wrapped):
        assert "not trusted" in (untrusted(exc) or "")
    assert untrusted(ssl.SSLError(1, "wrong version number")) is None
    assert untrusted(ConnectionRefusedError(111, "refused")) is None
