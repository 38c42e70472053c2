"""Fixtures of the DAV adapter contract suite: the same tests run against the in-memory
adapter, a real Radicale and a real Cyrus. conftest.py registers the fixtures."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import pytest

from bridge.upstream.dav import HttpDavAdapter
from bridge.upstream.dav_base import DavAdapter, DavSettings
from tests.fakes.dav_memory import MemoryDavServer
from tests.servers import cyrus, radicale


class _Server(Protocol):
    @property
    def url(self) -> str: ...

    def add_user(self) -> tuple[str, str]: ...


@dataclass
class Account:
    """One fresh account on one backend; `adapter()` makes a client of it (call it twice
    for a second client that edits the server behind the first one's back)."""

    backend: str
    settings: DavSettings
    memory: MemoryDavServer | None = None

    def adapter(self, **changes: Any) -> DavAdapter:
        settings = replace(self.settings, **changes)
        if self.memory is not None:
            return self.memory.adapter(settings)
        return HttpDavAdapter(settings)


@dataclass
class Backend:
    name: str
    server: _Server | None = None
    _n: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def account(self) -> Account:
        if self.server is None:
            n = next(self._n)
            mem = MemoryDavServer(f"m{n}", f"pw-m{n}", defaults=False)
            return Account(self.name, DavSettings(f"mem:///{n}/", mem.username, mem.password), mem)
        user, password = self.server.add_user()
        return Account(self.name, DavSettings(self.server.url, user, password, timeout=20))


@pytest.fixture(scope="session")
def radicale_server() -> Iterator[radicale.Radicale]:
    server = radicale.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cyrus_server() -> Iterator[cyrus.Cyrus]:
    server = cyrus.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=["memory", "radicale", "cyrus"])
def dav_server(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        return Backend("memory")
    server: _Server = request.getfixturevalue(f"{request.param}_server")
    return Backend(request.param, server)


@pytest.fixture
def account(dav_server: Backend) -> Account:
    return dav_server.account()


@pytest.fixture
async def dav(account: Account) -> AsyncIterator[DavAdapter]:
    a = account.adapter()
    await a.connect()
    try:
        yield a
    finally:
        await a.close()


# --- resources ----------------------------------------------------------------------------


def _fold(line: str) -> str:
    """Fold a content line at 74 characters (RFC 5545 §3.1)."""
    out, rest = [], line
    while len(rest) > 74:
        out.append(rest[:74])
        rest = rest[74:]
    out.append(rest)
    return "\r\n ".join(out)


def event(uid: str, summary: str, description: str = "") -> bytes:
    desc = _fold(f"DESCRIPTION:{description}") + "\r\n" if description else ""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//kbridge//tests//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n"
        "DTSTART:20240102T100000Z\r\nDTEND:20240102T110000Z\r\n"
        f"SUMMARY:{summary}\r\n{desc}END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def todo(uid: str, summary: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//kbridge//tests//EN\r\n"
        f"BEGIN:VTODO\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n"
        f"SUMMARY:{summary}\r\nDUE:20240105T120000Z\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    ).encode()


def journal(uid: str, summary: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//kbridge//tests//EN\r\n"
        f"BEGIN:VJOURNAL\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n"
        f"DTSTART;VALUE=DATE:20240101\r\nSUMMARY:{summary}\r\n"
        "DESCRIPTION:a yellow note\r\nEND:VJOURNAL\r\nEND:VCALENDAR\r\n"
    ).encode()


def vcard(uid: str, name: str) -> bytes:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n"
        "EMAIL;TYPE=INTERNET:someone@example.org\r\nEND:VCARD\r\n"
    ).encode()


def unfold(data: bytes) -> str:
    """The content lines of an iCalendar or vCard object, unfolded, whatever line ends the
    server used."""
    text = data.decode("utf-8").replace("\r\n", "\n")
    return text.replace("\n ", "").replace("\n\t", "")
