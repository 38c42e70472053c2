"""Tokens on /dav/: Basic challenge, read scope, folder limits."""

from __future__ import annotations

from bridge.store.store import Store
from tests.api.helpers import MakeToken
from tests.dav.conftest import Dav

WRITE_METHODS = ("PUT", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK")


async def test_no_token_gets_a_basic_challenge(dav: Dav) -> None:
    resp, _ = await dav.as_token(None).propfind("/dav/")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="kbridge"'
    resp, _ = await dav.as_token("kb_wrong").request("GET", "/dav/Inbox/x")
    assert resp.status == 401


async def test_read_token_reads_and_gets_403_on_every_write(
    dav: Dav, store: Store, make_token: MakeToken
) -> None:
    await dav.request("PUT", "/dav/Inbox/a.txt", data=b"a")
    reader = dav.as_token(await make_token("read"))
    assert (await reader.propfind("/dav/Inbox/"))[0].status == 207
    assert (await reader.request("GET", "/dav/Inbox/a.txt"))[1] == b"a"
    assert (await reader.request("OPTIONS", "/dav/"))[0].status == 200
    for method in WRITE_METHODS:
        resp, _ = await reader.request(
            method,
            "/dav/Inbox/a.txt",
            data=b"x",
            headers={"Destination": "http://127.0.0.1/dav/Drafts/a.txt"},
        )
        assert resp.status == 403, method
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    assert len(items) == 1
    assert (await dav.request("GET", "/dav/Inbox/a.txt"))[1] == b"a"


async def test_folder_limited_token_sees_only_its_folders(
    dav: Dav, store: Store, make_token: MakeToken
) -> None:
    await dav.request("PUT", "/dav/Inbox/secret.txt", data=b"s")
    await dav.request("PUT", "/dav/Drafts/mine.txt", data=b"m")
    limited = dav.as_token(await make_token("write", folders=[store.folders.roles["drafts"]]))
    resp, body = await limited.propfind("/dav/")
    assert resp.status == 207
    assert b"/dav/Drafts/" in body and b"/dav/Inbox/" not in body
    assert (await limited.request("GET", "/dav/Inbox/secret.txt"))[0].status == 404
    assert (await limited.request("GET", "/dav/Drafts/mine.txt"))[1] == b"m"
    assert (await limited.request("PUT", "/dav/Drafts/new.txt", data=b"n"))[0].status == 201
    assert (await limited.request("PUT", "/dav/Inbox/new.txt", data=b"n"))[0].status in (403, 409)
    assert (await limited.request("PUT", "/dav/top.txt", data=b"n"))[0].status == 403
    resp, _ = await limited.request(
        "MOVE", "/dav/Drafts/mine.txt", headers={"Destination": "http://127.0.0.1/dav/Inbox/x.txt"}
    )
    assert resp.status in (403, 409)
    assert (await dav.request("GET", "/dav/Drafts/mine.txt"))[1] == b"m"
