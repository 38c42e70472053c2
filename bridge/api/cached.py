"""Content a client asks for that is not in the cache (an item stored with its headers
only): fetched through the sync service, or answered with a 503 problem of the stable type
`urn:kbridge:problem:not-available-offline` and a Retry-After header."""

from __future__ import annotations

from aiohttp import web

from bridge.api.problems import Problem
from bridge.model import tags
from bridge.sync.on_demand import NotAvailableOffline

NOT_AVAILABLE = "not-available-offline"
# Properties that come from a message's body: asking for one fetches the whole message.
BODY_TAGS = frozenset({tags.BODY, tags.HTML, tags.RTF_COMPRESSED, tags.NATIVE_BODY_INFO})


async def ensure_cached(request: web.Request, item_id: int) -> None:
    """Make the whole message of the item available, or raise the 503 problem."""
    from bridge.api.system import SYNC_KEY  # system imports the item routes

    try:
        await request.app[SYNC_KEY].ensure_content(item_id)
    except NotAvailableOffline as exc:
        problem = Problem(503, NOT_AVAILABLE, str(exc), title="Not available offline")
        problem.headers["Retry-After"] = str(exc.retry_after)
        raise problem from None


def wants_body(columns: list[int] | None) -> bool:
    """Whether a request for these columns asks for body properties (None: all columns,
    which serves the cached properties without fetching)."""
    return columns is not None and any(c in BODY_TAGS for c in columns)
