"""vCard properties ↔ contact fields ↔ MAPI properties.

A card is read into a small dict of *fields* (``"n"``, ``"email1"``, ``"tel:home"``,
``"adr:work"``, ``"photo"``, …) and so are an item's properties; the two dicts have the same
shape, so updating a card rewrites exactly the lines of the fields whose values differ.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from bridge.formats.parsed import ParsedItem
from bridge.formats.vcard_lines import (
    Card,
    binary_value,
    listed,
    structured,
    text_value,
)
from bridge.model import classes, flags, tags
from bridge.model.named import PS_PUBLIC_STRINGS, NamedProp, PSETID_Address

Fields = dict[str, Any]


def _addr(lid: int) -> NamedProp:
    return NamedProp(PSETID_Address, lid=lid)


KEYWORDS = NamedProp(PS_PUBLIC_STRINGS, name="Keywords")
VCARD_UID = NamedProp(PS_PUBLIC_STRINGS, name="urn:kbridge:vcard:uid")
FILE_UNDER = _addr(0x8005)
DL_NAME = _addr(0x8053)
DL_MEMBERS = _addr(0x8055)
DL_ONE_OFF = _addr(0x8054)
HTML = _addr(0x802B)
# (address, display name, address type, original display name) per e-mail slot
EMAIL_SLOTS = (
    (_addr(0x8083), _addr(0x8080), _addr(0x8082), _addr(0x8084)),
    (_addr(0x8093), _addr(0x8090), _addr(0x8092), _addr(0x8094)),
    (_addr(0x80A3), _addr(0x80A0), _addr(0x80A2), _addr(0x80A4)),
)
WORK_ADDRESS = (_addr(0x8045), _addr(0x8046), _addr(0x8047), _addr(0x8048), _addr(0x8049))
HOME_ADDRESS = (
    tags.HOME_ADDRESS_STREET,
    tags.HOME_ADDRESS_CITY,
    tags.HOME_ADDRESS_STATE_OR_PROVINCE,
    tags.HOME_ADDRESS_POSTAL_CODE,
    tags.HOME_ADDRESS_COUNTRY,
)
OTHER_ADDRESS = (
    tags.OTHER_ADDRESS_STREET,
    tags.OTHER_ADDRESS_CITY,
    tags.OTHER_ADDRESS_STATE_OR_PROVINCE,
    tags.OTHER_ADDRESS_POSTAL_CODE,
    tags.OTHER_ADDRESS_COUNTRY,
)
BUSINESS_ADDRESS = (
    tags.STREET_ADDRESS,
    tags.LOCALITY,
    tags.STATE_OR_PROVINCE,
    tags.POSTAL_CODE,
    tags.COUNTRY,
)
# TEL kinds in the order they are claimed: (field key, tag, TYPE values written)
TEL_KINDS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("tel:mobile", tags.MOBILE_TELEPHONE_NUMBER, ("cell", "voice")),
    ("tel:pager", tags.PAGER_TELEPHONE_NUMBER, ("pager",)),
    ("tel:car", tags.CAR_TELEPHONE_NUMBER, ("car", "voice")),
    ("tel:home_fax", tags.HOME_FAX_NUMBER, ("home", "fax")),
    ("tel:business_fax", tags.BUSINESS_FAX_NUMBER, ("work", "fax")),
    ("tel:primary_fax", tags.PRIMARY_FAX_NUMBER, ("fax",)),
    ("tel:business", tags.BUSINESS_TELEPHONE_NUMBER, ("work", "voice")),
    ("tel:business2", tags.BUSINESS2_TELEPHONE_NUMBER, ("work", "voice")),
    ("tel:home", tags.HOME_TELEPHONE_NUMBER, ("home", "voice")),
    ("tel:home2", tags.HOME2_TELEPHONE_NUMBER, ("home", "voice")),
    ("tel:primary", tags.PRIMARY_TELEPHONE_NUMBER, ("pref", "voice")),
    ("tel:other", tags.OTHER_TELEPHONE_NUMBER, ("voice",)),
)
_TEL_TAG = {key: tag for key, tag, _ in TEL_KINDS}
TEL_TYPES = {key: types for key, _, types in TEL_KINDS}
ADDRESSES = {"adr:work": BUSINESS_ADDRESS, "adr:home": HOME_ADDRESS, "adr:other": OTHER_ADDRESS}
PHOTO_NAME = "ContactPicture"
NO_YEAR = 1604  # Outlook's year for a date without one
ONE_OFF_UID = bytes.fromhex("812B1FA4BEA310199D6E00DD010F5402")
SIMPLE_FIELDS = {
    "fn": ("FN", tags.DISPLAY_NAME),
    "nickname": ("NICKNAME", tags.NICKNAME),
    "title": ("TITLE", tags.TITLE),
    "role": ("ROLE", tags.PROFESSION),
    "note": ("NOTE", tags.BODY),
}


def is_group(card: Card) -> bool:
    kind = card.first("KIND") or card.first("X-ADDRESSBOOKSERVER-KIND")
    return kind is not None and kind.value.strip().lower() == "group"


def _tel_kind(types: set[str], taken: set[str]) -> str | None:
    def free(*keys: str) -> str | None:
        return next((k for k in keys if k not in taken), None)

    if "cell" in types or "mobile" in types or "iphone" in types:
        return free("tel:mobile", "tel:other")
    if "pager" in types:
        return free("tel:pager", "tel:other")
    if "car" in types:
        return free("tel:car", "tel:other")
    if "fax" in types:
        if "home" in types:
            return free("tel:home_fax", "tel:primary_fax")
        if "work" in types:
            return free("tel:business_fax", "tel:primary_fax")
        return free("tel:primary_fax", "tel:business_fax")
    if "work" in types:
        return free("tel:business", "tel:business2", "tel:other")
    if "home" in types:
        return free("tel:home", "tel:home2", "tel:other")
    if "main" in types or "pref" in types:
        return free("tel:primary", "tel:other")
    return free("tel:other", "tel:primary")


def _adr_kind(types: set[str]) -> str:
    if "work" in types:
        return "adr:work"
    if "home" in types:
        return "adr:home"
    return "adr:other"


def classify(card: Card) -> dict[str, list[int]]:
    """Field key → indices of the card lines that carry it (first match claims a field)."""
    out: dict[str, list[int]] = {}
    emails = 0
    simple_names = {name: key for key, (name, _) in SIMPLE_FIELDS.items()}
    for i, line in enumerate(card.lines):
        key: str | None = None
        if line.name in simple_names:
            key = simple_names[line.name]
        elif line.name in ("N", "ORG", "BDAY", "CATEGORIES", "PHOTO"):
            key = line.name.lower()
        elif line.name in ("ANNIVERSARY", "X-ANNIVERSARY", "X-MS-ANNIVERSARY"):
            key = "anniversary"
        elif line.name in ("MEMBER", "X-ADDRESSBOOKSERVER-MEMBER"):
            out.setdefault("members", []).append(i)
            continue
        elif line.name == "EMAIL":
            emails += 1
            key = f"email{emails}" if emails <= len(EMAIL_SLOTS) else None
        elif line.name == "TEL":
            key = _tel_kind(line.types(), set(out))
        elif line.name == "ADR":
            key = _adr_kind(line.types())
        elif line.name == "URL":
            key = "url:home" if "home" in line.types() else "url:work"
        if key is not None and key not in out:
            out[key] = [i]
    return out


def _date(text: str) -> dt.datetime | None:
    text = text.strip()
    try:
        if text.startswith("--"):
            digits = text[2:].replace("-", "")[:4]
            return dt.datetime(NO_YEAR, int(digits[:2]), int(digits[2:4]), tzinfo=dt.UTC)
        digits = text.replace("-", "")[:8]
        if len(digits) == 8 and digits.isdigit():
            return dt.datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:8]), tzinfo=dt.UTC)
    except ValueError:
        return None
    return None


def _pad(values: list[str], size: int) -> tuple[str, ...]:
    return tuple((values + [""] * size)[:size])


def read_fields(card: Card) -> Fields:
    """The field values a card carries."""
    out: Fields = {}
    for key, idx in classify(card).items():
        lines = [card.lines[i] for i in idx]
        line = lines[0]
        value: Any
        if key in SIMPLE_FIELDS or key.startswith(("url:", "tel:", "email")):
            value = (
                text_value(line).strip() if key.startswith(("tel:", "email")) else text_value(line)
            )
            if key.startswith("tel:") and value.lower().startswith("tel:"):
                value = value[4:]
            elif key.startswith("email") and value.lower().startswith("mailto:"):
                value = value[7:]
        elif key == "n":
            value = _pad(structured(line), 5)
        elif key == "org":
            value = _pad(structured(line), 2)
        elif key.startswith("adr:"):
            parts = _pad(structured(line), 7)
            value = parts[2:]
        elif key in ("bday", "anniversary"):
            value = _date(text_value(line))
        elif key == "categories":
            value = tuple(c.strip() for c in listed(line) if c.strip())
        elif key == "photo":
            decoded = binary_value(line)
            value = decoded[0] if decoded else None
        elif key == "members":
            value = tuple(text_value(m).strip() for m in lines)
        else:
            continue
        if value not in (None, "", (), ("",) * 5, ("",) * 2):
            out[key] = value
    uid = card.first("UID")
    if uid is not None and uid.value.strip():
        out["uid"] = text_value(uid).strip()
    return out


def photo_type(card: Card) -> str:
    line = card.first("PHOTO")
    decoded = binary_value(line) if line is not None else None
    return (decoded[1] if decoded else None) or "image/jpeg"


# -- fields → properties -------------------------------------------------------------------


def one_off_entry(name: str, addrtype: str, address: str) -> bytes:
    """A MAPI one-off entry id (MS-OXCDATA 2.2.5.1), Unicode strings."""

    def z(text: str) -> bytes:
        return text.encode("utf-16-le") + b"\x00\x00"

    return (
        b"\x00\x00\x00\x00" + ONE_OFF_UID + b"\x00\x00\x01\x90" + z(name) + z(addrtype) + z(address)
    )


def parse_one_off(entry: bytes) -> tuple[str, str, str] | None:
    if len(entry) < 24 or entry[4:20] != ONE_OFF_UID:
        return None
    (bits,) = struct.unpack("<H", entry[22:24])
    rest = entry[24:]
    if bits & 0x8000:
        parts = rest.decode("utf-16-le", "replace").split("\x00")
    else:
        parts = rest.decode("latin-1").split("\x00")
    if len(parts) < 3:
        return None
    return parts[0], parts[1], parts[2]


def _member_entry(member: str) -> bytes:
    if member.lower().startswith("mailto:"):
        addr = member[7:]
        return one_off_entry(addr, "SMTP", addr)
    return one_off_entry(member, "UID", member)


def fields_to_item(fields: Fields, item: ParsedItem, *, group: bool) -> None:
    p, n = item.props, item.named
    for key, (_, tag) in SIMPLE_FIELDS.items():
        if key in fields:
            p[tag] = fields[key]
    if "n" in fields:
        family, given, middle, prefix, suffix = fields["n"]
        for tag, value in (
            (tags.SURNAME, family),
            (tags.GIVEN_NAME, given),
            (tags.MIDDLE_NAME, middle),
            (tags.DISPLAY_NAME_PREFIX, prefix),
            (tags.GENERATION, suffix),
        ):
            if value:
                p[tag] = value
    display = fields.get("fn") or " ".join(
        v for v in (p.get(tags.GIVEN_NAME), p.get(tags.SURNAME)) if v
    )
    if display:
        p[tags.DISPLAY_NAME] = p[tags.SUBJECT] = display
        n[FILE_UNDER] = display
    if "org" in fields:
        company, department = fields["org"]
        if company:
            p[tags.COMPANY_NAME] = company
        if department:
            p[tags.DEPARTMENT_NAME] = department
    if "bday" in fields:
        p[tags.BIRTHDAY] = fields["bday"]
    if "anniversary" in fields:
        p[tags.WEDDING_ANNIVERSARY] = fields["anniversary"]
    if "url:work" in fields:
        p[tags.BUSINESS_HOME_PAGE] = fields["url:work"]
        n[HTML] = fields["url:work"]
    if "url:home" in fields:
        p[tags.PERSONAL_HOME_PAGE] = fields["url:home"]
    if "categories" in fields:
        n[KEYWORDS] = list(fields["categories"])
    for slot, (addr_np, name_np, type_np, orig_np) in enumerate(EMAIL_SLOTS, 1):
        addr = fields.get(f"email{slot}")
        if addr:
            n[addr_np] = n[orig_np] = addr
            n[type_np] = "SMTP"
            n[name_np] = f"{display} ({addr})" if display else addr
    for key, tag in _TEL_TAG.items():
        if key in fields:
            p[tag] = fields[key]
    for key, targets in ADDRESSES.items():
        if key in fields:
            for target, value in zip(targets, fields[key], strict=True):
                if value:
                    p[target] = value
    if "adr:work" in fields:
        for named_target, part in zip(WORK_ADDRESS, fields["adr:work"], strict=True):
            if part:
                n[named_target] = part
    if "uid" in fields:
        item.uid = fields["uid"]
        n[VCARD_UID] = fields["uid"]
    if group:
        item.message_class = classes.IPM_DISTLIST
        if display:
            n[DL_NAME] = display
        entries = [_member_entry(m) for m in fields.get("members", ())]
        n[DL_MEMBERS] = n[DL_ONE_OFF] = entries


def photo_attachment(data: bytes, mime: str) -> tuple[dict[int, Any], bytes]:
    ext = {"image/png": ".png", "image/gif": ".gif", "image/bmp": ".bmp"}.get(mime, ".jpg")
    props: dict[int, Any] = {
        tags.ATTACH_METHOD: flags.ATTACH_BY_VALUE,
        tags.ATTACH_LONG_FILENAME: PHOTO_NAME + ext,
        tags.ATTACH_FILENAME: PHOTO_NAME + ext,
        tags.ATTACH_EXTENSION: ext,
        tags.DISPLAY_NAME: PHOTO_NAME + ext,
        tags.ATTACH_MIME_TAG: mime,
        tags.ATTACHMENT_CONTACT_PHOTO: True,
        tags.ATTACHMENT_HIDDEN: True,
    }
    return props, data


# -- properties → fields -------------------------------------------------------------------


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def fields_from_props(
    message_class: str,
    props: Mapping[int, Any],
    named: Mapping[NamedProp, Any],
    attachments: Sequence[tuple[Mapping[int, Any], bytes]],
) -> Fields:
    out: Fields = {}
    for key, (_, tag) in SIMPLE_FIELDS.items():
        out[key] = _s(props.get(tag))
    out["fn"] = out["fn"] or _s(props.get(tags.SUBJECT)) or _s(named.get(DL_NAME))
    out["n"] = tuple(
        _s(props.get(t))
        for t in (
            tags.SURNAME,
            tags.GIVEN_NAME,
            tags.MIDDLE_NAME,
            tags.DISPLAY_NAME_PREFIX,
            tags.GENERATION,
        )
    )
    out["org"] = (_s(props.get(tags.COMPANY_NAME)), _s(props.get(tags.DEPARTMENT_NAME)))
    for key, tag in (("bday", tags.BIRTHDAY), ("anniversary", tags.WEDDING_ANNIVERSARY)):
        value = props.get(tag)
        if isinstance(value, dt.datetime):
            out[key] = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    out["url:work"] = _s(props.get(tags.BUSINESS_HOME_PAGE)) or _s(named.get(HTML))
    out["url:home"] = _s(props.get(tags.PERSONAL_HOME_PAGE))
    cats = named.get(KEYWORDS)
    out["categories"] = (
        tuple(c for c in cats if isinstance(c, str)) if isinstance(cats, list) else ()
    )
    for slot, (addr_np, *_) in enumerate(EMAIL_SLOTS, 1):
        out[f"email{slot}"] = _s(named.get(addr_np))
    for key, tag in _TEL_TAG.items():
        out[key] = _s(props.get(tag))
    for key, targets in ADDRESSES.items():
        out[key] = tuple(_s(props.get(t)) for t in targets)
    if not any(out["adr:work"]):
        out["adr:work"] = tuple(_s(named.get(t)) for t in WORK_ADDRESS)
    for aprops, data in attachments:
        if aprops.get(tags.ATTACHMENT_CONTACT_PHOTO) is True:
            out["photo"] = bytes(data)
            break
    if message_class.startswith(classes.IPM_DISTLIST):
        members: list[str] = []
        entries = named.get(DL_ONE_OFF) or named.get(DL_MEMBERS) or []
        for entry in entries if isinstance(entries, list) else []:
            parsed = parse_one_off(entry) if isinstance(entry, bytes) else None
            if parsed is None:
                continue
            _, addrtype, address = parsed
            members.append(f"mailto:{address}" if addrtype.upper() == "SMTP" else address)
        out["members"] = tuple(members)
    uid = named.get(VCARD_UID)
    if isinstance(uid, str) and uid:
        out["uid"] = uid
    return {k: v for k, v in out.items() if v not in (None, "", (), ("",) * 5, ("",) * 2)}
