"""A raw RFC 5322 message as a new item: the parsed properties, recipients and
attachments, with the raw bytes kept as the item's source."""

from __future__ import annotations

from bridge.formats.mime import parse_message
from bridge.formats.mime_parse import ParsedAttachment
from bridge.formats.mime_parts import base64_body
from bridge.model import classes, flags, tags
from bridge.store.blobs import SourcePart
from bridge.store.items import NewItem

PART_MIN = 4096  # smaller attachment content is stored as bytes, not read from the source
# Properties the store computes itself; values parsed from the message are dropped.
_COMPUTED = (tags.MESSAGE_SIZE, tags.HASATTACH, tags.DISPLAY_TO, tags.DISPLAY_CC, tags.DISPLAY_BCC)


def item_from_rfc822(
    raw: bytes, *, read: bool = False, parts: bool = False, texts: bool = True
) -> NewItem:
    """Raises formats.mime.MimeError when `raw` is not a message at all. With `parts`, an
    attachment of at least PART_MIN bytes whose content is clean base64 text of the message
    is not decoded: it is given as that part of the source (`blobs.SourcePart`). Without
    `texts`, the message's header block and bodies are not among the item's properties:
    the store reads them from the source (`NewItem.texts_in_source`, `store.texts`)."""
    parsed = parse_message(raw, undecoded_min=PART_MIN if parts else None, texts=texts)
    message_class = str(parsed.props.pop(tags.MESSAGE_CLASS, classes.IPM_NOTE))
    mflags = parsed.props.get(tags.MESSAGE_FLAGS, 0)
    parsed.props[tags.MESSAGE_FLAGS] = (mflags if isinstance(mflags, int) else 0) | (
        flags.MSGFLAG_READ if read else 0
    )
    for computed in _COMPUTED:
        parsed.props.pop(computed, None)
    return NewItem(
        message_class=message_class,
        props=parsed.props,
        named=parsed.named,
        recipients=parsed.recipients,
        attachments=[(a.props, _content(raw, a) if parts else a.data) for a in parsed.attachments],
        source=raw,
        source_type="message/rfc822",
        texts_in_source=not texts,
    )


def _content(raw: bytes, attachment: ParsedAttachment) -> bytes | SourcePart:
    encoded, size = attachment.encoded, attachment.undecoded_size
    if encoded is None or size is None:
        return attachment.data
    start = attachment.encoded_at
    if start < 0 or not raw.startswith(encoded, start):
        start = raw.find(encoded)  # any place of the same text decodes to the same content
    if start < 0:
        return base64_body(encoded)
    return SourcePart(start, start + len(encoded), size)
