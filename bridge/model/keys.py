"""Property keys as the REST API accepts them: tagged properties and named properties.

Accepted spellings: ``PidTagSubject``, ``PR_SUBJECT`` / ``PR_SUBJECT_W`` / ``PR_SUBJECT_A``,
``0x0037001F``, ``PidLidBusyStatus``, ``PidNameKeywords``, ``{PSETID_Appointment}:0x8205``,
``{PS_PUBLIC_STRINGS}:Keywords``; named forms take an optional type suffix (``…:0x000B``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bridge.model.errors import PropKeyError
from bridge.model.named import KNOWN, NamedProp, format_named, known_by_name, parse_named
from bridge.model.proptypes import (
    MV_FLAG,
    PropType,
    base_type,
    hex_tag,
    is_known_type,
    prop_id,
    prop_type,
    type_name,
)
from bridge.model.tags import by_name, by_tag

__all__ = [
    "NamedKey",
    "PropKey",
    "PropKeyError",
    "TaggedKey",
    "format_key",
    "parse_key",
    "tagged_key_name",
]


@dataclass(frozen=True, slots=True)
class TaggedKey:
    """A fixed-ID property, given by its full tag."""

    tag: int


@dataclass(frozen=True, slots=True)
class NamedKey:
    """A named property; ptype None means the type is not known from the key alone."""

    prop: NamedProp
    ptype: int | None = None


PropKey = TaggedKey | NamedKey

_HEX_TAG_RE = re.compile(r"0x[0-9a-f]{8}", re.I)
_NAMED_RE = re.compile(r"(\{[^}]*\}:.+?)(?::(0x[0-9a-f]{4}))?", re.I | re.S)
_UNKNOWN = (
    "unknown property {!r}: use a PidTag name, a hex tag such as 0x0037001F, or {{PSETID_…}}:0xLID"
)
_STRING_TYPES = (PropType.UNICODE, PropType.STRING8)


def _parse_hex_tag(text: str) -> TaggedKey:
    tag = int(text, 16)
    ptype = prop_type(tag)
    if not is_known_type(ptype):
        raise PropKeyError(f"bad property type 0x{ptype:04X} in tag {text!r}")
    if prop_id(tag) in (0x0000, 0xFFFF):
        raise PropKeyError(f"bad property id 0x{prop_id(tag):04X} in tag {text!r}")
    return TaggedKey(tag)


def _compatible(declared: int, given: int) -> bool:
    """Same type, or the narrow/wide string variant of it."""
    if declared == given:
        return True
    return (
        declared & MV_FLAG == given & MV_FLAG
        and base_type(declared) in _STRING_TYPES
        and base_type(given) in _STRING_TYPES
    )


def _parse_named_key(text: str) -> NamedKey:
    m = _NAMED_RE.fullmatch(text)
    if m is None:
        parse_named(text)  # raises with the precise reason
        raise PropKeyError(f"bad named property {text!r}")
    np = parse_named(m.group(1))
    known = KNOWN.get(np)
    if m.group(2) is None:
        return NamedKey(np, known.ptype if known else None)
    ptype = int(m.group(2), 16)
    if not is_known_type(ptype):
        raise PropKeyError(f"bad property type 0x{ptype:04X} in {text!r}")
    if known is not None and not _compatible(known.ptype, ptype):
        raise PropKeyError(
            f"{known.canonical} has type {type_name(known.ptype)}, not {type_name(ptype)}"
        )
    return NamedKey(np, ptype)


def parse_key(text: str) -> PropKey:
    """Parse a property key; raises PropKeyError with a message fit for the client."""
    if not isinstance(text, str):
        raise PropKeyError(f"a property key must be a string, not {type(text).__name__}")
    if text.startswith("{"):
        return _parse_named_key(text)
    if text[:2].lower() == "0x":
        if not _HEX_TAG_RE.fullmatch(text):
            raise PropKeyError(f"bad hex tag {text!r}: expected 0x and exactly 8 hex digits")
        return _parse_hex_tag(text)
    info = by_name(text)
    if info is not None:
        return TaggedKey(info.tag)
    named = known_by_name(text)
    if named is not None:
        return NamedKey(named.prop, named.ptype)
    raise PropKeyError(_UNKNOWN.format(text))


def tagged_key_name(tag: int) -> str:
    """The PidTag name for exactly this tag when known, else the hex tag."""
    info = by_tag(tag)
    return info.pidtag if info is not None else hex_tag(tag)


def format_key(key: PropKey) -> str:
    """A spelling that parse_key reads back as the same key.

    The one exception: a known named property given without a type comes back with its type.
    """
    if isinstance(key, TaggedKey):
        return tagged_key_name(key.tag)
    known = KNOWN.get(key.prop)
    if known is not None and key.ptype == known.ptype:
        return known.canonical
    text = format_named(key.prop)
    if key.ptype is not None:
        text += f":0x{key.ptype:04X}"
    return text
