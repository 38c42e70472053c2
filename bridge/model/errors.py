"""Errors raised by the model when a client supplies a bad property key or value."""

from __future__ import annotations


class PropKeyError(ValueError):
    """A property key (name, hex tag or named-property spelling) that cannot be used."""


class PropValueError(ValueError):
    """A JSON value that does not fit the property type."""
