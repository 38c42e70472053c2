"""vCard (3.0 and 4.0; 2.1 read leniently) ↔ contact and distribution-list properties.

`parse_vcard` reads a card into a ParsedItem (IPM.Contact, or IPM.DistList for a group:
vCard 4 ``KIND:group`` + ``MEMBER``, Apple ``X-ADDRESSBOOKSERVER-KIND:group`` +
``X-ADDRESSBOOKSERVER-MEMBER``). `render_vcard` writes a new card for an item made locally;
`update_vcard` rewrites only the lines of the fields whose values changed, so unknown
properties, parameters, groups and the card's VERSION survive.

New cards are vCard 3.0: every CardDAV server and client reads it (Apple Contacts, Kerio,
Radicale, Nextcloud, Outlook's importer), while 4.0 is still refused or down-converted by
several of them; an existing 4.0 card stays 4.0 when updated.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from bridge.formats import vcard_fields as F
from bridge.formats.parsed import ParsedItem, decode_text
from bridge.formats.vcard_lines import Card, VcardError, format_line, parse_card
from bridge.formats.vcard_write import field_lines
from bridge.model import classes
from bridge.model.named import NamedProp

__all__ = ["VcardError", "parse_vcard", "render_vcard", "update_vcard"]

PRODID = "-//kbridge//EN"


def load_card(data: bytes) -> tuple[Card, str]:
    text = decode_text(data, "a vCard", VcardError)
    if not text.strip():
        raise VcardError("not a vCard: the body is empty")
    return parse_card(text), text


def parse_vcard(data: bytes) -> ParsedItem:
    """The MAPI view of a vCard; raises VcardError."""
    card, _ = load_card(data)
    return _item_of(card)


def _item_of(card: Card) -> ParsedItem:
    group = F.is_group(card)
    item = ParsedItem(message_class=classes.IPM_DISTLIST if group else classes.IPM_CONTACT)
    fields = F.read_fields(card)
    F.fields_to_item(fields, item, group=group)
    if "photo" in fields:
        item.attachments.append(F.photo_attachment(fields["photo"], F.photo_type(card)))
    return item


def render_vcard(
    message_class: str,
    props: Mapping[int, Any],
    named: Mapping[NamedProp, Any],
    attachments: Sequence[tuple[Mapping[int, Any], bytes]] = (),
    *,
    uid: str | None = None,
) -> bytes:
    """A new vCard 3.0 for an item that has no raw source."""
    fields = F.fields_from_props(message_class, props, named, attachments)
    uid = fields.pop("uid", None) or uid or str(uuid.uuid4())
    nl = "\r\n"
    out = ["BEGIN:VCARD" + nl, "VERSION:3.0" + nl, format_line("PRODID", PRODID, [], nl)]
    out.append(format_line("UID", uid, [], nl))
    group = message_class.startswith(classes.IPM_DISTLIST)
    if group:
        out.append(format_line("X-ADDRESSBOOKSERVER-KIND", "group", [], nl))
    fields.setdefault("fn", fields.get("fn") or "")
    if "n" not in fields:
        out.append("N:;;;;" + nl if not group else "")
    if not fields["fn"]:
        out.append("FN:" + nl)
    for key, value in fields.items():
        out.extend(field_lines(key, value, "3.0", [], "apple", nl))
    out.append("END:VCARD" + nl)
    return "".join(out).encode("utf-8")


def update_vcard(
    raw: bytes,
    message_class: str,
    props: Mapping[int, Any],
    named: Mapping[NamedProp, Any],
    attachments: Sequence[tuple[Mapping[int, Any], bytes]] = (),
) -> bytes:
    """`raw` with the lines of changed fields rewritten; `raw` itself when nothing changed."""
    card, text = load_card(raw)
    # Both sides through the same mapping, so that derived values compare equal.
    was = _item_of(card)
    old = F.fields_from_props(was.message_class, was.props, was.named, was.attachments)
    new = F.fields_from_props(message_class, props, named, attachments)
    new.pop("uid", None)
    old.pop("uid", None)
    changed = [k for k in set(old) | set(new) if old.get(k) != new.get(k)]
    if not changed:
        return raw
    where = F.classify(card)
    group_style = "v4" if card.first("KIND") is not None else "apple"
    if card.first("KIND") is None and card.first("X-ADDRESSBOOKSERVER-KIND") is None:
        group_style = "v4" if card.version.startswith("4") else "apple"
    replaced: dict[int, list[str]] = {}
    dropped: set[int] = set()
    appended: list[str] = []
    for key in sorted(changed):
        idx = where.get(key, [])
        lines = field_lines(
            key, new.get(key), card.version, [card.lines[i] for i in idx], group_style, card.newline
        )
        if idx:
            replaced[idx[0]] = lines
            dropped.update(idx[1:])
        else:
            appended.extend(lines)
    out = ["BEGIN:VCARD" + card.newline]
    for i, line in enumerate(card.lines):
        if i in replaced:
            out.extend(replaced[i])
        elif i not in dropped:
            out.append(line.raw)
    out.extend(appended)
    out.append("END:VCARD" + card.newline)
    head = text[: len(text) - len(text.lstrip())]
    return (head + "".join(out)).encode("utf-8")
