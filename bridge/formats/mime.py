"""RFC 5322 / MIME import and export of messages.

`parse_message` turns the bytes of a message into tagged and named properties, recipient rows
and attachments; `build_message` does the reverse. Both speak the property vocabulary of
`bridge.model.tags`: str for PT_UNICODE, int for PT_LONG, bool for PT_BOOLEAN, aware UTC
datetime for PT_SYSTIME, bytes for PT_BINARY and list[str] for PT_MV_UNICODE.
"""

from __future__ import annotations

from bridge.formats.mime_build import build_message
from bridge.formats.mime_parse import (
    KEYWORDS,
    MimeError,
    ParsedAttachment,
    ParsedMessage,
    message_texts,
    parse_message,
)

__all__ = [
    "KEYWORDS",
    "MimeError",
    "ParsedAttachment",
    "ParsedMessage",
    "build_message",
    "message_texts",
    "parse_message",
]
