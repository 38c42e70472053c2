"""Table views through the REST API (DESIGN.md §5)."""

from __future__ import annotations

from typing import Any

from bridge.api.views import VIEWS_KEY
from tests.api.helpers import Api

SUBJ = "PidTagSubject"


async def _fill(api: Api, fid: str) -> list[dict[str, Any]]:
    out = []
    for n, (subject, cats, read) in enumerate(
        [
            ("b", ["Red"], True),
            ("a", ["Red", "Blue"], False),
            ("c", [], False),
            ("A2", ["Blue"], True),
        ]
    ):
        props = {
            SUBJ: subject,
            "PidNameKeywords": cats,
            "PidTagMessageDeliveryTime": f"2024-01-0{n + 1}T00:00:00Z",
            "PidTagMessageFlags": 1 if read else 0,
        }
        out.append(
            await api.new_item(
                fid,
                props,
                recipients=[{"PidTagDisplayName": f"R{n}", "PidTagSmtpAddress": f"r{n}@x.test"}],
            )
        )
    return out


async def _view(api: Api, fid: str, **body: Any) -> str:
    doc = await api.post(f"/api/v1/folders/{fid}/views", json=body)
    return str(doc["id"])


async def test_rows_seek_bookmarks_find(api: Api) -> None:
    fid = (await api.new_folder((await api.roles())["inbox"], "V"))["id"]
    await _fill(api, fid)
    vid = await _view(
        api, fid, columns=[SUBJ, "PidTagBody"], sort={"keys": [{"prop": SUBJ, "order": "asc"}]}
    )
    page = await api.get(f"/api/v1/views/{vid}/rows?count=2")
    assert [r["props"][SUBJ] for r in page["rows"]] == ["a", "A2"]
    assert page["rows"][0]["props"]["PidTagBody"] == {"error": "0x8004010F"}
    assert page["position"] == 2 and page["total"] == 4
    back = await api.get(f"/api/v1/views/{vid}/rows?count=-1")
    assert [r["props"][SUBJ] for r in back["rows"]] == ["A2"] and back["position"] == 1
    mark = await api.post(f"/api/v1/views/{vid}/bookmarks")
    seek = await api.post(f"/api/v1/views/{vid}/seek", 200, json={"bookmark": "end", "rows": -10})
    assert seek["moved"] == -4 and seek["position"] == 0
    await api.post(f"/api/v1/views/{vid}/seek", 200, json={"bookmark": mark["bookmark"]})
    assert (await api.get(f"/api/v1/views/{vid}/rows?count=1"))["rows"][0]["props"][SUBJ] == "A2"
    found = await api.post(
        f"/api/v1/views/{vid}/find",
        200,
        json={"restriction": {"content": {"prop": SUBJ, "value": "c", "match": "full"}}},
    )
    assert found["position"] == 3
    await api.problem(
        "POST",
        f"/api/v1/views/{vid}/find",
        404,
        json={"restriction": {"exist": "PidTagBody"}, "bookmark": "beginning"},
    )
    await api.delete(f"/api/v1/views/{vid}/bookmarks", json={"bookmark": mark["bookmark"]})
    await api.delete(f"/api/v1/views/{vid}")
    await api.problem("GET", f"/api/v1/views/{vid}/rows", 404)


async def test_categorized_mvi_expand_collapse(api: Api) -> None:
    fid = (await api.new_folder((await api.roles())["inbox"], "C"))["id"]
    await _fill(api, fid)
    kw = {"prop": "PidNameKeywords", "mvi": True}
    vid = await _view(
        api,
        fid,
        columns=[kw, SUBJ, "PidTagContentCount", "PidTagContentUnreadCount"],
        sort={"keys": [{**kw, "order": "asc"}, {"prop": SUBJ, "order": "asc"}], "categories": 1},
    )
    rows = (await api.get(f"/api/v1/views/{vid}/rows?count=50"))["rows"]
    shape = [(r["row_type"], r["props"].get(SUBJ)) for r in rows]
    assert shape[0][0] == "expanded_header"  # items without categories
    headers = [r for r in rows if r["row_type"] != "leaf"]
    assert [h["props"]["PidTagContentCount"] for h in headers] == [1, 2, 2]
    assert [h["props"]["PidTagContentUnreadCount"] for h in headers] == [1, 1, 1]
    blue = headers[1]
    assert len(rows) == 3 + 5
    done = await api.post(
        f"/api/v1/views/{vid}/collapse", 200, json={"instance_key": blue["instance_key"]}
    )
    assert done["count"] == 2 and done["total"] == 6
    again = await api.post(
        f"/api/v1/views/{vid}/expand", 200, json={"instance_key": blue["instance_key"], "rows": 1}
    )
    assert again["count"] == 2 and len(again["rows"]) == 1


async def test_views_follow_changes_and_notify(api: Api) -> None:
    fid = (await api.new_folder((await api.roles())["inbox"], "N"))["id"]
    await _fill(api, fid)
    vid = await _view(api, fid, columns=[SUBJ], sort={"keys": [{"prop": SUBJ, "order": "asc"}]})
    await api.get(f"/api/v1/views/{vid}/rows?count=2")  # cursor on "b"
    await api.new_item(fid, {SUBJ: "0 first"})
    page = await api.get(f"/api/v1/views/{vid}/rows?count=1")
    assert page["rows"][0]["props"][SUBJ] == "b" and page["total"] == 5
    mgr = api.client.app[VIEWS_KEY]
    sub = mgr.store.bus.subscribe()
    try:
        await api.new_item(fid, {SUBJ: "zz"})
        await mgr.catch_up()
        event = await sub.get()
        while event.type != "table_modified":
            event = await sub.get()
        assert event.data["view"] == vid and event.data["event"] == "row_added"
        assert event.data["prior"] is not None
    finally:
        sub.close()


async def test_sub_object_and_hierarchy_views(api: Api) -> None:
    inbox = (await api.roles())["inbox"]
    fid = (await api.new_folder(inbox, "H"))["id"]
    items = await _fill(api, fid)
    rv = await api.post(
        f"/api/v1/items/{items[0]['id']}/recipients/views", json={"columns": ["PidTagDisplayName"]}
    )
    rows = (await api.get(f"/api/v1/views/{rv['id']}/rows"))["rows"]
    assert [r["props"]["PidTagDisplayName"] for r in rows] == ["R0"]
    hv = await api.post(
        f"/api/v1/folders/{inbox}/hierarchy/views",
        json={
            "columns": ["PidTagDisplayName"],
            "restriction": {
                "content": {
                    "prop": "PidTagDisplayName",
                    "value": "h",
                    "match": "full",
                    "ignore_case": True,
                }
            },
        },
    )
    assert hv["total"] == 1


async def test_bad_restrictions_are_4xx(api: Api) -> None:
    fid = (await api.roles())["inbox"]
    url = f"/api/v1/folders/{fid}/views"
    deep: Any = {"exist": SUBJ}
    for _ in range(200):
        deep = {"not": deep}
    wide = {"or": [{"exist": SUBJ}] * 20000}
    for bad, slug in [
        ({"frobnicate": 1}, "invalid-restriction"),
        ({"property": {"prop": SUBJ, "op": "eq", "value": 5}}, "invalid-restriction"),
        ({"property": {"prop": SUBJ, "op": "re", "value": "x"}}, "too-complex"),
        (deep, "invalid-restriction"),
        (wide, "invalid-restriction"),
        ({"content": {"prop": "PidTagImportance", "value": 1}}, "invalid-restriction"),
    ]:
        doc = await api.problem("POST", url, 400, json={"restriction": bad})
        assert doc["type"].endswith(slug), doc
    nested = "[" * 20000 + "]" * 20000
    await api.problem("POST", url, 400, data=nested, headers={"Content-Type": "application/json"})


async def test_folder_limited_token(api: Api, make_token: Any, store: Any) -> None:
    roles = await api.roles()
    secret = await make_token("read", [store.folders.roles["drafts"]])
    other = api.as_token(secret)
    await other.problem("POST", f"/api/v1/folders/{roles['inbox']}/views", 403, json={})
    vid = (await other.post(f"/api/v1/folders/{roles['drafts']}/views", json={}))["id"]
    await api.problem("GET", f"/api/v1/views/{vid}/rows", 404)  # another token's view
