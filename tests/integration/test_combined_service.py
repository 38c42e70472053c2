"""Mail (real Dovecot) and calendars/contacts side by side: one service face, two loops, and
a DAV server that is down holds up neither the mail sync nor the other way round."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bridge.model import classes, tags
from bridge.store.items import NewItem
from bridge.store.store import Store
from bridge.sync.dav_service import DavEndpoint, DavOptions, DavRunner, DavSyncService
from bridge.sync.imap_service import ImapSyncService
from bridge.sync.services import CombinedSyncService
from bridge.upstream import dav_href
from bridge.upstream.dav_base import DavSettings
from tests.fakes.dav_memory import MemoryDavServer
from tests.integration.conftest import Account
from tests.servers import dovecot as dv


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_mail_syncs_while_the_dav_server_is_down(store: Store, account: Account) -> None:
    dav_server = MemoryDavServer()
    dav_server.offline = True
    settings = DavSettings("mem://dav/", dav_server.username, dav_server.password)
    runner = DavRunner(
        store, [DavEndpoint("caldav", settings)], DavOptions(), adapter_factory=dav_server.adapter
    )
    mail = ImapSyncService(store, account.settings(), interval=60)
    service = CombinedSyncService(store, mail, DavSyncService(store, runner, interval=3600))
    dv.append(account.client(), "INBOX", dv.message("while DAV is down"))
    await service.start()
    try:

        async def mail_arrived() -> bool:
            items, _ = await store.queries.list(store.folders.roles["inbox"])
            return any(i.props.get(tags.SUBJECT) == "while DAV is down" for i in items)

        await until(mail_arrived)
        await until(lambda: _state_is(service, "offline"))
        status = await service.status()
        assert mail.state == "online"
        assert status["upstreams"]["caldav"]["state"] == "offline"
        assert "calendars and contacts" in status["message"]
        # made while the DAV server is down, sent when it is back
        cal = store.folders.roles["calendar"]
        await store.items.create(cal, NewItem(classes.IPM_TASK, {tags.SUBJECT: "Later"}))
        # the DAV server comes back: one "sync now" reaches both loops
        dav_server.offline = False
        await service.run_now()
        assert service.state == "syncing"
        await until(lambda: _state_is(service, "online"))
        assert (await service.status())["upstreams"]["caldav"]["state"] == "online"
        coll = dav_server.collections[dav_href.as_collection(dav_server.home + "calendar")]
        assert len(coll.items) == 1
        # the user's switch reaches both
        await service.set_offline(True)
        assert mail.work_offline and service.dav.work_offline
        assert (await service.status())["state"] == "offline"
    finally:
        await service.stop()


async def _state_is(service: CombinedSyncService, state: str) -> bool:
    return service.state == state
