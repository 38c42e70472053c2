"""Conversations: the key (Thread-Index, References / In-Reply-To, subject), the computed
PidTagConversationId / PidTagConversationTopic, and the conversation view (a categorized
view on PidTagConversationId with counts, unread counts, expand/collapse and headers
ordered by their newest message)."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytest_aiohttp import AiohttpClient

from bridge.api.app import create_app
from bridge.model import evaluate, tags
from bridge.model.restrictions import parse
from bridge.store import conversation
from bridge.store.items import NewItem
from bridge.store.store import Store
from bridge.store.tables import compile as C
from bridge.store.tables import contents, spec
from tests.api.helpers import Api

CID = "PidTagConversationId"
TOPIC = "PidTagConversationTopic"
SUBJ = "PidTagSubject"


def test_normalized_subject() -> None:
    for raw in (
        "Re: Hello",
        "RE: AW: hello",
        "Fwd:Hello",
        "FW : Hello",
        "RE[2]: Hello",
        "SV: VS: TR: WG: Hello",
        "  re:   Hello  ",
    ):
        assert conversation.normalized_subject(raw).lower() == "hello", raw
    assert conversation.normalized_subject("Hello   big  world") == "Hello big world"
    assert conversation.normalized_subject("Research: notes") == "Research: notes"
    assert conversation.normalized_subject("Re:") == ""


@given(
    st.text(
        alphabet=st.sampled_from([*"Re:FWd AwSv[]2 x\t\n", "\u00a0", "\u2028", "\x85", "ü"]),
        max_size=30,
    )
    | st.text(max_size=30)
)
def test_normalized_subject_shortcuts_change_nothing(subject: str) -> None:
    """The regular expressions are skipped when they cannot match; the result is the same."""
    full = conversation._SPACE.sub(" ", conversation._PREFIX.sub("", subject)).strip()
    assert conversation.normalized_subject(subject) == full


def test_whitespace_other_than_the_space_is_never_printable() -> None:
    """What the shortcut of normalized_subject relies on, for every code point."""
    space = re.compile(r"\s")
    for code in range(0x110000):
        c = chr(code)
        if c != " " and space.match(c):
            assert not c.isprintable(), hex(code)


def test_key_prefers_thread_index_then_references_then_subject() -> None:
    header = os.urandom(22)
    reply = {tags.CONVERSATION_INDEX: header + os.urandom(5), tags.SUBJECT: "RE: x"}
    root = {tags.CONVERSATION_INDEX: header, tags.SUBJECT: "other"}
    assert conversation.conversation_id(reply) == conversation.conversation_id(root)
    # base64 (as stored) and bytes give the same id
    stored = {tags.CONVERSATION_INDEX: base64.b64encode(header).decode()}
    assert conversation.conversation_id(stored) == conversation.conversation_id(root)
    # a short (malformed) index is ignored
    short = {tags.CONVERSATION_INDEX: b"\x01\x02", tags.SUBJECT: "Re: x"}
    assert conversation.conversation_id(short) == conversation.conversation_id({tags.SUBJECT: "x"})
    first = {tags.INTERNET_MESSAGE_ID: "<A@example.com>", tags.SUBJECT: "Plan"}
    second = {
        tags.INTERNET_MESSAGE_ID: "<b@example.com>",
        tags.IN_REPLY_TO_ID: "<a@example.com>",
        tags.SUBJECT: "Re: Plan (changed)",
    }
    third = {
        tags.INTERNET_MESSAGE_ID: "<c@example.com>",
        tags.INTERNET_REFERENCES: "<a@example.com> <b@example.com>",
        tags.SUBJECT: "something else",
    }
    ids = {conversation.conversation_id(p) for p in (first, second, third)}
    assert len(ids) == 1
    assert conversation.conversation_id({tags.SUBJECT: "Plan"}) not in ids
    assert len(conversation.conversation_id(first)) == 16


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "store.sqlite")
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def api(store: Store, aiohttp_client: AiohttpClient) -> Api:
    _, secret = await store.tokens.create("admin", "admin")
    return Api(await aiohttp_client(create_app(store)), secret)


async def test_computed_columns_and_updates(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    iid = await store.items.create(inbox, NewItem(props={tags.SUBJECT: "Re: Fwd: Budget"}))
    props = (await store.queries.get(iid)).props
    assert props[tags.CONVERSATION_TOPIC] == "Budget"
    before = props[tags.CONVERSATION_ID]
    assert (
        before == base64.b64encode(conversation.conversation_id({tags.SUBJECT: "Budget"})).decode()
    )
    # the key follows the properties it is made of
    await store.items.update(iid, {tags.IN_REPLY_TO_ID: "<root@x>"})
    after = (await store.queries.get(iid)).props[tags.CONVERSATION_ID]
    assert after != before
    copy = await store.items.copy(iid, inbox)
    assert (await store.queries.get(copy)).props[tags.CONVERSATION_ID] == after


def _time(minute: int) -> str:
    return f"2025-03-01T10:{minute:02d}:00Z"


async def _mail(api: Api, folder: str, subject: str, minute: int, **props: Any) -> str:
    body = {SUBJ: subject, "PidTagMessageDeliveryTime": _time(minute), **props}
    return str((await api.new_item(folder, body))["id"])


async def _view(api: Api, folder: str, **sort: Any) -> tuple[str, list[dict[str, Any]]]:
    doc = await api.post(
        f"/api/v1/folders/{folder}/views",
        json={"columns": [SUBJ, CID, TOPIC], "sort": {"conversation": True, **sort}},
    )
    rows = (await api.get(f"/api/v1/views/{doc['id']}/rows?count=100"))["rows"]
    return doc["id"], rows


async def test_conversation_view_groups_by_thread_index(api: Api) -> None:
    folder = (await api.new_folder((await api.roles())["inbox"], "Threads"))["id"]
    header = os.urandom(22)
    idx = base64.b64encode
    await _mail(api, folder, "Launch", 1, PidTagConversationIndex=idx(header).decode())
    await _mail(
        api, folder, "RE: Launch date", 5, PidTagConversationIndex=idx(header + b"\1" * 5).decode()
    )
    await _mail(api, folder, "Lunch", 3)
    _, rows = await _view(api, folder)
    kinds = [(r["row_type"], r["depth"], r["props"].get(SUBJ)) for r in rows]
    # the Launch conversation (newest message at :05) comes before Lunch (:03)
    assert kinds == [
        ("expanded_header", 0, {"error": "0x8004010F"}),
        ("leaf", 1, "RE: Launch date"),
        ("leaf", 1, "Launch"),
        ("expanded_header", 0, {"error": "0x8004010F"}),
        ("leaf", 1, "Lunch"),
    ]
    launch = rows[0]
    assert launch["props"][CID] == rows[1]["props"][CID] == rows[2]["props"][CID]
    assert launch["props"][TOPIC] == "Launch date"  # the topic of its newest message


async def test_conversation_view_by_references_counts_and_collapse(api: Api) -> None:
    inbox = (await api.roles())["inbox"]
    folder = (await api.new_folder(inbox, "Refs"))["id"]
    await _mail(api, folder, "Plan", 1, PidTagInternetMessageId="<p1@x>")
    await _mail(
        api,
        folder,
        "Re: Plan",
        2,
        PidTagInternetMessageId="<p2@x>",
        PidTagInReplyToId="<p1@x>",
        PidTagRead=True,
    )
    await _mail(
        api,
        folder,
        "New subject, same thread",
        9,
        PidTagInternetMessageId="<p3@x>",
        PidTagInternetReferences="<p1@x> <p2@x>",
    )
    await _mail(api, folder, "Plan", 4, PidTagInternetMessageId="<other@x>")
    doc = await api.post(
        f"/api/v1/folders/{folder}/views",
        json={
            "columns": [SUBJ, "PidTagContentCount", "PidTagContentUnreadCount"],
            "sort": {"conversation": True, "expanded": 0},
        },
    )
    vid = doc["id"]
    rows = (await api.get(f"/api/v1/views/{vid}/rows?count=100"))["rows"]
    assert [r["row_type"] for r in rows] == ["collapsed_header", "collapsed_header"]
    counts = [
        (r["props"]["PidTagContentCount"], r["props"]["PidTagContentUnreadCount"]) for r in rows
    ]
    assert counts == [(3, 2), (1, 1)]  # the thread's newest message is at :09
    out = await api.post(
        f"/api/v1/views/{vid}/expand",
        200,
        json={"instance_key": rows[0]["instance_key"], "rows": 5},
    )
    assert [r["props"][SUBJ] for r in out["rows"]] == [
        "New subject, same thread",
        "Re: Plan",
        "Plan",
    ]
    assert out["total"] == 5


async def test_conversation_view_by_subject_only(api: Api) -> None:
    folder = (await api.new_folder((await api.roles())["inbox"], "Subjects"))["id"]
    await _mail(api, folder, "Offsite", 1)
    await _mail(api, folder, "RE: offsite", 2)
    await _mail(api, folder, "AW: WG: Offsite", 3)
    await _mail(api, folder, "Offsite agenda", 4)
    _, rows = await _view(api, folder, expanded=0)
    assert len(rows) == 2
    doc = await api.post(
        f"/api/v1/folders/{folder}/views",
        json={
            "columns": ["PidTagContentCount", TOPIC],
            "sort": {"conversation": True, "expanded": 0},
        },
    )
    rows = (await api.get(f"/api/v1/views/{doc['id']}/rows?count=10"))["rows"]
    assert [(r["props"][TOPIC], r["props"]["PidTagContentCount"]) for r in rows] == [
        ("Offsite agenda", 1),
        ("Offsite", 3),
    ]


async def test_conversation_id_restriction_and_bad_option(api: Api) -> None:
    folder = (await api.new_folder((await api.roles())["inbox"], "R"))["id"]
    a = await _mail(api, folder, "Topic", 1)
    await _mail(api, folder, "Other", 2)
    cid = (await api.get(f"/api/v1/items/{a}"))["props"][CID]
    doc = await api.post(
        f"/api/v1/folders/{folder}/views",
        json={
            "columns": [SUBJ],
            "restriction": {"property": {"prop": CID, "op": "eq", "value": cid}},
        },
    )
    assert doc["total"] == 1
    await api.problem(
        "POST", f"/api/v1/folders/{folder}/views", 400, json={"sort": {"conversation": "yes"}}
    )


async def test_sql_and_evaluator_agree_on_conversation_columns(store: Store) -> None:
    inbox = store.folders.roles["inbox"]
    fid = await store.folders.create(inbox, "Agree")
    made = [
        NewItem(props={tags.SUBJECT: "RE: Alpha"}),
        NewItem(props={tags.SUBJECT: "Beta", tags.CONVERSATION_TOPIC: "Alpha"}),
        NewItem(props={}),
        NewItem(props={tags.SUBJECT: "alpha  "}),
        NewItem(props={tags.INTERNET_MESSAGE_ID: "<m@x>", tags.SUBJECT: "Gamma"}),
    ]
    ids = await store.items.create_many(fid, made)
    alpha = base64.b64encode(conversation.conversation_id({tags.SUBJECT: "Alpha"})).decode()
    docs: list[dict[str, Any]] = [
        {"content": {"prop": TOPIC, "value": "alpha", "match": "full", "ignore_case": True}},
        {"property": {"prop": TOPIC, "op": "eq", "value": "Alpha"}},
        {"not": {"exist": TOPIC}},
        {"property": {"prop": CID, "op": "eq", "value": alpha}},
        {"exist": CID},
    ]
    compiler = C.Compiler(store.ids, None)
    await C.install_functions(store.core.reader, store.ids)
    rows = {i: evaluate.Row((await store.queries.get(i)).props) for i in ids}
    for doc in docs:
        r = parse(doc, spec.resolver(store.core.named))
        view = spec.build([], r, [(tags.CONVERSATION_TOPIC, "asc"), (tags.CONVERSATION_ID, "desc")])
        got = [
            leaf.id for leaf in await contents.leaves(store.core.reader, compiler, fid, False, view)
        ]
        assert got == evaluate.restrict_and_sort(rows, r, view.keys), doc
        assert got, doc
