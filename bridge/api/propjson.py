"""Property documents as the API speaks them: `{"PidTagSubject": "Hi", "0x8205000B": ...}`
in, `{canonical name: JSON value}` out. Named properties resolve through the store's map."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bridge.model.codec import from_json
from bridge.model.errors import PropKeyError, PropValueError
from bridge.model.keys import NamedKey, TaggedKey, parse_key, tagged_key_name
from bridge.model.named import KNOWN, NamedProp, format_named
from bridge.model.proptypes import make_tag, prop_id, prop_type, type_name
from bridge.store.props import infer_type
from bridge.store.store import Store

MAX_PROPS = 4096


class PropDocError(ValueError):
    """A property document the API refuses; `key` names the offending entry."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def _named_type(store: Store, key: NamedKey, value: Any) -> int:
    mapped = store.core.named.lookup(key.prop)
    if key.ptype is not None:
        if mapped and mapped[1] is not None and mapped[1] != key.ptype:
            raise PropKeyError(
                f"this store already holds the property as {type_name(mapped[1])}, "
                f"not {type_name(key.ptype)}"
            )
        return key.ptype
    if mapped and mapped[1] is not None:
        return mapped[1]
    return infer_type(value)


def decode_props(store: Store, doc: object) -> tuple[dict[int, Any], dict[NamedProp, Any]]:
    """A JSON property document → (tagged values, named values).

    Raises PropDocError naming the key at fault; nothing is written."""
    if not isinstance(doc, dict):
        raise PropDocError("props", "must be a JSON object of property name → value")
    if len(doc) > MAX_PROPS:
        raise PropDocError("props", f"at most {MAX_PROPS} properties per request")
    tagged: dict[int, Any] = {}
    named: dict[NamedProp, Any] = {}
    for text, value in doc.items():
        try:
            key = parse_key(text)
            if isinstance(key, TaggedKey):
                if prop_id(key.tag) >= 0x8000:
                    np = store.core.named.prop_for(prop_id(key.tag))
                    if np is None:
                        raise PropKeyError(
                            "no named property is mapped to this id in this store; "
                            "use the {SET}:LID form"
                        )
                    named[np] = from_json(prop_type(key.tag), value)
                else:
                    tagged[key.tag] = from_json(prop_type(key.tag), value)
            else:
                named[key.prop] = from_json(_named_type(store, key, value), value)
        except (PropKeyError, PropValueError) as exc:
            raise PropDocError(text, str(exc)) from None
    return tagged, named


def decode_tags(store: Store, keys: Iterable[object]) -> list[int]:
    """Property names (e.g. for `columns` or a delete list) → tags of this store."""
    out = []
    for text in keys:
        try:
            if not isinstance(text, str):
                raise PropKeyError("a property name must be a string")
            key = parse_key(text)
            if isinstance(key, TaggedKey):
                out.append(key.tag)
                continue
            mapped = store.core.named.lookup(key.prop)
            if mapped is None:
                continue  # never set in this store: nothing to read or delete
            ptype = key.ptype or mapped[1]
            if ptype is None:
                continue
            out.append(make_tag(mapped[0], ptype))
        except PropKeyError as exc:
            raise PropDocError(str(text), str(exc)) from None
    return out


def key_name(store: Store, tag: int) -> str:
    """The name a tag is shown under: PidTag/PidLid name, `{SET}:0xLID`, or hex."""
    pid = prop_id(tag)
    if pid < 0x8000:
        return tagged_key_name(tag)
    np = store.core.named.prop_for(pid)
    if np is None:
        return tagged_key_name(tag)
    known = KNOWN.get(np)
    if known is not None and known.ptype == prop_type(tag):
        return known.canonical
    mapped = store.core.named.lookup(np)
    if mapped and mapped[1] == prop_type(tag):
        return format_named(np)
    return f"{format_named(np)}:0x{prop_type(tag):04X}"


def encode_props(
    store: Store, props: Mapping[int, Any], columns: list[int] | None = None
) -> dict[str, Any]:
    """Stored JSON values keyed by tag → the API's document (optionally only `columns`)."""
    if columns is None:
        return {key_name(store, tag): value for tag, value in props.items()}
    return {key_name(store, tag): props[tag] for tag in columns if tag in props}
