"""Fixtures of the integration tests: real Dovecot servers (started once per test session,
one per announced capability set), a fresh account per test, a store, and a sync helper.

If Dovecot cannot be started the tests fail with the reason; nothing is skipped."""

from __future__ import annotations

import imaplib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.store.store import Store
from bridge.sync.engine import Engine, Report
from bridge.upstream.imap import ImapAdapter, ImapSettings
from tests.servers import dovecot as dv


@pytest.fixture(scope="session")
def dovecot() -> Iterator[dv.Dovecot]:
    server = dv.start(dv.FULL)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dovecot_condstore() -> Iterator[dv.Dovecot]:
    server = dv.start(dv.CONDSTORE_ONLY)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dovecot_plain() -> Iterator[dv.Dovecot]:
    server = dv.start(dv.PLAIN)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dovecot_minimal() -> Iterator[dv.Dovecot]:
    server = dv.start(dv.MINIMAL)
    yield server
    server.stop()


@dataclass
class Account:
    server: dv.Dovecot
    user: str
    password: str

    def settings(self) -> ImapSettings:
        return ImapSettings(
            self.server.host, self.server.imap_port, "none", self.user, self.password
        )

    def client(self) -> imaplib.IMAP4:
        return self.server.client(self.user, self.password)

    async def adapter(self) -> ImapAdapter:
        adapter = ImapAdapter(self.settings())
        await adapter.connect()
        return adapter


@pytest.fixture
def account(dovecot: dv.Dovecot) -> Iterator[Account]:
    yield Account(dovecot, *dovecot.add_user())
    dovecot.close_clients()


@pytest.fixture(params=["qresync", "condstore", "plain"])
def any_account(request: pytest.FixtureRequest) -> Iterator[Account]:
    """An account on each of the three servers: every pull path runs."""
    name = {"qresync": "dovecot", "condstore": "dovecot_condstore", "plain": "dovecot_plain"}
    server: dv.Dovecot = request.getfixturevalue(name[request.param])
    yield Account(server, *server.add_user())
    server.close_clients()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "store.sqlite")
    try:
        yield s
    finally:
        await s.close()


async def sync(store: Store, account: Account, policy: str = "keep-both") -> Report:
    adapter = await account.adapter()
    try:
        return await Engine(store, adapter, policy).run(adapter.delimiter or "/")
    finally:
        await adapter.close()
