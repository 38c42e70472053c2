"""The per-folder change feed and the Server-Sent Events notification stream."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bridge.api import events
from bridge.store.store import Store
from tests.api.helpers import Api, Unchanged


def ids(entries: list[Any]) -> set[str]:
    return {e if isinstance(e, str) else e["id"] for e in entries}


async def test_change_feed(api: Api) -> None:
    roles = await api.roles()
    folder = await api.new_folder(roles["inbox"], "Feed")
    path = f"/api/v1/folders/{folder['id']}/changes"
    a = await api.new_item(folder["id"], {"PidTagSubject": "a"})
    b = await api.new_item(folder["id"], {"PidTagSubject": "b"})
    d = await api.new_item(folder["id"], {"PidTagSubject": "d"})
    untouched = await api.new_item(folder["id"], {"PidTagSubject": "untouched"})
    await api.new_item(roles["inbox"], {"PidTagSubject": "other folder"})

    full = await api.get(path)
    assert ids(full["created"]) == ids([a, b, d, untouched])
    assert full["modified"] == [] and full["deleted"] == []
    assert full["more"] is False
    first = full["state"]
    assert isinstance(first, str) and first

    # nothing happened: nothing to report, same state
    quiet = await api.get(path, params={"since": first})
    assert (quiet["created"], quiet["modified"], quiet["deleted"]) == ([], [], [])
    assert quiet["state"] == first

    c = await api.new_item(folder["id"], {"PidTagSubject": "c"})
    await api.patch(f"/api/v1/items/{a['id']}", json={"props": {"PidTagSubject": "a2"}})
    await api.delete(f"/api/v1/items/{b['id']}", params={"hard": "true"})
    await api.post(f"/api/v1/items/{d['id']}/move", 200, json={"folder_id": roles["drafts"]})
    await api.new_item(roles["inbox"], {"PidTagSubject": "other folder again"})

    delta = await api.get(path, params={"since": first})
    assert ids(delta["created"]) == {c["id"]}
    assert ids(delta["modified"]) == {a["id"]}
    assert [m["props"]["PidTagSubject"] for m in delta["modified"]] == ["a2"]
    assert set(delta["deleted"]) == {b["id"], d["id"]}
    assert delta["state"] != first
    assert delta["more"] is False

    after = await api.get(path, params={"since": delta["state"]})
    assert (after["created"], after["modified"], after["deleted"]) == ([], [], [])

    # the item moved in shows up as created in the target folder's feed
    drafts = await api.get(f"/api/v1/folders/{roles['drafts']}/changes", params={"since": first})
    assert d["id"] in ids(drafts["created"])

    # columns and paging
    page = await api.get(path, params={"limit": "1", "columns": "PidTagSubject"})
    assert page["more"] is True
    assert len(page["created"]) == 1
    assert set(page["created"][0]["props"]) == {"PidTagSubject"}
    seen = ids(page["created"])
    while page["more"]:
        page = await api.get(path, params={"limit": "1", "since": page["state"]})
        seen |= ids(page["created"]) | ids(page["modified"])
    assert seen == ids([a, c, untouched])


async def test_change_feed_refuses_foreign_state(
    api: Api, unchanged: Unchanged, tmp_path: Path
) -> None:
    roles = await api.roles()
    path = f"/api/v1/folders/{roles['inbox']}/changes"
    state = (await api.get(path))["state"]
    prefix, _, number = state.partition(".")
    other = await Store.open(tmp_path / "other.sqlite")
    try:
        foreign = other.queries.state_for(int(number))
    finally:
        await other.close()
    assert foreign != state
    async with unchanged():
        for bad in (foreign, "not-a-state", f"{prefix}.x", f"{prefix}.-1", "."):
            doc = await api.problem("GET", path, 410, params={"since": bad})
            assert doc["type"] == "urn:kbridge:problem:stale-state"
            assert "since" in doc["detail"]
        await api.problem("GET", path, 400, params={"limit": "0"})
        await api.problem("GET", "/api/v1/folders/f999999/changes", 404)


async def read_event(
    resp: Any,
    wanted: str,
    match: dict[str, Any],
    seen: list[str] | None = None,
    seconds: float = 10.0,
) -> dict[str, Any]:
    """Read SSE frames until an event of type `wanted` whose data includes `match`; the
    types of all events read are appended to `seen`."""
    async with asyncio.timeout(seconds):
        fields: dict[str, str] = {}
        while True:
            raw = await resp.content.readline()
            assert raw, "the event stream ended"
            line = raw.decode("utf-8").rstrip("\n")
            if line == "":
                if "event" in fields and seen is not None:
                    seen.append(fields["event"])
                if fields.get("event") == wanted:
                    data: dict[str, Any] = json.loads(fields["data"])
                    if all(data.get(k) == v for k, v in match.items()):
                        assert fields["id"] == str(data["seq"])
                        return data
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value


async def test_event_stream_reports_created_item(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "HEARTBEAT_SECONDS", 0.2)
    roles = await api.roles()
    async with asyncio.timeout(15):
        resp = await api.client.get("/api/v1/events", headers=api.headers())
        try:
            assert resp.status == 200
            assert resp.content_type == "text/event-stream"
            item = await api.new_item(roles["inbox"], {"PidTagSubject": "Notify me"})
            data = await read_event(resp, "object_created", {"id": item["id"]})
            assert data["type"] == "object_created"
            assert data["kind"] == "item"
            assert data["folder_id"] == roles["inbox"]
            assert data["message_class"] == "IPM.Note"

            await api.patch(f"/api/v1/items/{item['id']}", json={"props": {"PidTagSubject": "x"}})
            data = await read_event(resp, "object_modified", {"id": item["id"]})
            assert "0x0037001F" in data["tags"]
            folder = await api.new_folder(roles["inbox"], "Evented")
            data = await read_event(resp, "object_created", {"id": folder["id"]})
            assert data["kind"] == "folder"
            assert data["parent_id"] == roles["inbox"]
        finally:
            resp.close()


async def test_event_stream_type_filter_and_resume(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "HEARTBEAT_SECONDS", 0.2)
    roles = await api.roles()
    item = await api.new_item(roles["inbox"], {"PidTagSubject": "Before"})
    async with asyncio.timeout(15):
        # resume from before the creation: the missed event is replayed
        resp = await api.client.get(
            "/api/v1/events",
            params={"types": "object_deleted"},
            headers=api.headers({"Last-Event-ID": "0"}),
        )
        try:
            await api.delete(f"/api/v1/items/{item['id']}", params={"hard": "true"})
            # only object_deleted frames arrive, though created/moved ones happened too
            seen: list[str] = []
            data = await read_event(resp, "object_deleted", {"id": item["id"]}, seen)
            assert data["folder_id"] == roles["inbox"]
            assert set(seen) == {"object_deleted"}
        finally:
            resp.close()
        resp = await api.client.get("/api/v1/events", headers=api.headers({"Last-Event-ID": "0"}))
        try:
            seen = []
            data = await read_event(resp, "object_created", {"id": item["id"]}, seen)
            assert data["seq"] >= 1
            assert "object_created" in seen
        finally:
            resp.close()
