"""The neutral result of reading an iCalendar object or a vCard: MAPI property values in the
vocabulary of `bridge.formats.mime` (str, int, bool, float, aware UTC datetime, bytes,
list[str], list[bytes]), ready for a store module to turn into an item."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.model.named import NamedProp

MAX_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class ParsedItem:
    """Tagged and named properties, recipient rows and attachments of one item."""

    message_class: str
    props: dict[int, Any] = field(default_factory=dict)
    named: dict[NamedProp, Any] = field(default_factory=dict)
    recipients: list[dict[int, Any]] = field(default_factory=list)
    attachments: list[tuple[dict[int, Any], bytes]] = field(default_factory=list)
    uid: str | None = None


def decode_text(data: bytes, what: str, error: type[ValueError]) -> str:
    """UTF-8 (with or without BOM); other 8-bit text is read as Windows-1252, then Latin-1,
    so nothing is refused for its charset alone (the raw bytes are kept anyway)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("data must be bytes")
    if len(data) > MAX_BYTES:
        raise error(f"{what} is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    raw = bytes(data)
    if b"\x00" in raw:
        raise error(f"{what} must be text; it contains NUL bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
