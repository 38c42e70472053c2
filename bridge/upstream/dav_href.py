"""Hrefs of a DAV upstream in one canonical form, so that the same resource compares equal
whichever way a server spells it.

Servers answer with absolute URLs or absolute paths, with or without percent-encoding of
characters that need none (`%40` vs `@`), in upper- or lower-case hex. The adapters hand
out absolute paths whose segments are decoded and encoded again with one safe set.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urljoin, urlsplit

# RFC 3986 pchar without "%" and "/": what a path segment may hold unencoded.
_SAFE = "!$&'()*+,;=:@-._~"
# An absolute path already canonical: safe characters only, no empty, "." or ".." segment
# (what most servers send for every member, so the common case skips URL parsing).
_CANONICAL = re.compile(r"(?:/(?!\.\.?(?:/|$))[A-Za-z0-9!$&'()*+,;=:@\-._~]+)+/?|/")


def quote_segment(name: str) -> str:
    """One path segment (a resource or collection name) in canonical percent-encoding."""
    return quote(name, safe=_SAFE)


def normalize(href: str, base: str | None = None) -> str:
    """The canonical absolute path of `href` (an absolute URL, an absolute path, or a
    path relative to `base`). Raises ValueError for what is not a URL."""
    href = href.strip()
    if _CANONICAL.fullmatch(href):
        return href
    if base is not None:
        href = urljoin(base, href)
    path = urlsplit(href).path or "/"
    if not path.startswith("/"):
        path = "/" + path
    return "/".join(quote_segment(unquote(seg)) for seg in path.split("/"))


def member(collection_href: str, name: str) -> str:
    """The href of `name` inside a collection (`name` is one unencoded segment)."""
    base = collection_href if collection_href.endswith("/") else collection_href + "/"
    return base + quote_segment(name)


def as_collection(href: str) -> str:
    """`href` with the trailing slash collections have."""
    return href if href.endswith("/") else href + "/"


def last_segment(href: str) -> str:
    """The unencoded last segment of a path ("Work" for "/cal/Work/")."""
    return unquote(href.rstrip("/").rsplit("/", 1)[-1])
