"""A raw RFC 5322 message as a new item: the parsed properties, recipients and
attachments, with the raw bytes kept as the item's source."""

from __future__ import annotations

from bridge.formats.mime import parse_message
from bridge.model import classes, flags, tags
from bridge.store.items import NewItem

# Properties the store computes itself; values parsed from the message are dropped.
_COMPUTED = (tags.MESSAGE_SIZE, tags.HASATTACH, tags.DISPLAY_TO, tags.DISPLAY_CC, tags.DISPLAY_BCC)


def item_from_rfc822(raw: bytes, *, read: bool = False) -> NewItem:
    """Raises formats.mime.MimeError when `raw` is not a message at all."""
    parsed = parse_message(raw)
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
        attachments=[(a.props, a.data) for a in parsed.attachments],
        source=raw,
        source_type="message/rfc822",
    )
