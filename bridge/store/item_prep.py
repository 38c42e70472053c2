"""What a new item's rows hold besides their ids: its property document, the hot columns,
its conversation id, its recipient and attachment rows. `Items.create_in` computes it for
each item, unless the item brings it (`NewItem.prepared`): a pull prepares its messages in
the parsing worker, with `prepare`, so that the store's transaction only numbers the rows.

Only an item whose properties need nothing of a store can be prepared away from it: one
without named properties (their tags are the store's own) and not about to keep its texts
in its document (`texts_in_source` with its source in SQLite: the store decides that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridge.model import tags
from bridge.store import conversation
from bridge.store import props as P
from bridge.store.blobs import SourcePart
from bridge.store.errors import InvalidValue
from bridge.store.item_rows import attachment_row, int_or_none, recipient_row, sender_name_prop

if TYPE_CHECKING:
    from bridge.store.item_base import NewItem

# The hot columns, in the order of the items table's insert and update.
HOT_COLUMNS = (
    "subject",
    "sender_name",
    "sender_email",
    "received",
    "sent",
    "importance",
    "sensitivity",
    "start_time",
    "end_time",
    "due_time",
    "flags",
)
FIRST_NAMED_ID = 0x8000  # property ids from here on are named: their tags are per store


@dataclass(frozen=True, slots=True)
class NamedTags:
    """The store's tags of the named properties a hot column or the categories mirror
    (None: not known to the store, so no item has them)."""

    start: int | None = None
    end: int | None = None
    due: int | None = None
    keywords: int | None = None


NO_NAMED = NamedTags()


@dataclass(slots=True)  # not frozen: a frozen one unpickles field by field, in Python
class Prepared:
    """A new item's rows, less their ids, change numbers and times."""

    doc: bytes  # the property document, as UTF-8 JSON
    hot: tuple[Any, ...]  # the values of HOT_COLUMNS
    has_attach: bool
    attach_size: int  # the size of its attachments' content
    conversation_id: bytes
    sender_name_prop: str | None
    categories: list[str]
    recipients: list[tuple[Any, ...]]  # recipient rows less the item id
    # attachment rows less the item id and the blob id (the 1st and the 9th column)
    attachments: list[tuple[Any, ...]]


def hot_columns(props: Mapping[int, Any], has_attach: bool, named: NamedTags) -> tuple[Any, ...]:
    """The values of HOT_COLUMNS for an item's properties."""
    sender_name, sender_email = P.sender_columns(props)
    subject = props.get(tags.SUBJECT)
    return (
        subject if isinstance(subject, str) else None,
        sender_name,
        sender_email,
        P.filetime(props.get(tags.MESSAGE_DELIVERY_TIME)),
        P.filetime(props.get(tags.CLIENT_SUBMIT_TIME)),
        int_or_none(props.get(tags.IMPORTANCE)),
        int_or_none(props.get(tags.SENSITIVITY)),
        P.filetime(props.get(named.start or -1) or props.get(tags.START_DATE)),
        P.filetime(props.get(named.end or -1) or props.get(tags.END_DATE)),
        P.filetime(props.get(named.due or -1)),
        P.message_flags(props, has_attach),
    )


def categories_of(props: Mapping[int, Any], named: NamedTags) -> list[str]:
    value = props.get(named.keywords or -1)
    return [c for c in value if isinstance(c, str)] if isinstance(value, list) else []


def rows_of(item: NewItem, props: dict[int, Any], named: NamedTags) -> Prepared:
    """The rows of `item` whose properties, named ones resolved, are `props` (which this
    completes in place with the computed ones the document keeps)."""
    props[tags.MESSAGE_CLASS] = item.message_class
    props.update(P.display_lists(item.recipients))
    attachments = []
    attach_size = 0
    for num, (aprops, data) in enumerate(item.attachments):
        size = data.size if isinstance(data, SourcePart) else len(data)
        row = attachment_row(0, num, aprops, 0, size)
        attachments.append(row[1:8] + row[9:])
        attach_size += size
    encoded = P.encode(props)
    has_attach = any(not a[0].get(tags.ATTACHMENT_HIDDEN) for a in item.attachments)
    return Prepared(
        doc=P.dumps_utf8(encoded),
        hot=hot_columns(props, has_attach, named),
        has_attach=has_attach,
        attach_size=attach_size,
        conversation_id=conversation.conversation_id(props),
        sender_name_prop=sender_name_prop(encoded),
        categories=categories_of(props, named),
        recipients=[recipient_row(0, n, r)[1:] for n, r in enumerate(item.recipients)],
        attachments=attachments,
    )


def prepare(item: NewItem) -> Prepared | None:
    """The rows of `item`, computed without a store (None when they need one: named
    properties, or invalid ones, which the store then refuses with its usual error)."""
    if item.named or any(tag >> 16 >= FIRST_NAMED_ID for tag in item.props):
        return None
    try:
        P.check_writable(item.props, P.COMPUTED_ITEM)
        return rows_of(item, dict(item.props), NO_NAMED)
    except (InvalidValue, ValueError, TypeError):
        return None
