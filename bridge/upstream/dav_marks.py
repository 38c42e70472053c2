"""Change marks of collections without asking for the CTag every run.

A server may compute a collection's CTag (and its sync token) by reading every member:
Radicale does, which makes "has anything changed?" cost about as much as listing the
collection. Its DAV:getlastmodified costs a stat per member. So after one full listing (the
CTags), a run asks the home sets for getlastmodified only; a collection whose
last-modified is the one seen beside its CTag keeps that CTag, any other is asked for its
CTag alone.

When is the same last-modified proof of no change? It has one-second resolution, so only
when the server's clock (its Date header) was at least SETTLE seconds past it when the CTag
was read: a later change then bears a later second. On top of that:
- a full listing every `full_every` seconds (and at every new session) still reads the
  CTags, and if one changed under an unchanged, settled last-modified, the server's
  last-modified does not follow its members: the probe is off for this session;
- a collection that names no last-modified, or one in another format, is always asked.

A first sync (a cache that holds nothing of the account) reads no CTags at all: its pull
fetches everything anyway, and a settled last-modified, read before the data, is the
collection's change mark (`Collection.modified`) until the next full listing. That listing
then reads the CTag, and since no CTag was seen beside that last-modified, the sync lists
the collection once to check it (the check a changed CTag leads to).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

log = logging.getLogger(__name__)

SETTLE = 2.0  # s between a last-modified and the server's clock for it to be trusted


@dataclass(frozen=True, slots=True)
class Seen:
    """A collection's last-modified as read together with its CTag and sync token."""

    modified: str
    ctag: str | None
    sync_token: str | None
    settled: bool


def _seconds(http_date: str | None) -> float | None:
    if not http_date:
        return None
    try:
        return parsedate_to_datetime(http_date).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def settled(modified: str | None, server_date: str | None) -> bool:
    """A change after `server_date` would show as a last-modified other than `modified`."""
    m, d = _seconds(modified), _seconds(server_date)
    return m is not None and d is not None and d - m >= SETTLE


class ChangeMarks:
    """What the adapter saw of each collection (kept for one session)."""

    def __init__(
        self,
        enabled: bool,
        full_every: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.full_every = full_every
        self.clock = clock
        self.seen: dict[str, Seen] = {}
        self._full_at: float | None = None

    def probing(self) -> bool:
        """True: list the home sets for last-modified only (a full listing is not due)."""
        return (
            self.enabled
            and self._full_at is not None
            and self.clock() - self._full_at < self.full_every
        )

    def full_listing_done(self) -> None:
        self._full_at = self.clock()

    def unchanged(self, href: str, modified: str | None) -> Seen | None:
        """The marks to reuse for a collection listed with `modified`, if it has not changed."""
        seen = self.seen.get(href)
        if seen is None or modified is None or not seen.settled or modified != seen.modified:
            return None
        return seen

    def record(
        self,
        href: str,
        modified: str | None,
        server_date: str | None,
        ctag: str | None,
        sync_token: str | None,
    ) -> None:
        """Marks read together (one answer): remember them; and check the server."""
        before = self.seen.pop(href, None)
        if modified is None or ctag is None:
            return
        if (
            self.enabled
            and before is not None
            and before.settled
            and before.modified == modified
            and before.ctag is not None  # a first sync's mark has none to compare
            and before.ctag != ctag
        ):
            log.warning(
                "%s changed (CTag) but its last-modified did not; asking for CTags every run",
                href,
            )
            self.enabled = False
        self.seen[href] = Seen(modified, ctag, sync_token, settled(modified, server_date))

    def record_first(self, href: str, modified: str, server_date: str | None) -> None:
        """A first sync's mark: a collection's last-modified, listed without its CTag."""
        self.seen[href] = Seen(modified, None, None, settled(modified, server_date))
