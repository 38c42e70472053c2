"""The store object, the hierarchy and folder create / read / rename / move / delete."""

from __future__ import annotations

from typing import Any

from tests.api.helpers import Api

ROLES = (
    "inbox",
    "outbox",
    "sent",
    "deleted",
    "drafts",
    "junk",
    "calendar",
    "contacts",
    "tasks",
    "notes",
    "journal",
    "conflicts",
)


async def folders_by_id(api: Api) -> dict[str, dict[str, Any]]:
    doc = await api.get("/api/v1/folders")
    return {f["id"]: f for f in doc["folders"]}


async def test_store_object_has_default_folders_and_pointers(api: Api) -> None:
    doc = await api.get("/api/v1/store")
    assert set(ROLES) <= set(doc["default_folders"])
    folders = await folders_by_id(api)
    roles = doc["default_folders"]
    for role in ROLES:
        assert roles[role] in folders, role
        assert folders[roles[role]]["role"] == role
    props = doc["props"]
    assert isinstance(doc["id"], str) and doc["id"]
    for name in ("PidTagEntryId", "PidTagStoreEntryId", "PidTagRecordKey", "PidTagDisplayName"):
        assert name in props, name

    def entry_id(role: str) -> str:
        eid: str = folders[roles[role]]["props"]["PidTagEntryId"]
        return eid

    assert props["PidTagIpmSubtreeEntryId"] == entry_id("ipm_subtree")
    assert props["PidTagIpmOutboxEntryId"] == entry_id("outbox")
    assert props["PidTagIpmWastebasketEntryId"] == entry_id("deleted")
    assert props["PidTagIpmSentMailEntryId"] == entry_id("sent")
    inbox = folders[roles["inbox"]]["props"]
    assert inbox["PidTagIpmAppointmentEntryId"] == entry_id("calendar")
    assert inbox["PidTagIpmContactEntryId"] == entry_id("contacts")
    assert inbox["PidTagIpmTaskEntryId"] == entry_id("tasks")
    assert inbox["PidTagIpmNoteEntryId"] == entry_id("notes")
    assert inbox["PidTagIpmJournalEntryId"] == entry_id("journal")
    assert inbox["PidTagIpmDraftsEntryId"] == entry_id("drafts")
    assert inbox["PidTagAdditionalRenEntryIds"][0] == entry_id("conflicts")
    assert inbox["PidTagAdditionalRenEntryIds"][4] == entry_id("junk")


async def test_hierarchy_has_sync_issues_and_container_classes(api: Api) -> None:
    folders = await folders_by_id(api)
    by_role = {f["role"]: f for f in folders.values() if "role" in f}
    for f in folders.values():
        assert set(f) >= {"id", "parent_id", "props"}
        assert f["parent_id"] is None or f["parent_id"] in folders
    assert by_role["root"]["parent_id"] is None
    subtree = by_role["ipm_subtree"]["id"]
    assert by_role["ipm_subtree"]["parent_id"] == by_role["root"]["id"]
    sync_issues = by_role["sync_issues"]
    assert sync_issues["props"]["PidTagDisplayName"] == "Sync Issues"
    assert sync_issues["parent_id"] == subtree
    children = {
        f["props"]["PidTagDisplayName"]
        for f in folders.values()
        if f["parent_id"] == sync_issues["id"]
    }
    assert children == {"Conflicts", "Local Failures", "Server Failures"}
    assert sync_issues["props"]["PidTagSubfolders"] is True
    expected = {
        "inbox": "IPF.Note",
        "outbox": "IPF.Note",
        "sent": "IPF.Note",
        "deleted": "IPF.Note",
        "drafts": "IPF.Note",
        "junk": "IPF.Note",
        "calendar": "IPF.Appointment",
        "contacts": "IPF.Contact",
        "tasks": "IPF.Task",
        "notes": "IPF.StickyNote",
        "journal": "IPF.Journal",
    }
    for role, container_class in expected.items():
        assert by_role[role]["props"]["PidTagContainerClass"] == container_class, role
        assert by_role[role]["parent_id"] == subtree, role
    # the hierarchy lists parents before children
    seen: set[str] = set()
    for f in (await api.get("/api/v1/folders"))["folders"]:
        assert f["parent_id"] is None or f["parent_id"] in seen
        seen.add(f["id"])


async def test_create_get_rename_move(api: Api) -> None:
    roles = await api.roles()
    resp = await api.request(
        "POST", "/api/v1/folders", json={"name": "Projects", "parent_id": roles["inbox"]}
    )
    assert resp.status == 201
    created = await resp.json()
    assert resp.headers["Location"] == f"/api/v1/folders/{created['id']}"
    assert created["parent_id"] == roles["inbox"]
    assert created["props"]["PidTagDisplayName"] == "Projects"
    assert created["props"]["PidTagContainerClass"] == "IPF.Note"  # the parent's
    assert created["props"]["PidTagContentCount"] == 0
    assert "role" not in created
    fid = created["id"]
    assert await api.get(f"/api/v1/folders/{fid}") == created

    # the container class is inherited, or given
    cal = await api.new_folder(roles["calendar"], "Team")
    assert cal["props"]["PidTagContainerClass"] == "IPF.Appointment"
    tasks = await api.post(
        "/api/v1/folders",
        json={"props": {"PidTagDisplayName": "Todo", "PidTagContainerClass": "IPF.Task"}},
    )
    assert tasks["props"]["PidTagContainerClass"] == "IPF.Task"

    renamed = await api.patch(f"/api/v1/folders/{fid}", json={"name": "Projects 2024"})
    assert renamed["props"]["PidTagDisplayName"] == "Projects 2024"
    assert renamed["props"]["PidTagChangeNumber"] > created["props"]["PidTagChangeNumber"]
    moved = await api.patch(
        f"/api/v1/folders/{fid}", json={"parent_id": roles["drafts"], "props": {"0x6701001F": "x"}}
    )
    assert moved["parent_id"] == roles["drafts"]
    assert moved["props"]["0x6701001F"] == "x"
    assert moved["props"]["PidTagDisplayName"] == "Projects 2024"
    gone = await api.patch(f"/api/v1/folders/{fid}", json={"delete": ["0x6701001F"]})
    assert "0x6701001F" not in gone["props"]
    folders = await folders_by_id(api)
    assert folders[fid]["parent_id"] == roles["drafts"]
    assert folders[roles["drafts"]]["props"]["PidTagSubfolders"] is True


async def test_create_defaults_to_top_of_information_store(api: Api) -> None:
    folders = await folders_by_id(api)
    subtree = next(f["id"] for f in folders.values() if f.get("role") == "ipm_subtree")
    created = await api.post("/api/v1/folders", json={"name": "Archive"})
    assert created["parent_id"] == subtree


async def test_soft_and_hard_delete(api: Api) -> None:
    roles = await api.roles()
    doomed = await api.new_folder(roles["inbox"], "Old")
    child = await api.new_folder(doomed["id"], "Older")
    await api.delete(f"/api/v1/folders/{doomed['id']}")
    after = await api.get(f"/api/v1/folders/{doomed['id']}")
    assert after["parent_id"] == roles["deleted"]
    assert (await api.get(f"/api/v1/folders/{child['id']}"))["parent_id"] == doomed["id"]
    # a second delete of a folder in Deleted Items removes it with everything below
    await api.delete(f"/api/v1/folders/{doomed['id']}")
    await api.problem("GET", f"/api/v1/folders/{doomed['id']}", 404)
    await api.problem("GET", f"/api/v1/folders/{child['id']}", 404)

    hard = await api.new_folder(roles["inbox"], "Gone")
    await api.delete(f"/api/v1/folders/{hard['id']}", params={"hard": "true"})
    await api.problem("GET", f"/api/v1/folders/{hard['id']}", 404)
    assert hard["id"] not in await folders_by_id(api)


async def test_soft_delete_renames_on_clash_in_deleted_items(api: Api) -> None:
    roles = await api.roles()
    a = await api.new_folder(roles["inbox"], "Same")
    b = await api.new_folder(roles["drafts"], "Same")
    await api.delete(f"/api/v1/folders/{a['id']}")
    await api.delete(f"/api/v1/folders/{b['id']}")
    names = {
        f["props"]["PidTagDisplayName"]
        for f in (await folders_by_id(api)).values()
        if f["parent_id"] == roles["deleted"]
    }
    assert names == {"Same", "Same (2)"}


async def test_default_folders_cannot_be_deleted_or_moved(api: Api, unchanged: Any) -> None:
    roles = await api.roles()
    async with unchanged():
        doc = await api.problem("DELETE", f"/api/v1/folders/{roles['inbox']}", 403)
        assert doc["type"] == "urn:kbridge:problem:not-allowed"
        assert "Inbox" in doc["detail"]
        await api.problem(
            "DELETE", f"/api/v1/folders/{roles['calendar']}", 403, params={"hard": "true"}
        )
        await api.problem(
            "PATCH", f"/api/v1/folders/{roles['inbox']}", 403, json={"parent_id": roles["drafts"]}
        )


async def test_name_clash_is_a_conflict(api: Api, unchanged: Any) -> None:
    roles = await api.roles()
    await api.new_folder(roles["inbox"], "Reports")
    other = await api.new_folder(roles["inbox"], "Other")
    elsewhere = await api.new_folder(roles["drafts"], "Reports")
    async with unchanged():
        doc = await api.problem(
            "POST", "/api/v1/folders", 409, json={"name": "Reports", "parent_id": roles["inbox"]}
        )
        assert doc["type"] == "urn:kbridge:problem:conflict"
        # names compare case-insensitively
        await api.problem(
            "POST", "/api/v1/folders", 409, json={"name": "REPORTS", "parent_id": roles["inbox"]}
        )
        await api.problem("PATCH", f"/api/v1/folders/{other['id']}", 409, json={"name": "reports"})
        await api.problem(
            "PATCH",
            f"/api/v1/folders/{elsewhere['id']}",
            409,
            json={"parent_id": roles["inbox"]},
        )


async def test_move_into_own_subtree_is_a_conflict(api: Api, unchanged: Any) -> None:
    roles = await api.roles()
    top = await api.new_folder(roles["inbox"], "Top")
    mid = await api.new_folder(top["id"], "Mid")
    low = await api.new_folder(mid["id"], "Low")
    async with unchanged():
        for target in (top, mid, low):
            doc = await api.problem(
                "PATCH", f"/api/v1/folders/{top['id']}", 409, json={"parent_id": target["id"]}
            )
            assert doc["type"] == "urn:kbridge:problem:conflict"


async def test_folder_counts_follow_items(api: Api) -> None:
    roles = await api.roles()
    folder = await api.new_folder(roles["inbox"], "Counted")
    await api.new_item(folder["id"], {"PidTagSubject": "one"})
    await api.new_item(folder["id"], {"PidTagSubject": "two"})
    await api.new_item(folder["id"], {"PidTagSubject": "hidden"}, associated=True)
    props = (await api.get(f"/api/v1/folders/{folder['id']}"))["props"]
    assert props["PidTagContentCount"] == 2
    assert props["PidTagContentUnreadCount"] == 2
    assert props["PidTagAssociatedContentCount"] == 1
