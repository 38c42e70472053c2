"""The HTTP side of the DAV adapter: one aiohttp session with Basic auth, a timeout on every
request, redirects followed by hand (a DAV method must keep its method and body), bodies
read up to a bound, and transport failures turned into the upstream error classes."""

from __future__ import annotations

import asyncio
import base64
import io
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from multidict import CIMultiDictProxy

from bridge.upstream.base import AuthFailed, ConnectFailed, UpstreamError
from bridge.upstream.dav_base import DavSettings
from bridge.upstream.tls import client_context, untrusted

MAX_REDIRECTS = 5
XML_TYPE = "application/xml; charset=utf-8"


class ResponseTooLarge(UpstreamError):
    """The answer is larger than `max_response_bytes`."""


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str  # after redirects

    def excerpt(self) -> str:
        """A short, printable piece of the body for error messages."""
        text = self.body[:300].decode("utf-8", "replace")
        text = re.sub(r"<[^>]{0,200}>", " ", text)
        text = re.sub(r"[\x00-\x1f\x7f]+|\s+", " ", text).strip()
        return text[:160]


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port)


class DavHttp:
    def __init__(self, settings: DavSettings) -> None:
        self.settings = settings
        url = settings.url if "://" in settings.url else "http://" + settings.url
        parts = urlsplit(url)
        self.problem: str | None = None  # raised by every request
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problem = f"not an http(s) URL: {settings.url!r}"
        elif ":" in settings.username:
            self.problem = "a user name for Basic authentication cannot contain ':'"
        self.base = url
        creds = f"{settings.username}:{settings.password}".encode()
        self._auth = "Basic " + base64.b64encode(creds).decode("ascii")
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            t = self.settings.timeout
            connector = aiohttp.TCPConnector(
                limit=max(2, self.settings.max_in_flight + 2),
                ssl=client_context(self.settings.verify_tls, self.settings.ca_file),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=max(t * 5, t), connect=t, sock_connect=t, sock_read=t
                ),
                auto_decompress=True,
            )
            # aiohttp repeats a PUT or DELETE once when the connection drops; a conditional
            # write repeated after the server applied it would fail with a false 412, so a
            # dropped connection is reported (ConnectFailed) and the sync engine decides.
            self._session._retry_connection = False
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def rebase(self, url: str) -> None:
        """Discovery ended on another origin: requests go there from now on."""
        self.base = url

    def url(self, href: str) -> str:
        return urljoin(self.base, href)

    async def request(
        self,
        method: str,
        href: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        cross_origin: bool = False,
        limit: int | None = None,
    ) -> Answer:
        """One request; redirects are followed for the same origin (any origin with
        `cross_origin`, for discovery). Raises ConnectFailed on a network failure or a
        timeout, AuthFailed on 401, ResponseTooLarge over the limit."""
        if self.problem is not None:
            raise UpstreamError(self.problem)
        url = self.url(href)
        hdrs = dict(headers or {})
        hdrs["Authorization"] = self._auth
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = XML_TYPE
        cap = limit if limit is not None else self.settings.max_response_bytes
        for _ in range(MAX_REDIRECTS + 1):
            answer = await self._once(method, url, body, hdrs, cap)
            if answer.status in (301, 302, 303, 307, 308) and "Location" in answer.headers:
                try:
                    target = urljoin(url, answer.headers["Location"])
                    origin(target)
                except ValueError:
                    raise UpstreamError(f"{method} {url}: redirected to an invalid URL") from None
                if origin(target) != origin(url) and not cross_origin:
                    raise UpstreamError(
                        f"{method} {url}: redirected to another server ({target}), refused"
                    )
                url = target
                continue
            if answer.status == 401:
                raise AuthFailed(f"{method} {url}: 401 Unauthorized (check user and password)")
            return answer
        raise UpstreamError(f"{method} {self.url(href)}: more than {MAX_REDIRECTS} redirects")

    async def _once(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], cap: int
    ) -> Answer:
        # a large body goes as a stream: aiohttp would copy raw bytes on the event loop
        data: bytes | io.BytesIO | None = (
            io.BytesIO(body) if body is not None and len(body) > 65536 else body
        )
        try:
            async with self.session().request(
                method, url, data=data, headers=headers, allow_redirects=False
            ) as resp:
                length = resp.content_length
                if length is not None and length > cap:
                    raise ResponseTooLarge(
                        f"{method} {url}: the answer ({length} bytes) is over the limit of "
                        f"{cap} bytes"
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > cap:
                        resp.close()
                        raise ResponseTooLarge(
                            f"{method} {url}: the answer is over the limit of {cap} bytes"
                        )
                    chunks.append(chunk)
                return Answer(resp.status, resp.headers, b"".join(chunks), str(resp.url))
        except UpstreamError:
            raise
        except TimeoutError:
            raise ConnectFailed(
                f"{method} {url}: no answer within {self.settings.timeout:g} s"
            ) from None
        except aiohttp.ClientSSLError as e:
            raise ConnectFailed(f"{method} {url}: {untrusted(e) or f'TLS failed ({e})'}") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
            raise ConnectFailed(
                f"{method} {url}: connection failed ({e or type(e).__name__})"
            ) from None
        except (aiohttp.ClientError, ValueError, asyncio.IncompleteReadError) as e:
            raise UpstreamError(f"{method} {url}: bad answer ({e or type(e).__name__})") from None
        except OSError as e:
            raise ConnectFailed(f"{method} {url}: {e}") from None
