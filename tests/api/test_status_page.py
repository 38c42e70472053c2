"""The status page: one-time login links, the session cookie and what it may do."""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from pytest_aiohttp import AiohttpClient

from bridge.api.app import create_app
from bridge.api.sessions import COOKIE
from bridge.store.store import Store
from bridge.sync.imap_service import ImapSyncService
from bridge.upstream.imap import ImapSettings
from tests.api.helpers import Api, MakeToken, check_problem


async def login(api: Api) -> str:
    """Log in through a fresh login link; the session cookie's value."""
    link = await api.post("/api/v1/status/login-links")
    url = urlsplit(link["url"])
    assert url.path == "/status/login" and link["expires"].endswith("Z")
    resp = await api.as_token(None).request("GET", f"{url.path}?{url.query}", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    cookie = SimpleCookie()
    cookie.load(resp.headers["Set-Cookie"])
    morsel = cookie[COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    api.client.session.cookie_jar.clear()
    return morsel.value


def with_cookie(session: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={session}", **(extra or {})}


async def test_without_login_the_page_says_how_to_get_in(api: Api) -> None:
    resp = await api.as_token(None).request("GET", "/")
    assert resp.status == 401
    assert resp.content_type == "text/html"
    assert "kbridge status --login-link" in await resp.text()
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]


async def test_login_link_opens_the_page_once(api: Api) -> None:
    session = await login(api)
    anonymous = api.as_token(None)
    resp = await anonymous.request("GET", "/", headers=with_cookie(session))
    assert resp.status == 200
    page = await resp.text()
    assert 'id=state class="dot off"' in page and "local-only" in page
    assert "Outbox" in page and "Conflicts" in page
    script = await anonymous.request("GET", "/status/page.js", headers=with_cookie(session))
    assert script.status == 200 and "/api/v1/sync/status" in await script.text()
    status = await anonymous.request("GET", "/api/v1/sync/status", headers=with_cookie(session))
    assert status.status == 200 and (await status.json())["state"] == "local-only"


async def test_a_login_code_works_once(api: Api) -> None:
    link = await api.post("/api/v1/status/login-links")
    url = urlsplit(link["url"])
    target = f"{url.path}?{url.query}"
    first = await api.as_token(None).request("GET", target, allow_redirects=False)
    assert first.status == 303
    again = await api.as_token(None).request("GET", target, allow_redirects=False)
    assert again.status == 403 and "Set-Cookie" not in again.headers
    forged = await api.as_token(None).request("GET", "/status/login?code=x", allow_redirects=False)
    assert forged.status == 403


async def test_the_cookie_opens_nothing_else(api: Api) -> None:
    session = await login(api)
    anonymous = api.as_token(None)
    for path in ("/api/v1/folders", "/api/v1/store", "/api/v1/tokens", "/dav/"):
        resp = await anonymous.request("GET", path, headers=with_cookie(session))
        assert resp.status == 401, path
    resp = await anonymous.request(
        "POST", "/api/v1/status/login-links", headers=with_cookie(session)
    )
    await check_problem(resp, 401)


async def test_the_page_buttons_work_with_the_cookie(api: Api) -> None:
    session = await login(api)
    anonymous = api.as_token(None)
    # authenticated, but local-only: there is nothing to sync or switch
    resp = await anonymous.request("POST", "/api/v1/sync/run", headers=with_cookie(session))
    doc = await check_problem(resp, 409)
    assert doc["type"].endswith("no-upstream")
    resp = await anonymous.request(
        "POST",
        "/api/v1/sync/offline",
        json={"offline": True},
        headers=with_cookie(session),
    )
    await check_problem(resp, 409)


async def test_cross_origin_use_of_the_cookie_is_refused(api: Api) -> None:
    session = await login(api)
    resp = await api.as_token(None).request(
        "POST",
        "/api/v1/sync/run",
        headers=with_cookie(session, {"Origin": "https://evil.example"}),
    )
    await check_problem(resp, 403)


async def test_logout_ends_the_session(api: Api) -> None:
    session = await login(api)
    anonymous = api.as_token(None)
    resp = await anonymous.request(
        "POST", "/status/logout", headers=with_cookie(session), allow_redirects=False
    )
    assert resp.status == 303
    resp = await anonymous.request("GET", "/", headers=with_cookie(session))
    assert resp.status == 401


async def test_only_admin_tokens_make_login_links(api: Api, make_token: MakeToken) -> None:
    for scope in ("read", "write", "send"):
        resp = await api.as_token(await make_token(scope)).request(
            "POST", "/api/v1/status/login-links"
        )
        await check_problem(resp, 403)


async def test_bearer_token_opens_the_page_too(api: Api, make_token: MakeToken) -> None:
    resp = await api.as_token(await make_token("read")).request("GET", "/")
    assert resp.status == 200 and "<h1>kbridge</h1>" in await resp.text()


async def test_held_mailboxes_can_be_confirmed_from_the_page(
    store: Store, admin_secret: str, aiohttp_client: AiohttpClient
) -> None:
    service = ImapSyncService(store, ImapSettings("127.0.0.1", 1, "none", "u", "p"))
    service.last_report = {"held": ["Old <stuff>"]}  # as a run that found it emptied leaves it
    api = Api(await aiohttp_client(create_app(store, service)), admin_secret)
    session = await login(api)
    anonymous = api.as_token(None)
    page = await (await anonymous.request("GET", "/", headers=with_cookie(session))).text()
    assert "Emptied on the server" in page and "Old &lt;stuff&gt;" in page
    assert "data-mailboxes='[&quot;Old &lt;stuff&gt;&quot;]'" in page
    resp = await anonymous.request(
        "POST",
        "/api/v1/sync/confirm-empty",
        json={"mailboxes": ["Old <stuff>"]},
        headers=with_cookie(session),
    )
    assert resp.status == 202
    assert service.confirmed_empty == {"Old <stuff>"}
