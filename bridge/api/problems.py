"""Errors as `application/problem+json` (RFC 9457), with stable `type` URIs.

Every handler raises; one middleware turns store, model and HTTP errors into problems, so
no error path can leak a stack trace or half-written state."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bridge.api.propjson import PropDocError
from bridge.model.errors import PropKeyError, PropValueError
from bridge.store import errors as store_errors

log = logging.getLogger(__name__)

TYPE_BASE = "urn:kbridge:problem:"
CONTENT_TYPE = "application/problem+json"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class Problem(Exception):
    """An error response. `slug` becomes the stable type `urn:kbridge:problem:<slug>`."""

    def __init__(
        self, status: int, slug: str, detail: str, *, title: str | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.title = title or slug.replace("-", " ").capitalize()
        self.extra = extra
        self.headers: dict[str, str] = {}

    def response(self, instance: str | None = None) -> web.Response:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return web.Response(
            status=self.status,
            # ASCII with escapes: a detail may quote client input that is not valid Unicode
            # (a lone surrogate from a header), which must not fail the error response.
            text=json.dumps(body),
            content_type=CONTENT_TYPE,
            headers=self.headers,
        )


def bad_request(detail: str, **extra: Any) -> Problem:
    return Problem(400, "bad-request", detail, **extra)


def _from_exception(exc: BaseException) -> Problem | None:
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, PropDocError):
        return Problem(400, "invalid-property", str(exc), property=exc.key)
    if isinstance(exc, PropKeyError | PropValueError):
        return Problem(400, "invalid-property", str(exc))
    if isinstance(exc, store_errors.NotFound):
        return Problem(404, "not-found", f"{exc}; list the parent to find valid ids")
    if isinstance(exc, store_errors.Conflict):
        return Problem(409, "conflict", str(exc))
    if isinstance(exc, store_errors.Forbidden):
        return Problem(403, "not-allowed", str(exc))
    if isinstance(exc, store_errors.InvalidValue):
        return Problem(400, "invalid-value", str(exc))
    if isinstance(exc, store_errors.StaleState):
        return Problem(410, "stale-state", str(exc))
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return Problem(
            413,
            "too-large",
            "the request body is larger than this server accepts "
            "(security.max_request_bytes / max_json_bytes)",
        )
    if isinstance(exc, web.HTTPMethodNotAllowed):
        p = Problem(
            405, "method-not-allowed", f"use one of: {', '.join(sorted(exc.allowed_methods))}"
        )
        p.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return p
    if isinstance(exc, web.HTTPNotFound):
        return Problem(404, "no-such-route", "no such resource; see /api/v1/openapi.json")
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        return Problem(exc.status, f"http-{exc.status}", exc.reason)
    return None


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:
        problem = _from_exception(exc)
        if problem is None:
            if isinstance(exc, web.HTTPException):
                raise
            log.exception("internal error on %s %s", request.method, request.path)
            problem = Problem(
                500, "internal-error", "the bridge failed on this request; its log has the details"
            )
        return problem.response(request.path)


async def read_json(request: web.Request, limit: int) -> Any:
    """The request body as JSON, bounded; every failure is a 4xx problem."""
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "too-large", f"JSON bodies are limited to {limit} bytes")
    ctype = request.content_type
    if ctype not in ("application/json", "application/merge-patch+json"):
        raise Problem(
            415,
            "unsupported-media-type",
            f"send Content-Type: application/json (got {ctype or 'none'})",
        )
    raw = await read_body(request, limit, "JSON bodies")
    try:
        text = raw.decode("utf-8-sig")
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise bad_request("JSON nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text) and not _is_unicode(doc):
        raise bad_request(
            "malformed JSON: a \\u escape gives a lone surrogate (\\uD800-\\uDFFF not in a pair)"
        )
    return doc


def _is_unicode(doc: Any) -> bool:
    """Whether every string in a decoded document is valid Unicode (no lone surrogates)."""
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


async def read_body(request: web.Request, limit: int, what: str) -> bytes:
    """The whole request body; 413 as soon as it is larger than `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "too-large", f"{what} are limited to {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "too-large", f"{what} are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
