"""The DAV adapter against a scripted HTTP server: answers real servers rarely give
(truncated sync-collection, absolute hrefs, unquoted ETags, redirects) and hostile ones
(entity bombs, endless or oversized bodies, garbage). Each ends in a result or a clear
UpstreamError, never a crash or a hang."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.upstream.base import AuthFailed, ConnectFailed, UpstreamError
from bridge.upstream.dav import HttpDavAdapter
from bridge.upstream.dav_base import (
    CALENDAR,
    Collection,
    DavSettings,
    PreconditionFailed,
    ResourceGone,
    SyncTokenInvalid,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MS = '<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
END = "</d:multistatus>"
CAL = Collection("/cal/work/", "Work", CALENDAR)


def ms(body: str, status: int = 207) -> web.Response:
    return web.Response(status=status, body=(MS + body + END).encode(), content_type="text/xml")


def prop_response(href: str, props: str, status: str = "200 OK") -> str:
    return (
        f"<d:response><d:href>{href}</d:href><d:propstat><d:prop>{props}</d:prop>"
        f"<d:status>HTTP/1.1 {status}</d:status></d:propstat></d:response>"
    )


def gone(href: str) -> str:
    return (
        f"<d:response><d:href>{href}</d:href>"
        "<d:status>HTTP/1.1 404 Not Found</d:status></d:response>"
    )


@dataclass
class Script:
    """Routes (method, path) to handlers; discovery answers are built in."""

    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)

    def on(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append((request.method, request.path, body))
        h = self.routes.get((request.method, request.path))
        if h is not None:
            return await h(request)
        if request.method == "PROPFIND" and request.path == "/":
            return ms(
                prop_response(
                    "/", "<d:current-user-principal><d:href>/p/</d:href></d:current-user-principal>"
                )
            )
        if request.method == "PROPFIND" and request.path == "/p/":
            return ms(
                prop_response(
                    "/p/",
                    "<c:calendar-home-set><d:href>/cal/</d:href></c:calendar-home-set>",
                )
            )
        if request.method == "PROPFIND" and request.path == "/cal/":
            return ms(prop_response("/cal/", "<d:resourcetype><d:collection/></d:resourcetype>"))
        return web.Response(status=404)


@dataclass
class Rig:
    script: Script
    server: TestServer

    def adapter(self, **kw: object) -> HttpDavAdapter:
        settings = DavSettings(str(self.server.make_url("/")), "user", "pw", timeout=2)
        from dataclasses import replace

        return HttpDavAdapter(replace(settings, **kw))  # type: ignore[arg-type]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    script = Script()
    app = web.Application(client_max_size=1 << 24)
    app.router.add_route("*", "/{tail:.*}", script.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Rig(script, server)
    finally:
        await server.close()


@pytest.fixture
async def dav(rig: Rig) -> AsyncIterator[HttpDavAdapter]:
    a = rig.adapter()
    await a.connect()
    try:
        yield a
    finally:
        await a.close()


async def test_truncated_sync_collection_is_continued(rig: Rig, dav: HttpDavAdapter) -> None:
    pages = {
        "t0": (
            prop_response("http://elsewhere.example/cal/work/a.ics", "<d:getetag>abc</d:getetag>")
            + prop_response("/cal/work/b%2eics", '<d:getetag>"b1"</d:getetag>')
            + "<d:response><d:href>/cal/work/</d:href><d:status>HTTP/1.1 507 Insufficient Storage"
            "</d:status></d:response><d:sync-token>t1</d:sync-token>"
        ),
        "t1": (
            gone("/cal/work/b.ics")
            + prop_response("/cal/work/c%20d.ics", '<d:getetag>"c"</d:getetag>')
            + "<d:sync-token>t2</d:sync-token>"
        ),
    }

    async def report(request: web.Request) -> web.Response:
        body = (await request.read()).decode()
        token = body.split("<D:sync-token>")[1].split("<")[0]
        return ms(pages[token])

    rig.script.on("REPORT", "/cal/work/", report)
    delta = await dav.changes(CAL, "t0")
    assert delta.token == "t2"
    assert [(r.href, r.etag) for r in delta.changed] == [
        ("/cal/work/a.ics", '"abc"'),
        ("/cal/work/c%20d.ics", '"c"'),
    ]
    assert delta.removed == ["/cal/work/b.ics"]


async def test_truncation_without_progress_is_an_error(rig: Rig, dav: HttpDavAdapter) -> None:
    async def report(request: web.Request) -> web.Response:
        return ms(
            "<d:response><d:href>/cal/work/</d:href><d:status>HTTP/1.1 507 x</d:status>"
            "</d:response><d:sync-token>same</d:sync-token>"
        )

    rig.script.on("REPORT", "/cal/work/", report)
    with pytest.raises(UpstreamError, match="without progress"):
        await dav.changes(CAL, "same")


async def test_sync_token_refused(rig: Rig, dav: HttpDavAdapter) -> None:
    async def report(request: web.Request) -> web.Response:
        return web.Response(
            status=409,
            body=b'<?xml version="1.0"?><D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>',
            content_type="application/xml",
        )

    rig.script.on("REPORT", "/cal/work/", report)
    with pytest.raises(SyncTokenInvalid):
        await dav.changes(CAL, "old")


async def test_no_sync_collection_is_upstream_error(rig: Rig, dav: HttpDavAdapter) -> None:
    async def report(request: web.Request) -> web.Response:
        return web.Response(status=501, text="REPORT not implemented")

    rig.script.on("REPORT", "/cal/work/", report)
    with pytest.raises(UpstreamError, match="501") as info:
        await dav.changes(CAL, None)
    assert not isinstance(info.value, SyncTokenInvalid)


ENTITY_BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    '<d:multistatus xmlns:d="DAV:"><d:response><d:href>&lol3;</d:href></d:response>'
    "</d:multistatus>"
)
EXTERNAL = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    '<d:multistatus xmlns:d="DAV:"><d:response><d:href>&e;</d:href></d:response></d:multistatus>'
)


@pytest.mark.parametrize(
    "body",
    [ENTITY_BOMB, EXTERNAL, "not xml at all", "<d:multistatus xmlns:d='DAV:'>", "<html/>", ""],
    ids=["entities", "external", "garbage", "unclosed", "wrong-root", "empty"],
)
async def test_bad_xml_is_upstream_error(rig: Rig, dav: HttpDavAdapter, body: str) -> None:
    async def propfind(request: web.Request) -> web.Response:
        return web.Response(status=207, text=body, content_type="text/xml")

    rig.script.on("PROPFIND", "/cal/work/", propfind)
    with pytest.raises(UpstreamError):
        await dav.listing(CAL)
    assert await dav.collections() == []  # still usable


async def test_deep_nesting_is_harmless(rig: Rig, dav: HttpDavAdapter) -> None:
    deep = "<x>" * 50_000 + "</x>" * 50_000

    async def propfind(request: web.Request) -> web.Response:
        return ms(
            prop_response("/cal/work/a.ics", f'<d:getetag>"a"</d:getetag><d:other>{deep}</d:other>')
        )

    rig.script.on("PROPFIND", "/cal/work/", propfind)
    try:
        listed = await dav.listing(CAL)
    except UpstreamError:
        return  # refusing it is fine too
    assert [(r.href, r.etag) for r in listed] == [("/cal/work/a.ics", '"a"')]


async def test_oversized_answer_is_refused(rig: Rig) -> None:
    async def propfind(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=207, headers={"Content-Type": "text/xml"})
        await resp.prepare(request)
        await resp.write(MS.encode())
        for _ in range(64):  # 4 MiB, no Content-Length
            await resp.write(b"<d:x>" + b"y" * 65536 + b"</d:x>")
        await resp.write_eof()
        return resp

    rig.script.on("PROPFIND", "/cal/work/", propfind)
    a = rig.adapter(max_response_bytes=1 << 20)
    await a.connect()
    try:
        with pytest.raises(UpstreamError, match="over the limit"):
            await a.listing(CAL)
        assert await a.collections() == []
    finally:
        await a.close()


async def test_endless_answer_times_out(rig: Rig) -> None:
    async def propfind(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=207, headers={"Content-Type": "text/xml"})
        await resp.prepare(request)
        await resp.write(MS.encode())
        await asyncio.sleep(3600)
        return resp

    rig.script.on("PROPFIND", "/cal/work/", propfind)
    a = rig.adapter(timeout=0.5)
    await a.connect()
    try:
        with pytest.raises(ConnectFailed, match="no answer within"):
            await asyncio.wait_for(a.listing(CAL), 30)
    finally:
        await a.close()


def _multiget_hrefs(body: bytes) -> list[str]:
    return [part.split("</D:href>")[0] for part in body.decode().split("<D:href>")[1:]]


async def test_multiget_too_large_is_split(rig: Rig) -> None:
    sizes = {"/cal/work/small1.ics": 10, "/cal/work/small2.ics": 10, "/cal/work/huge.ics": 900_000}
    batches: list[list[str]] = []

    async def report(request: web.Request) -> web.Response:
        hrefs = _multiget_hrefs(await request.read())
        batches.append(hrefs)
        parts = [
            prop_response(
                h,
                f'<d:getetag>"{h}"</d:getetag><c:calendar-data>BEGIN:VCALENDAR\n'
                f"X:{'z' * sizes[h]}\nEND:VCALENDAR\n</c:calendar-data>",
            )
            for h in hrefs
        ]
        return ms("".join(parts))

    rig.script.on("REPORT", "/cal/work/", report)
    a = rig.adapter(max_response_bytes=500_000, multiget_batch=3)
    await a.connect()
    try:
        got = [f async for f in a.fetch(CAL, list(sizes))]
    finally:
        await a.close()
    assert [f.href for f in got] == list(sizes)
    by = {f.href: f for f in got}
    assert by["/cal/work/huge.ics"].error == "too large" and by["/cal/work/huge.ics"].data is None
    assert (
        by["/cal/work/small1.ics"].data == b"BEGIN:VCALENDAR\r\nX:zzzzzzzzzz\r\nEND:VCALENDAR\r\n"
    )
    assert batches[0] == list(sizes) and ["/cal/work/huge.ics"] in batches


async def test_multiget_error_member_and_absent_member(rig: Rig, dav: HttpDavAdapter) -> None:
    async def report(request: web.Request) -> web.Response:
        return ms(
            gone("/cal/work/gone.ics")
            + prop_response("/cal/work/nodata.ics", '<d:getetag>"n"</d:getetag>')
            + prop_response(
                "/cal/work/%7Ebob.ics",
                '<d:getetag>"b"</d:getetag><c:calendar-data>X</c:calendar-data>',
            )
        )

    rig.script.on("REPORT", "/cal/work/", report)
    wanted = [
        "/cal/work/gone.ics",
        "/cal/work/nodata.ics",
        "/cal/work/~bob.ics",
        "/cal/work/absent.ics",
    ]
    got = {f.href: f for f in [f async for f in dav.fetch(CAL, wanted)]}
    assert got["/cal/work/gone.ics"].error == "404"
    assert (
        got["/cal/work/nodata.ics"].error is not None and got["/cal/work/nodata.ics"].data is None
    )
    assert got["/cal/work/~bob.ics"].data == b"X" and got["/cal/work/~bob.ics"].etag == '"b"'
    assert got["/cal/work/absent.ics"].error == "missing"


async def test_put_answers(rig: Rig, dav: HttpDavAdapter) -> None:
    answers = iter(
        [
            web.Response(status=201, headers={"ETag": '"new"'}),
            web.Response(status=204),
            web.Response(status=201, headers={"ETag": 'W/"weak"'}),
            web.Response(status=412),
            web.Response(status=500, text="<h1>database on fire</h1>\x00\x01"),
            web.Response(status=404),
        ]
    )

    async def put(request: web.Request) -> web.Response:
        return next(answers)

    rig.script.on("PUT", "/cal/work/a b.ics", put)  # paths as decoded
    assert (await dav.put(CAL, "a b.ics", b"x", create=True)).etag == '"new"'
    assert (await dav.put(CAL, "a b.ics", b"x", etag='"new"')).etag is None
    assert (await dav.put(CAL, "a b.ics", b"x")).etag is None  # weak: the server changed it
    with pytest.raises(PreconditionFailed):
        await dav.put(CAL, "a b.ics", b"x", etag='"old"')
    with pytest.raises(UpstreamError, match="500 \\(database on fire\\)"):
        await dav.put(CAL, "a b.ics", b"x")
    with pytest.raises(ResourceGone):
        await dav.put(CAL, "a b.ics", b"x")
    sent = [s for s in rig.script.seen if s[0] == "PUT"]
    assert len(sent) == 6


async def test_conditional_headers(rig: Rig, dav: HttpDavAdapter) -> None:
    headers: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        headers.append(dict(request.headers))
        return web.Response(status=204)

    rig.script.on("PUT", "/cal/work/x.ics", record)
    rig.script.on("DELETE", "/cal/work/x.ics", record)
    await dav.put(CAL, "x.ics", b"x", create=True)
    await dav.put(CAL, "x.ics", b"x", etag='"e1"')
    await dav.delete("/cal/work/x.ics", etag='"e2"')
    assert headers[0]["If-None-Match"] == "*" and "If-Match" not in headers[0]
    assert headers[0]["Content-Type"].startswith("text/calendar")
    assert headers[1]["If-Match"] == '"e1"' and "If-None-Match" not in headers[1]
    assert headers[2]["If-Match"] == '"e2"'


async def test_redirect_to_another_server_is_refused(rig: Rig, dav: HttpDavAdapter) -> None:
    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("http://127.0.0.2:1/cal/work/")

    rig.script.on("PROPFIND", "/cal/work/", moved)
    with pytest.raises(UpstreamError, match="another server"):
        await dav.listing(CAL)


async def test_redirect_loop(rig: Rig, dav: HttpDavAdapter) -> None:
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/cal/work/")

    rig.script.on("PROPFIND", "/cal/work/", loop)
    with pytest.raises(UpstreamError, match="redirects"):
        await dav.listing(CAL)


async def test_discovery_through_well_known(rig: Rig) -> None:
    async def root(request: web.Request) -> web.Response:
        return web.Response(status=404)

    async def well_known(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/dav/")

    async def dav_root(request: web.Request) -> web.Response:
        return ms(
            prop_response(
                "/dav/", "<d:current-user-principal><d:href>/p/</d:href></d:current-user-principal>"
            )
        )

    rig.script.on("PROPFIND", "/", root)
    rig.script.on("PROPFIND", "/.well-known/caldav", well_known)
    rig.script.on("PROPFIND", "/dav/", dav_root)
    a = rig.adapter()
    await a.connect()
    await a.close()
    assert (a.principal, a.calendar_home, a.addressbook_home) == ("/p/", "/cal/", None)


async def test_discovery_without_dav_is_upstream_error(rig: Rig) -> None:
    async def nothing(request: web.Request) -> web.Response:
        return web.Response(status=404)

    rig.script.on("PROPFIND", "/", nothing)
    a = rig.adapter()
    with pytest.raises(UpstreamError, match="no CalDAV or CardDAV service"):
        await a.connect()
    await a.close()


@pytest.mark.parametrize("status", [401, 403])
async def test_discovery_refused_is_auth_failed(rig: Rig, status: int) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"WWW-Authenticate": 'Basic realm="x"'})

    rig.script.on("PROPFIND", "/", refuse)
    a = rig.adapter()
    with pytest.raises(AuthFailed):
        await a.connect()
    await a.close()


async def test_collections_kinds_and_privileges(rig: Rig, dav: HttpDavAdapter) -> None:
    def coll(href: str, types: str, comps: str = "", privs: str | None = None) -> str:
        p = f"<d:resourcetype><d:collection/>{types}</d:resourcetype>"
        p += f"<d:displayname>{href}</d:displayname>"
        if comps:
            p += (
                "<c:supported-calendar-component-set>"
                + "".join(f'<c:comp name="{c}"/>' for c in comps.split())
                + "</c:supported-calendar-component-set>"
            )
        if privs is not None:
            p += (
                "<d:current-user-privilege-set>"
                + "".join(f"<d:privilege><d:{x}/></d:privilege>" for x in privs.split())
                + "</d:current-user-privilege-set>"
            )
        return prop_response(href, p)

    async def home(request: web.Request) -> web.Response:
        return ms(
            coll("/cal/", "")
            + coll("/cal/both/", "<c:calendar/>", "VEVENT VTODO")
            + coll("/cal/todo/", "<c:calendar/>", "VTODO", "read write")
            + coll("/cal/journal/", "<c:calendar/>", "VJOURNAL", "read")
            + coll("/cal/any/", "<c:calendar/>")
            + coll("/cal/fb/", "<c:calendar/>", "VFREEBUSY")
            + coll("/cal/inbox/", "<c:schedule-inbox/>")
            + coll("/cal/plain/", "")
        )

    rig.script.on("PROPFIND", "/cal/", home)
    found = {c.href: (c.kind, c.writable) for c in await dav.collections()}
    assert found == {
        "/cal/both/": ("calendar", True),
        "/cal/todo/": ("tasks", True),
        "/cal/journal/": ("notes", False),
        "/cal/any/": ("calendar", True),
    }


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="module")
def tls_context(tls_dir: Path) -> ssl.SSLContext:
    """A server context with a self-signed certificate for 127.0.0.1 (tls_dir/crt.pem)."""
    d = tls_dir
    key, crt = d / "key.pem", d / "crt.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(crt), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    return ctx


@pytest.fixture
async def tls_rig(tls_context: ssl.SSLContext) -> AsyncIterator[Rig]:
    """The scripted server behind TLS."""
    script = Script()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=tls_context)
    try:
        yield Rig(script, server)
    finally:
        await server.close()


async def test_tls_verification_follows_the_settings(tls_rig: Rig, tls_dir: Path) -> None:
    strict = tls_rig.adapter()
    assert strict.settings.url.startswith("https://")
    with pytest.raises(ConnectFailed, match=r"TLS: .* not trusted \(self-signed certificate\)"):
        await strict.connect()
    await strict.close()
    for adapter in (
        tls_rig.adapter(verify_tls=False),
        tls_rig.adapter(ca_file=str(tls_dir / "crt.pem")),  # checked, and trusted
    ):
        await adapter.connect()
        try:
            assert adapter.calendar_home == "/cal/"
        finally:
            await adapter.close()


async def test_compression_bomb_is_refused(rig: Rig) -> None:
    bomb = gzip.compress(MS.encode() + b" " * (16 << 20))  # 16 MiB in ~16 KiB

    async def propfind(request: web.Request) -> web.Response:
        return web.Response(
            status=207,
            body=bomb,
            headers={"Content-Type": "text/xml", "Content-Encoding": "gzip"},
        )

    rig.script.on("PROPFIND", "/cal/work/", propfind)
    a = rig.adapter(max_response_bytes=1 << 20)
    await a.connect()
    try:
        with pytest.raises(UpstreamError, match="over the limit"):
            await a.listing(CAL)
    finally:
        await a.close()


async def test_hrefs_that_are_not_urls_are_ignored(rig: Rig, dav: HttpDavAdapter) -> None:
    async def propfind(request: web.Request) -> web.Response:
        return ms(
            prop_response("http://[::1/cal/work/x.ics", '<d:getetag>"x"</d:getetag>')
            + prop_response("/cal/work/ok.ics", '<d:getetag>"ok"</d:getetag>')
        )

    async def bad_location(request: web.Request) -> web.Response:
        return web.Response(status=301, headers={"Location": "http://[::1/"})

    rig.script.on("PROPFIND", "/cal/work/", propfind)
    rig.script.on("PROPFIND", "/cal/other/", bad_location)
    assert [r.href for r in await dav.listing(CAL)] == ["/cal/work/ok.ics"]
    with pytest.raises(UpstreamError, match="invalid URL"):
        await dav.listing(Collection("/cal/other/", "Other", CALENDAR))


async def test_principal_that_is_not_a_url(rig: Rig) -> None:
    async def root(request: web.Request) -> web.Response:
        return ms(
            prop_response(
                "/",
                "<d:current-user-principal><d:href>http://[::1/p/</d:href>"
                "</d:current-user-principal>",
            )
        )

    rig.script.on("PROPFIND", "/", root)
    a = rig.adapter()
    with pytest.raises(UpstreamError, match="no CalDAV or CardDAV service"):
        await a.connect()
    await a.close()


async def test_members_elsewhere_are_ignored(rig: Rig, dav: HttpDavAdapter) -> None:
    outside = (
        prop_response("/other/x.ics", '<d:getetag>"o"</d:getetag>')
        + prop_response("/cal/work/sub/y.ics", '<d:getetag>"s"</d:getetag>')
        + prop_response("/cal/work/sub/", '<d:getetag>"c"</d:getetag>')
        + gone("/cal/x.ics")
        + prop_response("/cal/work/in.ics", '<d:getetag>"i"</d:getetag>')
    )

    async def report(request: web.Request) -> web.Response:
        return ms(outside + "<d:sync-token>t9</d:sync-token>")

    async def propfind(request: web.Request) -> web.Response:
        return ms(outside)

    rig.script.on("REPORT", "/cal/work/", report)
    rig.script.on("PROPFIND", "/cal/work/", propfind)
    delta = await dav.changes(CAL, "t8")
    assert [r.href for r in delta.changed] == ["/cal/work/in.ics"] and delta.removed == []
    assert [r.href for r in await dav.listing(CAL)] == ["/cal/work/in.ics"]
