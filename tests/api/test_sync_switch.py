"""The "work offline" switch: POST /api/v1/sync/offline, reflected in the sync status."""

from __future__ import annotations

from pytest_aiohttp import AiohttpClient

from bridge.api.app import create_app
from bridge.store.store import Store
from bridge.sync.imap_service import ImapSyncService
from bridge.upstream.imap import ImapSettings
from tests.api.helpers import Api, MakeToken


async def test_switch_without_upstream_is_a_conflict(api: Api, make_token: MakeToken) -> None:
    doc = await api.problem("POST", "/api/v1/sync/offline", 409, json={"offline": True})
    assert "no upstream" in doc["detail"]
    for body in ({}, {"offline": "yes"}, [], {"offline": 1}):
        await api.problem("POST", "/api/v1/sync/offline", 400, json=body)
    reader = api.as_token(await make_token("read"))
    await reader.problem("POST", "/api/v1/sync/offline", 403, json={"offline": True})


async def test_switch_reaches_the_service(
    store: Store, admin_secret: str, aiohttp_client: AiohttpClient
) -> None:
    # not started: the switch only sets state; nothing connects
    service = ImapSyncService(store, ImapSettings("127.0.0.1", 1, "none", "u", "p"))
    api = Api(await aiohttp_client(create_app(store, service)), admin_secret)
    status = await api.post("/api/v1/sync/offline", 200, json={"offline": True})
    assert status["work_offline"] is True
    assert status["state"] == "offline"
    assert "switched by the user" in status["message"]
    assert (await api.get("/api/v1/sync/status"))["work_offline"] is True
    status = await api.post("/api/v1/sync/offline", 200, json={"offline": False})
    assert status["work_offline"] is False
    assert status["state"] != "offline"
    assert service.work_offline is False


async def test_confirm_empty_checks_its_input(
    api: Api, store: Store, admin_secret: str, aiohttp_client: AiohttpClient
) -> None:
    doc = await api.problem("POST", "/api/v1/sync/confirm-empty", 409, json={"mailboxes": ["A"]})
    assert "no mail upstream" in doc["detail"]
    service = ImapSyncService(store, ImapSettings("127.0.0.1", 1, "none", "u", "p"))
    mail = Api(await aiohttp_client(create_app(store, service)), admin_secret)
    for body in ({}, {"mailboxes": []}, {"mailboxes": "INBOX"}, {"mailboxes": [1]}, []):
        await mail.problem("POST", "/api/v1/sync/confirm-empty", 400, json=body)
    doc = await mail.problem("POST", "/api/v1/sync/confirm-empty", 409, json={"mailboxes": ["A"]})
    assert doc["type"].endswith("not-held")
    service.last_report = {"held": ["A"]}  # as a run that found A emptied leaves it
    out = await mail.post("/api/v1/sync/confirm-empty", 202, json={"mailboxes": ["A", "B"]})
    assert out == {"confirmed": ["A"]}
    assert service.confirmed_empty == {"A"}
