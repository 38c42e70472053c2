"""Bad input gets a 4xx problem document and leaves the store exactly as it was."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.api.app import ApiSettings, load_openapi
from bridge.store.store import Store
from tests.api.helpers import Api, MakeApi, Unchanged, check_problem

PATCH_ITEM_CASES: list[tuple[str, Any, int]] = [
    # (case, JSON body, status)
    ("not an object: array", [], 400),
    ("not an object: string", "props", 400),
    ("not an object: number", 42, 400),
    ("not an object: null", None, 400),
    ("props not an object", {"props": ["PidTagSubject"]}, 400),
    ("unknown property name", {"props": {"PidTagNoSuchThing": 1}}, 400),
    ("unknown PR_ name", {"props": {"PR_NO_SUCH_THING": 1}}, 400),
    ("empty property name", {"props": {"": 1}}, 400),
    ("hex tag too short", {"props": {"0x123": 1}}, 400),
    ("hex tag not hex", {"props": {"0x0037ZZZZ": "x"}}, 400),
    ("hex tag bad type", {"props": {"0x00370099": "x"}}, 400),
    ("hex tag bad id", {"props": {"0x0000001F": "x"}}, 400),
    ("hex tag of unmapped named id", {"props": {"0xFFF0001F": "x"}}, 400),
    ("bad named-property set", {"props": {"{PSETID_Nope}:0x8205": 1}}, 400),
    ("named property of wrong type", {"props": {"{PSETID_Appointment}:0x8205:0x001F": "x"}}, 400),
    ("string for PidTagImportance", {"props": {"PidTagImportance": "high"}}, 400),
    ("bool for PidTagImportance", {"props": {"PidTagImportance": True}}, 400),
    ("PidTagImportance out of range", {"props": {"PidTagImportance": 2**40}}, 400),
    ("float for a long", {"props": {"PidTagImportance": 1.5}}, 400),
    ("number for a string", {"props": {"PidTagSubject": 5}}, 400),
    ("string for a boolean", {"props": {"PidTagRead": "yes"}}, 400),
    ("non-base64 binary", {"props": {"PidTagSearchKey": "not base64!"}}, 400),
    ("unpadded base64", {"props": {"PidTagSearchKey": "AAE"}}, 400),
    ("naive SYSTIME", {"props": {"PidTagMessageDeliveryTime": "2024-05-01T09:30:00"}}, 400),
    ("SYSTIME not a time", {"props": {"PidTagMessageDeliveryTime": "yesterday"}}, 400),
    ("SYSTIME before 1601", {"props": {"PidTagMessageDeliveryTime": "1600-01-01T00:00:00Z"}}, 400),
    ("named SYSTIME naive", {"props": {"PidLidAppointmentStartWhole": "2024-05-01 09:30"}}, 400),
    ("multi-value not a list", {"props": {"PidLidCategories": "red"}}, 400),
    ("multi-value with a number", {"props": {"PidLidCategories": ["red", 1]}}, 400),
    ("computed PidTagEntryId", {"props": {"PidTagEntryId": "AAAA"}}, 400),
    ("computed PidTagMessageSize", {"props": {"PidTagMessageSize": 1}}, 400),
    ("computed PidTagDisplayTo", {"props": {"PidTagDisplayTo": "x"}}, 400),
    ("computed by hex tag", {"props": {"0x0FFF0102": "AAAA"}}, 400),
    ("object property", {"props": {"PidTagAttachDataObject": "AAAA"}}, 400),
    ("delete a computed property", {"delete": ["PidTagEntryId"]}, 400),
    ("delete not a list", {"delete": "PidTagSubject"}, 400),
    ("delete a number", {"delete": [5]}, 400),
    ("delete an unknown name", {"delete": ["PidTagNoSuchThing"]}, 400),
    ("empty message class", {"props": {"PidTagMessageClass": ""}}, 400),
    ("message class with a newline", {"props": {"PidTagMessageClass": "IPM.Note\n"}}, 400),
    ("unknown fields", {"props": {}, "bogus": 1}, 400),
    ("unknown fields only", {"subject": "x"}, 400),
    # a valid change next to an invalid one: all or nothing
    ("valid and invalid", {"props": {"PidTagSubject": "new", "PidTagImportance": "x"}}, 400),
    (
        "new named property and a computed one",
        {"props": {"{PS_PUBLIC_STRINGS}:Brand-New": "x", "PidTagEntryId": "AAAA"}},
        400,
    ),
    (
        "valid props and a bad delete",
        {"props": {"PidTagSubject": "new"}, "delete": ["0x12"]},
        400,
    ),
]


@pytest.fixture
async def target(api: Api) -> dict[str, Any]:
    roles = await api.roles()
    item = await api.new_item(
        roles["inbox"],
        {"PidTagSubject": "Original", "PidTagImportance": 1},
        recipients=[{"PidTagSmtpAddress": "ann@example.com"}],
    )
    await api.post(
        f"/api/v1/items/{item['id']}/attachments",
        json={"props": {"PidTagAttachDataBinary": base64.b64encode(b"data").decode()}},
    )
    return {"roles": roles, "item": item}


@pytest.mark.parametrize(
    ("body", "status"),
    [pytest.param(body, status, id=case) for case, body, status in PATCH_ITEM_CASES],
)
async def test_patch_item_bad_body(
    api: Api, unchanged: Unchanged, target: dict[str, Any], body: Any, status: int
) -> None:
    path = f"/api/v1/items/{target['item']['id']}"
    async with unchanged():
        doc = await api.problem(
            "PATCH",
            path,
            status,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
    if doc["type"] == "urn:kbridge:problem:invalid-property":
        assert "property" in doc, doc
    assert (await api.get(path))["props"]["PidTagSubject"] == "Original"


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        pytest.param(b'{"props": ', "application/json", 400, id="truncated JSON"),
        pytest.param(b"{'props': {}}", "application/json", 400, id="single quotes"),
        pytest.param(b'{"props": {}} trailing', "application/json", 400, id="trailing data"),
        pytest.param(
            b'{"props": {"PidTagSubject": "\xc3\x28"}}', "application/json", 400, id="not UTF-8"
        ),
        pytest.param(b"[" * 100_000, "application/json", 400, id="nested too deeply"),
        pytest.param(b'{"props": NaN}', "application/json", 400, id="NaN"),
        pytest.param(b"", "application/json", 400, id="empty body"),
        pytest.param(b'{"props": {}}', "text/plain", 415, id="text/plain"),
        pytest.param(b'{"props": {}}', "application/octet-stream", 415, id="octet-stream"),
        pytest.param(b'{"props": {}}', "application/xml", 415, id="xml"),
    ],
)
async def test_patch_item_bad_bytes(
    api: Api,
    unchanged: Unchanged,
    target: dict[str, Any],
    data: bytes,
    content_type: str,
    status: int,
) -> None:
    path = f"/api/v1/items/{target['item']['id']}"
    async with unchanged():
        await api.problem("PATCH", path, status, data=data, headers={"Content-Type": content_type})


async def test_create_item_bad_input(
    api: Api, unchanged: Unchanged, target: dict[str, Any]
) -> None:
    inbox = target["roles"]["inbox"]
    path = f"/api/v1/folders/{inbox}/items"
    raw = {"Content-Type": "message/rfc822"}
    async with unchanged():
        doc = await api.problem("POST", path, headers=raw, data=b"")
        assert doc["status"] in (400, 422)
        for ctype in ("text/calendar", "text/vcard", "text/x-vcard"):
            doc = await api.problem(
                "POST", path, 422, data=b"BEGIN:VCALENDAR\r\n", headers={"Content-Type": ctype}
            )
            assert doc["type"] == "urn:kbridge:problem:unparseable"
        await api.problem("POST", path, 415, data=b"{}", headers={"Content-Type": "text/plain"})
        bodies: list[Any] = [
            [],
            "x",
            {"props": {}, "folder_id": inbox},
            {"props": {"PidTagEntryId": "AAAA"}},
            {"props": {"PidTagMessageSize": 5}},
            {"props": {"PidTagMessageClass": ""}},
            {"props": {"PidTagMessageClass": "IPM.Note\n"}},
            {"props": {"PidTagMessageClass": " IPM.Note"}},
            {"props": {"PidTagImportance": "high"}},
            {"props": {"PidTagSubject": "ok"}, "associated": "yes"},
            {"props": {}, "recipients": "ann@example.com"},
            {"props": {}, "recipients": [{"PidTagDisplayName": "no address"}]},
            {"props": {}, "recipients": [{"PidLidBusyStatus": 1, "PidTagSmtpAddress": "a@b"}]},
            {"props": {}, "recipients": [{"PidTagSmtpAddress": 5}]},
            {"props": {}, "recipients": ["ann@example.com"]},
            {"props": {"PidTagSubject": "ok"}, "recipients": [{"PidTagRowid": "x"}]},
        ]
        for body in bodies:
            resp = await api.request("POST", path, json=body)
            await check_problem(resp, 400)


async def test_folder_bad_input(api: Api, unchanged: Unchanged, target: dict[str, Any]) -> None:
    inbox = target["roles"]["inbox"]
    folder = await api.new_folder(inbox, "Existing")
    path = f"/api/v1/folders/{folder['id']}"
    async with unchanged():
        creates: list[tuple[Any, int]] = [
            ({}, 400),
            ([], 400),
            ({"name": ""}, 400),
            ({"name": "   "}, 400),
            ({"name": " padded"}, 400),
            ({"name": "tab\there"}, 400),
            ({"name": "x" * 256}, 400),
            ({"name": 5}, 400),
            ({"name": "ok", "parent_id": "f999999"}, 404),
            ({"name": "ok", "parent_id": "nonsense"}, 404),
            ({"name": "ok", "props": {"PidLidBusyStatus": 1}}, 400),
            ({"name": "ok", "props": {"PidTagContentCount": 1}}, 400),
            ({"name": "ok", "props": {"PidTagEntryId": "AAAA"}}, 400),
            ({"name": "ok", "props": "PidTagSubject"}, 400),
        ]
        for body, status in creates:
            await api.problem("POST", "/api/v1/folders", status, json=body)
        patches: list[tuple[Any, int]] = [
            ([], 400),
            ({"name": 5}, 400),
            ({"name": ""}, 400),
            ({"delete": "PidTagSubject"}, 400),
            ({"delete": ["PidTagContentCount"]}, 400),
            ({"props": {"PidTagSubfolders": True}}, 400),
            ({"props": {"PidTagContainerClass": 5}}, 400),
            ({"rename": "x"}, 400),
            ({"parent_id": "f999999"}, 404),
            ({"parent_id": "m1"}, 404),
        ]
        for body, status in patches:
            await api.problem("PATCH", path, status, json=body)
        await api.problem("PATCH", path, 415, data=b"{}", headers={"Content-Type": "text/plain"})
        await api.problem(
            "PATCH", path, 400, data=b"{", headers={"Content-Type": "application/json"}
        )
        await api.problem(
            "POST",
            "/api/v1/folders",
            400,
            data=b"nope",
            headers={"Content-Type": "application/json"},
        )


async def test_item_actions_bad_input(
    api: Api, unchanged: Unchanged, target: dict[str, Any]
) -> None:
    iid = target["item"]["id"]
    async with unchanged():
        for action in ("move", "copy"):
            path = f"/api/v1/items/{iid}/{action}"
            await api.problem("POST", path, 400, json={})
            await api.problem("POST", path, 400, json={"folder_id": 5})
            await api.problem("POST", path, 400, json=["f1"])
            await api.problem("POST", path, 404, json={"folder_id": "f999999"})
            await api.problem("POST", path, 404, json={"folder_id": iid})
            await api.problem("POST", path, 415, data=b"{}", headers={"Content-Type": "text/plain"})
        rpath = f"/api/v1/items/{iid}/recipients"
        for body in ({"recipients": "x"}, {"recipients": [{}]}, 5, {"recipients": [[]]}):
            await api.problem("PUT", rpath, 400, json=body)
        apath = f"/api/v1/items/{iid}/attachments"
        for body in (
            {},
            [],
            {"props": {}},
            {"props": {"PidTagAttachDataBinary": "***"}},
            {"props": {"PidTagAttachDataBinary": "AAAA", "PidLidBusyStatus": 1}},
            {"props": {"PidTagAttachDataBinary": "AAAA", "PidTagAttachSize": "big"}},
        ):
            await api.problem("POST", apath, 400, json=body)
        for num in ("x", "-1", "1.0", "9999999999", "00000000001"):
            await api.problem("GET", f"{apath}/{num}", 404)
            await api.problem("DELETE", f"{apath}/{num}", 404)
        await api.problem("GET", f"{apath}/5/data", 404)
        await api.problem("POST", "/api/v1/sync/run", 409)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/folders", b'{"name": "a\\ud800b"}'),
        ("PATCH", "/api/v1/folders/{folder}", b'{"name": "\\udfff"}'),
        ("PATCH", "/api/v1/items/{item}", b'{"props": {"\\ud800": 1}}'),
        ("PATCH", "/api/v1/items/{item}", b'{"\\ud800": 1}'),
        ("PATCH", "/api/v1/items/{item}", b'{"props": {"{PS_PUBLIC_STRINGS}:x\\udc00": "v"}}'),
        ("PATCH", "/api/v1/items/{item}", b'{"props": {"PidTagSubject": "\\ud800"}}'),
        ("POST", "/api/v1/folders/{folder}/items", b'{"props": {"PidTagSubject": "\\udbff"}}'),
        ("POST", "/api/v1/items/{item}/move", b'{"folder_id": "\\ud800"}'),
        ("PUT", "/api/v1/items/{item}/recipients", b'[{"PidTagSmtpAddress": "\\ud800@x"}]'),
        ("POST", "/api/v1/tokens", b'{"name": "t\\ud800", "scope": "read"}'),
    ],
)
async def test_lone_surrogates_are_refused(
    api: Api,
    unchanged: Unchanged,
    target: dict[str, Any],
    method: str,
    path: str,
    body: bytes,
) -> None:
    url = path.format(folder=target["roles"]["inbox"], item=target["item"]["id"])
    async with unchanged():
        await api.problem(method, url, 400, data=body, headers={"Content-Type": "application/json"})
    # a surrogate pair is a character like any other
    created = await api.post(
        "/api/v1/folders",
        data=b'{"name": "smile \\ud83d\\ude00"}',
        headers={"Content-Type": "application/json"},
    )
    assert created["props"]["PidTagDisplayName"] == "smile \U0001f600"


async def test_bad_query_parameters(api: Api, target: dict[str, Any]) -> None:
    path = f"/api/v1/folders/{target['roles']['inbox']}/items"
    for params in (
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"offset": "-1"},
        {"offset": "1e3"},
        {"columns": "PidTagNoSuchThing"},
        {"columns": "0x12"},
        {"sort": "PidTagNoSuchThing"},
    ):
        await api.problem("GET", path, 400, params=params)
    await api.problem(
        "GET", f"/api/v1/items/{target['item']['id']}", 400, params={"columns": "0xZZ"}
    )


ID_OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in load_openapi()["paths"].items()
    for method in item
    if method in ("get", "post", "put", "patch", "delete") and "{id}" in path
)


@pytest.mark.parametrize(("method", "path"), ID_OPERATIONS)
async def test_unknown_and_malformed_ids(
    api: Api, unchanged: Unchanged, target: dict[str, Any], method: str, path: str
) -> None:
    is_item = path.startswith("/api/v1/items/")
    real = target["item"]["id"] if is_item else target["roles"]["inbox"]
    wrong_kind = target["roles"]["inbox"] if is_item else target["item"]["id"]
    # a body the operation would accept, so that only the id is wrong
    body: dict[str, Any] = (
        {"folder_id": target["roles"]["drafts"]}
        if path.endswith(("/move", "/copy"))
        else {"props": {}}
    )
    async with unchanged():
        for bad in (
            "m999999" if is_item else "f999999",
            wrong_kind,
            "x1",
            "m0" if is_item else "f0",
            "f-1",
            "00" * 30,
            "zz" * 30,
            "9" * 40,
            real + "0" * 30,
        ):
            url = path.replace("{id}", bad).replace("{num}", "0")
            doc = await api.problem(method, url, 404, json=body)
            assert doc["type"] in (
                "urn:kbridge:problem:not-found",
                "urn:kbridge:problem:no-such-route",
            ), doc


async def test_entry_id_of_another_store_is_not_found(
    api: Api, unchanged: Unchanged, target: dict[str, Any], tmp_path: Any
) -> None:
    item = await api.get(f"/api/v1/items/{target['item']['id']}")
    hex_id = base64.b64decode(item["props"]["PidTagEntryId"]).hex()
    assert (await api.get(f"/api/v1/items/{hex_id}"))["id"] == item["id"]
    other = await Store.open(tmp_path / "other.sqlite")
    try:
        foreign = other.ids.entry_id("item", int(item["id"][1:])).hex()
    finally:
        await other.close()
    async with unchanged():
        await api.problem("GET", f"/api/v1/items/{foreign}", 404)
        await api.problem("DELETE", f"/api/v1/items/{foreign}", 404)


async def test_oversize_bodies(make_api: MakeApi, unchanged: Unchanged) -> None:
    small = await make_api(ApiSettings(max_json_bytes=1024, max_request_bytes=4096))
    roles = await small.roles()
    item = await small.new_item(roles["inbox"], {"PidTagSubject": "small"})
    big_json = {"props": {"PidTagSubject": "x" * 2000}}

    async def chunked(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 500):
            yield data[i : i + 500]

    async with unchanged(small):
        for method, path in (
            ("PATCH", f"/api/v1/items/{item['id']}"),
            ("POST", f"/api/v1/folders/{roles['inbox']}/items"),
            ("POST", "/api/v1/folders"),
            ("PUT", f"/api/v1/items/{item['id']}/recipients"),
        ):
            doc = await small.problem(method, path, 413, json=big_json)
            assert doc["type"] == "urn:kbridge:problem:too-large"
            # without a Content-Length the limit holds as well
            doc = await small.problem(
                method,
                path,
                413,
                data=chunked(json.dumps(big_json).encode()),
                headers={"Content-Type": "application/json"},
            )
            assert doc["type"] == "urn:kbridge:problem:too-large"
        raw = b"Subject: big\r\n\r\n" + b"x" * 5000
        await small.problem(
            "POST",
            f"/api/v1/folders/{roles['inbox']}/items",
            413,
            data=raw,
            headers={"Content-Type": "message/rfc822"},
        )
        await small.problem(
            "POST",
            f"/api/v1/items/{item['id']}/attachments",
            413,
            data=b"y" * 5000,
            headers={"Content-Type": "application/octet-stream"},
        )


# text, now and then with a lone surrogate (sent as a \u escape)
texts = st.text(max_size=20) | st.sampled_from(["\ud800", "a\udfffb", "\ud83d\ude00"])
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
prop_names = (
    st.sampled_from(
        [
            "PidTagSubject",
            "PidTagImportance",
            "PidTagRead",
            "PidTagMessageFlags",
            "PidTagMessageClass",
            "PidTagMessageDeliveryTime",
            "PidTagSearchKey",
            "PidTagEntryId",
            "PidLidBusyStatus",
            "PidLidCategories",
            "PidLidAppointmentStartWhole",
            "{PSETID_Common}:0x8503",
            "{PSETID_Common}:0x85F1",
            "{PS_PUBLIC_STRINGS}:Fuzz",
            "{PS_PUBLIC_STRINGS}:Fuzz:0x0003",
            "0x0037001F",
            "0x0E070003",
            "0x80000003",
            "0x0000FFFF",
            "{PS_PUBLIC_STRINGS}:\udc80",
        ]
    )
    | texts
)
patch_bodies = (
    json_values
    | st.fixed_dictionaries(
        {},
        optional={
            "props": st.dictionaries(prop_names, json_values, max_size=5) | json_values,
            "delete": st.lists(prop_names | json_values, max_size=3) | json_values,
        },
    )
    | st.dictionaries(st.sampled_from(["props", "delete", "extra"]), json_values, max_size=3)
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=patch_bodies)
async def test_fuzzed_patch_never_fails_on_the_server(
    api: Api, target: dict[str, Any], body: Any
) -> None:
    path = f"/api/v1/items/{target['item']['id']}"
    resp = await api.request("PATCH", path, json=body)
    assert resp.status < 500, (resp.status, await resp.text())
    if resp.status >= 400:
        await check_problem(resp)
    # the item stays readable whatever was set
    got = await api.request("GET", path)
    assert got.status == 200, await got.text()
    listing = await api.request("GET", f"/api/v1/folders/{target['roles']['inbox']}/items")
    assert listing.status == 200, await listing.text()
