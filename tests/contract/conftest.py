"""The contract suite runs against adapters connected to a real Dovecot (full capability
set and the plain one); another IMAP-shaped adapter joins by adding a fixture param."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from bridge.upstream.base import MailAdapter
from bridge.upstream.imap import ImapAdapter, ImapSettings
from tests.contract.dav_fixtures import (  # noqa: F401 (the DAV suite's fixtures)
    account,
    cyrus_server,
    dav,
    dav_server,
    radicale_server,
)
from tests.servers import dovecot as dv


@pytest.fixture(scope="session", params=[dv.FULL, dv.PLAIN], ids=["full", "plain"])
def server(request: pytest.FixtureRequest) -> Iterator[dv.Dovecot]:
    s = dv.start(request.param)
    yield s
    s.stop()


@pytest.fixture
async def adapter(server: dv.Dovecot) -> AsyncIterator[MailAdapter]:
    user, password = server.add_user()
    a = ImapAdapter(ImapSettings(server.host, server.imap_port, "none", user, password))
    await a.connect()
    try:
        yield a
    finally:
        await a.close()
        server.close_clients()
