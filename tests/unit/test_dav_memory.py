"""The switches of the in-memory DAV upstream that the sync engine's tests rely on (the
behaviour it shares with real servers is in tests/contract/test_dav_adapter.py)."""

from __future__ import annotations

import pytest

from bridge.upstream.base import AuthFailed, ConnectFailed, UpstreamError
from bridge.upstream.dav_base import CALENDAR, DavSettings, ResourceGone, SyncTokenInvalid
from tests.fakes.dav_memory import MemoryDavAdapter, MemoryDavServer

ICS = b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"


async def _connected(server: MemoryDavServer) -> MemoryDavAdapter:
    a = server.adapter()
    await a.connect()
    return a


async def test_default_collections() -> None:
    a = await _connected(MemoryDavServer())
    assert sorted(c.kind for c in await a.collections()) == ["addressbook", "calendar", "tasks"]


async def test_sync_collection_switch() -> None:
    server = MemoryDavServer()
    a = await _connected(server)
    cal = next(c for c in await a.collections() if c.kind == CALENDAR)
    server.sync_collection = False
    with pytest.raises(UpstreamError) as info:
        await a.changes(cal, None)
    assert not isinstance(info.value, SyncTokenInvalid)
    await a.put(cal, "a.ics", ICS, create=True)
    assert len(await a.listing(cal)) == 1  # the fallback still works


async def test_expire_tokens() -> None:
    server = MemoryDavServer()
    a = await _connected(server)
    cal = next(c for c in await a.collections() if c.kind == CALENDAR)
    token = (await a.changes(cal, None)).token
    server.expire_tokens()
    with pytest.raises(SyncTokenInvalid):
        await a.changes(cal, token)
    fresh = (await a.changes(cal, None)).token
    assert (await a.changes(cal, fresh)).changed == []


async def test_offline_auth_and_etag_switches() -> None:
    server = MemoryDavServer()
    bad = server.adapter(DavSettings("mem:///", server.username, "wrong"))
    with pytest.raises(AuthFailed):
        await bad.connect()
    a = await _connected(server)
    cal = next(c for c in await a.collections() if c.kind == CALENDAR)
    server.return_etags = False
    r = await a.put(cal, "a.ics", ICS, create=True)
    assert r.etag is None and (await a.listing(cal))[0].etag
    server.offline = True
    with pytest.raises(ConnectFailed):
        await a.collections()
    server.offline = False
    assert server.data(r.href) == ICS
    assert f"put {r.href}" in server.calls


async def test_read_only_collection_and_gone_collection() -> None:
    server = MemoryDavServer(defaults=False)
    shared = server.add_collection(CALENDAR, "Shared", writable=False)
    a = await _connected(server)
    assert [c.writable for c in await a.collections()] == [False]
    with pytest.raises(UpstreamError, match="403"):
        await a.put(shared, "a.ics", ICS, create=True)
    await a.delete_collection(shared.href)
    with pytest.raises(ResourceGone):
        await a.listing(shared)
