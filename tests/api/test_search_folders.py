"""Search folders over REST: create with criteria, Get/SetSearchCriteria, contents through
the folder routes (items, change feed, views and their notifications), deleting through
the search folder, the Reminders folder of the store object, and bad input (4xx, nothing
changed)."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.store.store import Store
from tests.api.helpers import Api, MakeToken, Unchanged

SUBJ = "PidTagSubject"
BUDGET = {"content": {"prop": SUBJ, "value": "budget", "match": "substring"}}


async def _search(api: Api, name: str, folders: list[str], **criteria: Any) -> dict[str, Any]:
    roles = await api.roles()
    body = {"restriction": BUDGET, "folders": folders, **criteria}
    doc: dict[str, Any] = await api.post(
        "/api/v1/folders", json={"name": name, "parent_id": roles["ipm_subtree"], "search": body}
    )
    return doc


async def test_create_get_and_set_criteria(api: Api) -> None:
    roles = await api.roles()
    inbox = roles["inbox"]
    a = (await api.new_item(inbox, {SUBJ: "budget 2025"}))["id"]
    await api.new_item(inbox, {SUBJ: "lunch"})
    doc = await _search(api, "Budget", [inbox])
    sf = doc["id"]
    assert doc["props"]["PidTagFolderType"] == 2
    assert doc["props"]["PidTagContentCount"] == 1
    assert doc["search"] == {
        "restriction": BUDGET,
        "folders": [inbox],
        "recursive": False,
        "state": {"running": True, "recursive": False, "flags": 1},
    }
    assert (await api.get(f"/api/v1/folders/{sf}/search-criteria")) == doc["search"]
    listing = await api.get(f"/api/v1/folders/{sf}/items")
    assert [(i["id"], i["folder_id"]) for i in listing["items"]] == [(a, inbox)]
    assert listing["total"] == 1

    # SetSearchCriteria: what is left out stays
    lunch = {"content": {"prop": SUBJ, "value": "lunch", "match": "full"}}
    out = await api.put(f"/api/v1/folders/{sf}/search-criteria", json={"restriction": lunch})
    assert out["restriction"] == lunch and out["folders"] == [inbox]
    listing = await api.get(f"/api/v1/folders/{sf}/items")
    assert [i["props"][SUBJ] for i in listing["items"]] == ["lunch"]
    out = await api.put(f"/api/v1/folders/{sf}/search-criteria", json={"recursive": True})
    assert out["state"] == {"running": True, "recursive": True, "flags": 5}

    # a generic folder has no criteria
    problem = await api.problem("GET", f"/api/v1/folders/{inbox}/search-criteria", 409)
    assert "not a search folder" in problem["detail"]


async def test_contents_follow_items_and_notify(api: Api, store: Store) -> None:
    roles = await api.roles()
    inbox = roles["inbox"]
    sf = (await _search(api, "Budget", [inbox]))["id"]
    view = await api.post(f"/api/v1/folders/{sf}/views", json={"columns": [SUBJ]})
    assert view["total"] == 0
    feed = await api.get(f"/api/v1/folders/{sf}/changes")
    sub = store.bus.subscribe()

    item = await api.new_item(inbox, {SUBJ: "budget"})
    rows = (await api.get(f"/api/v1/views/{view['id']}/rows?count=10"))["rows"]
    assert [r["props"][SUBJ] for r in rows] == ["budget"]
    changes = await api.get(f"/api/v1/folders/{sf}/changes?since={feed['state']}")
    assert [i["id"] for i in changes["created"]] == [item["id"]]
    folder = await api.get(f"/api/v1/folders/{sf}")
    assert (folder["props"]["PidTagContentCount"], folder["props"]["PidTagContentUnreadCount"]) == (
        1,
        1,
    )

    seen: list[tuple[str, dict[str, Any]]] = []
    while True:
        try:
            event = await asyncio.wait_for(sub.get(), 0.2)
        except TimeoutError:
            break
        seen.append((event.type, event.data))
    sfid = store.ids.parse("folder", sf)
    iid = store.ids.parse("item", item["id"])
    assert (
        "object_created",
        {"kind": "item", "id": iid, "folder_id": sfid, "search_folder": True},
    ) in seen
    table = [d for t, d in seen if t == "table_modified" and d["view"] == view["id"]]
    assert [d["event"] for d in table] == ["row_added"]
    sub.close()

    # deleting through the search folder deletes the real item (to Deleted Items)
    await api.delete(f"/api/v1/items/{item['id']}")
    moved = await api.get(f"/api/v1/items/{item['id']}")
    assert moved["folder_id"] == roles["deleted"]
    assert (await api.get(f"/api/v1/folders/{sf}/items"))["items"] == []
    changes = await api.get(f"/api/v1/folders/{sf}/changes?since={changes['state']}")
    assert changes["deleted"] == [item["id"]]

    # nothing is created or moved into a search folder
    await api.problem("POST", f"/api/v1/folders/{sf}/items", 409, json={"props": {SUBJ: "x"}})
    await api.problem("POST", f"/api/v1/items/{item['id']}/move", 409, json={"folder_id": sf})


async def test_reminders_in_the_store_object(api: Api) -> None:
    doc = await api.get("/api/v1/store")
    rem = doc["default_folders"]["reminders"]
    folder = await api.get(f"/api/v1/folders/{rem}")
    assert folder["props"]["PidTagFolderType"] == 2
    assert folder["props"]["PidTagContainerClass"] == "Outlook.Reminder"
    inbox = await api.get(f"/api/v1/folders/{doc['default_folders']['inbox']}")
    assert inbox["props"]["PidTagRemindersOnlineEntryId"] == folder["props"]["PidTagEntryId"]
    item = await api.new_item(
        doc["default_folders"]["calendar"],
        {SUBJ: "standup", "PidLidReminderSet": True},
    )
    listing = await api.get(f"/api/v1/folders/{rem}/items")
    assert [i["id"] for i in listing["items"]] == [item["id"]]
    await api.delete(f"/api/v1/items/{item['id']}")
    assert (await api.get(f"/api/v1/folders/{rem}/items"))["items"] == []
    problem = await api.problem(
        "PUT", f"/api/v1/folders/{rem}/search-criteria", 403, json={"recursive": False}
    )
    assert "belong to the store" in problem["detail"]


async def test_malformed_criteria_change_nothing(api: Api, unchanged: Unchanged) -> None:
    roles = await api.roles()
    inbox = roles["inbox"]
    sf = (await _search(api, "Budget", [inbox]))["id"]
    top = roles["ipm_subtree"]
    regex = {"property": {"prop": SUBJ, "op": "re", "value": "x"}}
    bad_criteria: list[tuple[Any, str]] = [
        ({"folders": ["f999999"]}, "invalid-value"),
        ({"folders": ["not an id"]}, "invalid-value"),
        ({"folders": [sf]}, "invalid-value"),
        ({"folders": []}, "invalid-value"),
        ({"restriction": {"nonsense": 1}}, "invalid-restriction"),
        ({"restriction": "text"}, "invalid-restriction"),
        ({"restriction": regex}, "too-complex"),
        ({"recursive": "yes"}, "bad-request"),
        ({"extra": 1}, "bad-request"),
        ("just text", "bad-request"),
    ]
    async with unchanged():
        for body, kind in bad_criteria:
            full = (
                {"restriction": BUDGET, "folders": [inbox], **body}
                if isinstance(body, dict)
                else body
            )
            problem = await api.problem(
                "POST", "/api/v1/folders", 400, json={"name": "X", "parent_id": top, "search": full}
            )
            assert problem["type"].endswith(kind), (body, problem)
            problem = await api.problem(
                "PUT", f"/api/v1/folders/{sf}/search-criteria", 400, json=body
            )
            assert problem["type"].endswith(kind), (body, problem)
        problem = await api.problem(
            "POST",
            "/api/v1/folders",
            400,
            json={"name": "X", "parent_id": top, "search": {"restriction": BUDGET}},
        )
        assert "needs" in problem["detail"]
        await api.problem("PUT", f"/api/v1/folders/{sf}/search-criteria", 400, json={})
        await api.problem(
            "PUT", f"/api/v1/folders/{inbox}/search-criteria", 409, json={"recursive": True}
        )


async def test_folder_limited_tokens(api: Api, make_token: MakeToken, store: Store) -> None:
    roles = await api.roles()
    inbox = roles["inbox"]
    mine = (await api.new_folder(inbox, "Mine"))["id"]
    sf = (await _search(api, "Everywhere", [inbox]))["id"]
    limited = api.as_token(await make_token("write", [store.ids.parse("folder", mine)]))
    await limited.problem("GET", f"/api/v1/folders/{sf}/items", 403)
    # a limited token cannot search outside its folders
    await limited.problem(
        "POST",
        "/api/v1/folders",
        403,
        json={
            "name": "S",
            "parent_id": mine,
            "search": {"restriction": BUDGET, "folders": [inbox]},
        },
    )
    own = await limited.post(
        "/api/v1/folders",
        json={"name": "S", "parent_id": mine, "search": {"restriction": BUDGET, "folders": [mine]}},
    )
    await limited.get(f"/api/v1/folders/{own['id']}/items")


async def test_conversation_view_across_the_scope(api: Api) -> None:
    roles = await api.roles()
    inbox, sent = roles["inbox"], roles["sent"]
    when = "PidTagMessageDeliveryTime"
    await api.new_item(
        inbox, {SUBJ: "budget", "PidTagInternetMessageId": "<q@x>", when: "2025-01-01T10:00:00Z"}
    )
    await api.new_item(
        sent,
        {
            SUBJ: "Re: budget",
            "PidTagInReplyToId": "<q@x>",
            "PidTagRead": True,
            when: "2025-01-01T11:00:00Z",
        },
    )
    await api.new_item(inbox, {SUBJ: "budget cuts", when: "2025-01-01T09:00:00Z"})
    sf = (await _search(api, "Both", [inbox, sent]))["id"]
    view = await api.post(
        f"/api/v1/folders/{sf}/views",
        json={
            "columns": [SUBJ, "PidTagContentCount", "PidTagContentUnreadCount"],
            "sort": {"conversation": True},
        },
    )
    rows = (await api.get(f"/api/v1/views/{view['id']}/rows?count=10"))["rows"]
    shape = [
        (r["row_type"], r["props"][SUBJ])
        if r["row_type"] == "leaf"
        else (
            r["row_type"],
            r["props"]["PidTagContentCount"],
            r["props"]["PidTagContentUnreadCount"],
        )
        for r in rows
    ]
    assert shape == [
        ("expanded_header", 2, 1),
        ("leaf", "Re: budget"),
        ("leaf", "budget"),
        ("expanded_header", 1, 1),
        ("leaf", "budget cuts"),
    ]
