"""Store-layer exceptions; the API layer maps them to problem+json."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class StoreOpenError(StoreError):
    """The database file cannot be used (corrupt, foreign, too new, locked)."""


class NotFound(StoreError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident} does not exist")
        self.kind = kind
        self.ident = ident


class Conflict(StoreError):
    """The request contradicts the current state (name taken, folder not empty, ...)."""


class Forbidden(StoreError):
    """The operation is never allowed on this object (e.g. deleting the Inbox)."""


class InvalidValue(StoreError):
    """A property key or value the store cannot accept."""


class StaleState(StoreError):
    """A change-feed state that belongs to another store or is malformed."""
