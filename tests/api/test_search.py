"""GET /api/v1/search: results, paging, bad queries, folder-limited tokens."""

from __future__ import annotations

from bridge.store.store import Store
from tests.api.helpers import Api, MakeToken


async def test_search_api(api: Api, store: Store, make_token: MakeToken) -> None:
    roles = await api.roles()
    inbox = roles["inbox"]
    private = (await api.new_folder(inbox, "Private"))["id"]
    other = (await api.new_folder(roles["drafts"], "Elsewhere"))["id"]
    older = await api.new_item(
        private,
        {"PidTagSubject": "Invoice 17", "PidTagMessageDeliveryTime": "2024-01-01T00:00:00Z"},
    )
    newer = await api.new_item(
        other,
        {"PidTagSubject": "Invoice 18", "PidTagMessageDeliveryTime": "2024-02-01T00:00:00Z"},
    )
    doc = await api.get("/api/v1/search?q=invoice&columns=PidTagSubject")
    assert [i["id"] for i in doc["items"]] == [newer["id"], older["id"]]
    assert doc["items"][0] == {
        "id": newer["id"],
        "folder_id": other,
        "props": {"PidTagSubject": "Invoice 18"},
    }
    assert doc["total"] == 2 and doc["complete"] is True
    doc = await api.get(f"/api/v1/search?q=invoice&folder={private}")
    assert [i["id"] for i in doc["items"]] == [older["id"]]
    doc = await api.get("/api/v1/search?q=invoice&limit=1&offset=1")
    assert [i["id"] for i in doc["items"]] == [older["id"]] and doc["total"] == 2

    limited = api.as_token(await make_token("read", folders=[store.ids.parse("folder", inbox)]))
    doc = await limited.get("/api/v1/search?q=invoice")
    assert [i["id"] for i in doc["items"]] == [older["id"]]
    await limited.problem("GET", f"/api/v1/search?q=invoice&folder={other}", 403)


async def test_bad_search_requests(api: Api) -> None:
    for q in ["", '"open', "has:cake", "before:2024-02-30", "-alone"]:
        doc = await api.problem("GET", "/api/v1/search", 400, params={"q": q})
        assert doc["status"] == 400
    await api.problem("GET", "/api/v1/search", 400)
    await api.problem("GET", "/api/v1/search?q=x&limit=0", 400)
    await api.problem("GET", "/api/v1/search?q=x&folder=nope", 404)
