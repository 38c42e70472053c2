"""PROPFIND of a folder at Depth 0/1 is answered by `bridge.dav.propfind`: its multistatus
must be the one wsgidav's generic handler gives for the same request (same hrefs, the same
properties with the same values and statuses), for every kind of request body."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote, unquote

import pytest

from bridge.dav import propfind
from bridge.dav.mount import DAV_KEY
from bridge.model import tags
from bridge.store.items import NewItem
from bridge.store.store import Store
from tests.api.helpers import MakeToken
from tests.dav.conftest import Dav

MAPI = "urn:kbridge:mapi:"
MAIL = (
    b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Hello\r\n"
    b"Message-ID: <h@example.com>\r\n\r\nBody\r\n"
)
ODD = ["a&b <c> \"q\" 's'.txt", "café € 😀.txt", "100% done.txt", "x%2Fy.txt"]
ODD_FOLDER = 'R&D <"2024"> é 50%'

BODIES: dict[str, bytes] = {
    "allprop": b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>',
    "empty": b"",
    "propname": b'<propfind xmlns="DAV:"><propname/></propfind>',
    "name": b'<propfind xmlns="DAV:"><name/></propfind>',
    "named": (
        f'<propfind xmlns="DAV:" xmlns:m="{MAPI}" xmlns:x="urn:example:">'
        "<prop><getetag/><getcontentlength/><getcontenttype/><displayname/><resourcetype/>"
        "<m:PidTagSubject/><m:x0E080003/><m:PidTagNope/><x:colour/><x:missing/>"
        "<lockdiscovery/><supportedlock/><quota-used-bytes/><nosuchprop/>"
        "<creationdate/><getlastmodified/></prop></propfind>"
    ).encode(),
    "empty-prop": b'<propfind xmlns="DAV:"><prop/></propfind>',
}


def canonical(elem: ET.Element) -> Any:
    text = (elem.text or "").strip()
    if elem.tag == "{DAV:}timeout" and text.startswith("Second-"):
        text = "Second-N"  # the time left on a lock moves between two requests
    return (elem.tag, text, sorted(elem.attrib.items()), [canonical(c) for c in elem])


def parse(body: bytes) -> dict[str, dict[str, dict[str, Any]]]:
    """href → status → property name → canonical value."""
    root = ET.fromstring(body)
    assert root.tag == "{DAV:}multistatus"
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for response in root:
        assert response.tag == "{DAV:}response"
        (href,) = [e.text for e in response if e.tag == "{DAV:}href"]
        assert href is not None and href not in out, href
        statuses: dict[str, dict[str, Any]] = {}
        for propstat in response.iter("{DAV:}propstat"):
            status = propstat.findtext("{DAV:}status")
            assert status is not None and status not in statuses
            (prop,) = propstat.iter("{DAV:}prop")
            statuses[status] = {p.tag: canonical(p) for p in prop}
        out[href] = statuses
    return out


async def both(
    dav: Dav, path: str, body: bytes, depth: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, bytes, int, bytes]:
    """The answer of the fast path (checked to have run) and of wsgidav's handler."""
    provider = dav.client.app[DAV_KEY].provider
    rendered: list[bool] = []
    render = propfind._Answer.render

    def counting(self: Any, *args: Any) -> bytes:
        rendered.append(True)
        return render(self, *args)

    monkeypatch.setattr(propfind._Answer, "render", counting)
    fast, fast_body = await dav.propfind(path, body, depth)
    assert rendered, "the fast path did not answer"
    provider.fast_propfind = False
    try:
        slow, slow_body = await dav.propfind(path, body, depth)
    finally:
        provider.fast_propfind = True
    assert len(rendered) == 1
    return fast.status, fast_body, slow.status, slow_body


@pytest.fixture
async def filled(dav: Dav, store: Store) -> Dav:
    """Inbox with subfolders, documents, a mail, derived names, dead properties, a lock."""
    inbox = store.folders.roles["inbox"]
    await store.folders.create(inbox, ODD_FOLDER)
    await store.folders.create(inbox, "Plain")
    for name in ODD:
        resp, _ = await dav.request("PUT", "/dav/Inbox/" + quote(name), data=b"doc")
        assert resp.status == 201, name
    assert (await dav.request("PUT", "/dav/Inbox/m.eml", data=MAIL))[0].status == 201
    await store.items.create_many(
        inbox,
        [
            NewItem(props={tags.SUBJECT: 'Re: <urgent> & "odd" ü'}),
            NewItem(props={tags.SUBJECT: "Message"}, source=MAIL, source_type="message/rfc822"),
        ],
    )
    for path in ("/dav/Inbox/m.eml", "/dav/Inbox/", "/dav/Inbox/Plain/"):
        patch = (
            b'<propertyupdate xmlns="DAV:" xmlns:x="urn:example:"><set><prop>'
            b'<x:colour xml:lang="en">blue &amp; <x:b a="1"/>\xc3\xa9</x:colour>'
            b"</prop></set></propertyupdate>"
        )
        resp, out = await dav.request("PROPPATCH", path, data=patch)
        assert resp.status == 207 and b"200 OK" in out, out
    lock = (
        b'<lockinfo xmlns="DAV:"><lockscope><exclusive/></lockscope>'
        b"<locktype><write/></locktype><owner><href>me &amp; you</href></owner></lockinfo>"
    )
    resp, _ = await dav.request(
        "LOCK", "/dav/Inbox/" + quote(ODD[1]), data=lock, headers={"Timeout": "Second-600"}
    )
    assert resp.status == 200
    return dav


@pytest.mark.parametrize("kind", list(BODIES))
@pytest.mark.parametrize("depth", ["0", "1"])
async def test_same_multistatus_as_wsgidav(
    filled: Dav, kind: str, depth: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in ("/dav/Inbox/", "/dav/", "/dav/Inbox/Plain/"):
        fast, fast_body, slow, slow_body = await both(
            filled, path, BODIES[kind], depth, monkeypatch
        )
        assert fast == slow == 207
        got, want = parse(fast_body), parse(slow_body)
        assert set(got) == set(want), path
        for href in want:
            assert got[href] == want[href], (path, href)
        if path != "/dav/Inbox/":  # no locked member: byte for byte the same
            assert fast_body == slow_body
        monkeypatch.undo()


async def test_answer_covers_every_member_and_escapes_names(
    filled: Dav, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, body, _, _ = await both(filled, "/dav/Inbox/", BODIES["allprop"], "1", monkeypatch)
    answer = parse(body)
    hrefs = {unquote(h) for h in answer}
    for name in ODD:
        assert f"/dav/Inbox/{name}" in hrefs, name
    odd = next(h for h in answer if unquote(h).startswith("/dav/Inbox/R&D %3C%22"))
    assert odd.endswith("/") and " " not in odd and "&" not in odd
    names = {p["{DAV:}displayname"][1] for p in (s["HTTP/1.1 200 OK"] for s in answer.values())}
    assert set(ODD) <= names and ODD_FOLDER in names
    assert any(n.startswith("Re%3A %3Curgent%3E & %22odd%22 ü [m") for n in names), names
    locked = answer[next(h for h in answer if unquote(h).endswith(ODD[1]))]["HTTP/1.1 200 OK"]
    assert "me & you" in repr(locked["{DAV:}lockdiscovery"])
    assert "blue &" in repr(answer["/dav/Inbox/m.eml"]["HTTP/1.1 200 OK"]["{urn:example:}colour"])


async def test_named_properties_status_per_property(
    filled: Dav, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, body, _, _ = await both(filled, "/dav/Inbox/", BODIES["named"], "1", monkeypatch)
    mail = parse(body)["/dav/Inbox/m.eml"]
    assert mail["HTTP/1.1 200 OK"][f"{{{MAPI}}}PidTagSubject"][1] == "Hello"
    assert mail["HTTP/1.1 200 OK"][f"{{{MAPI}}}x0E080003"][1] == str(len(MAIL))
    assert "{urn:example:}colour" in mail["HTTP/1.1 200 OK"]
    missing = set(mail["HTTP/1.1 404 Not Found"])
    assert {f"{{{MAPI}}}PidTagNope", "{urn:example:}missing", "{DAV:}nosuchprop"} <= missing
    folder = parse(body)["/dav/Inbox/"]
    assert {"{DAV:}getetag", "{DAV:}getcontentlength"} <= set(folder["HTTP/1.1 404 Not Found"])


async def test_folder_limited_token_and_fallbacks(
    filled: Dav, store: Store, make_token: MakeToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited = filled.as_token(await make_token("read", [store.folders.roles["drafts"]]))
    assert (await limited.propfind("/dav/Inbox/"))[0].status == 404
    for path in ("/dav/", "/dav/Drafts/"):
        fast, fast_body, slow, slow_body = await both(
            limited, path, BODIES["allprop"], "1", monkeypatch
        )
        assert fast == slow == 207 and fast_body == slow_body
        monkeypatch.undo()
    bad = b'<propfind xmlns="DAV:"><allprop/><prop><getetag/></prop></propfind>'
    assert (await filled.propfind("/dav/Inbox/", bad))[0].status == 400
    assert (await filled.propfind("/dav/Inbox/", b"<other/>"))[0].status == 400
    assert (await filled.propfind("/dav/Inbox/", b"<propfind"))[0].status == 400
    resp, body = await filled.propfind("/dav/", depth="infinity")  # wsgidav answers
    assert resp.status == 207 and "/dav/Inbox/m.eml" in parse(body)
    resp, body = await filled.propfind("/dav/Inbox/m.eml", depth="0")
    assert resp.status == 207 and list(parse(body)) == ["/dav/Inbox/m.eml"]
