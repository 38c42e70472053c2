"""MAPI restrictions (MAPI.md §2) as frozen dataclasses, parsed from the JSON tree of the
table-view contract (DESIGN.md §5).

`parse(doc, resolve)` validates a whole tree: node types, relops, value types against the
property type, depth (≤ MAX_DEPTH) and size (≤ MAX_NODES). Values are kept in their
*comparable* form (`comparable()`): strings as str, integers and booleans as int, times as
FILETIME ints, binaries as bytes, GUIDs as upper-case text, floats as float (the non-finite
ones as the text of their JSON spelling).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from bridge.model.codec import datetime_to_filetime, from_json
from bridge.model.errors import PropKeyError, PropValueError
from bridge.model.proptypes import PropType, base_type, hex_tag, is_multi, prop_type, type_name

MAX_DEPTH = 64
MAX_NODES = 10_000
OPS = ("lt", "le", "gt", "ge", "eq", "ne")
MATCHES = ("full", "substring", "prefix")
SUB_OBJECTS = ("recipients", "attachments")

STRING_TYPES = frozenset({PropType.UNICODE, PropType.STRING8})
INT_TYPES = frozenset({PropType.I2, PropType.LONG, PropType.I8, PropType.CURRENCY, PropType.ERROR})
FLOAT_TYPES = frozenset({PropType.R4, PropType.DOUBLE, PropType.APPTIME})
BINARY_TYPES = frozenset({PropType.BINARY, PropType.SVREID})
COMPARABLE_TYPES = (
    STRING_TYPES
    | INT_TYPES
    | FLOAT_TYPES
    | BINARY_TYPES
    | {PropType.BOOLEAN, PropType.SYSTIME, PropType.CLSID}
)
# Byte sizes of fixed-size values (RES_SIZE); strings count UTF-8 bytes, binaries their bytes.
FIXED_SIZES = {
    PropType.I2: 2,
    PropType.LONG: 4,
    PropType.R4: 4,
    PropType.DOUBLE: 8,
    PropType.CURRENCY: 8,
    PropType.APPTIME: 8,
    PropType.ERROR: 4,
    PropType.BOOLEAN: 2,
    PropType.I8: 8,
    PropType.SYSTIME: 8,
    PropType.CLSID: 16,
}

Comparable = int | float | str | bytes


class RestrictionError(ValueError):
    """A restriction the bridge refuses. `too_complex` marks a well-formed one it does not
    evaluate (MAPI_E_TOO_COMPLEX)."""

    def __init__(self, message: str, *, too_complex: bool = False) -> None:
        super().__init__(message)
        self.too_complex = too_complex


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Restriction, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Restriction, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Restriction


@dataclass(frozen=True, slots=True)
class Content:
    tag: int
    value: str | bytes
    match: str  # full | substring | prefix
    ignore_case: bool = False
    loose: bool = False


@dataclass(frozen=True, slots=True)
class Property:
    tag: int
    op: str
    value: Comparable


@dataclass(frozen=True, slots=True)
class Compare:
    tag1: int
    op: str
    tag2: int


@dataclass(frozen=True, slots=True)
class Bitmask:
    tag: int
    mask: int
    nonzero: bool


@dataclass(frozen=True, slots=True)
class Size:
    tag: int
    op: str
    size: int


@dataclass(frozen=True, slots=True)
class Exist:
    tag: int


@dataclass(frozen=True, slots=True)
class Sub:
    object: str  # recipients | attachments
    child: Restriction


@dataclass(frozen=True, slots=True)
class Comment:
    props: str  # the annotation, kept as canonical JSON text
    child: Restriction | None


@dataclass(frozen=True, slots=True)
class Count:
    max: int
    child: Restriction


Restriction = (
    And | Or | Not | Content | Property | Compare | Bitmask | Size | Exist | Sub | Comment | Count
)

# A property name → its tag in the store; raises PropKeyError for a bad name.
Resolver = Callable[[str], int]


def comparable(ptype: int, value: Any) -> Comparable:
    """A stored JSON value (of one value of `ptype`) in the form restrictions compare."""
    base = base_type(ptype)
    if base == PropType.BOOLEAN:
        return int(bool(value))
    if base == PropType.SYSTIME:
        return datetime_to_filetime(from_json(PropType.SYSTIME, value))  # type: ignore[arg-type]
    if base in BINARY_TYPES:
        out = from_json(PropType.BINARY, value)
        assert isinstance(out, bytes)
        return out
    if base == PropType.CLSID:
        return str(value).upper()
    if isinstance(value, int | float | str | bytes):
        return value
    raise PropValueError(f"{type_name(ptype)} values cannot be compared")


def value_size(ptype: int, value: Comparable) -> int:
    """The byte size RES_SIZE compares (one value)."""
    base = base_type(ptype)
    if isinstance(value, str) and base in STRING_TYPES:
        return len(value.encode("utf-8"))
    if isinstance(value, bytes):
        return len(value)
    return FIXED_SIZES.get(PropType(base), 0)


def parse(doc: object, resolve: Resolver) -> Restriction:
    """The JSON restriction tree → dataclasses; raises RestrictionError."""
    return _Parser(resolve).node(doc, 1)


class _Parser:
    def __init__(self, resolve: Resolver) -> None:
        self.resolve = resolve
        self.nodes = 0

    def node(self, doc: object, depth: int) -> Restriction:
        if depth > MAX_DEPTH:
            raise RestrictionError(f"restriction nested deeper than {MAX_DEPTH} levels")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise RestrictionError(f"restriction has more than {MAX_NODES} nodes")
        if not isinstance(doc, dict) or len(doc) != 1:
            raise RestrictionError(
                'a restriction is an object with exactly one key, e.g. {"exist": "PidTagSubject"}'
            )
        kind, body = next(iter(doc.items()))
        handler = self._handlers.get(kind)
        if handler is None:
            raise RestrictionError(
                f"unknown restriction type {kind!r}: use and, or, not, content, property, "
                "compare, bitmask, size, exist, sub, comment or count"
            )
        return handler(self, body, depth)

    # -- helpers ----------------------------------------------------------------------

    def tag(self, name: object, where: str) -> int:
        if not isinstance(name, str):
            raise RestrictionError(f"{where}: a property name (string) is required")
        try:
            return self.resolve(name)
        except PropKeyError as exc:
            raise RestrictionError(f"{where}: {exc}") from None

    def value(self, tag: int, raw: object, where: str) -> Comparable:
        ptype = base_type(prop_type(tag))
        if ptype not in COMPARABLE_TYPES:
            raise RestrictionError(
                f"{where}: {hex_tag(tag)} is {type_name(ptype)}; only exist applies to it",
                too_complex=True,
            )
        try:
            from_json(ptype, raw)
            return comparable(ptype, raw)
        except PropValueError as exc:
            raise RestrictionError(f"{where}: {exc}") from None

    @staticmethod
    def fields(body: object, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise RestrictionError(f"{where}: expected an object")
        missing = required - set(body)
        unknown = set(body) - required - optional
        if missing:
            raise RestrictionError(f"{where}: missing {', '.join(sorted(missing))}")
        if unknown:
            raise RestrictionError(f"{where}: unknown fields {', '.join(sorted(unknown))}")
        return body

    @staticmethod
    def op(value: object, where: str) -> str:
        if value == "re":
            raise RestrictionError(
                f"{where}: the regular-expression relop (re) is not supported", too_complex=True
            )
        if value not in OPS:
            raise RestrictionError(f"{where}: op must be one of {', '.join(OPS)}")
        assert isinstance(value, str)
        return value

    @staticmethod
    def flag(body: dict[str, Any], name: str, where: str) -> bool:
        value = body.get(name, False)
        if not isinstance(value, bool):
            raise RestrictionError(f"{where}: {name} must be true or false")
        return value

    @staticmethod
    def count(value: object, where: str, name: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
            raise RestrictionError(f"{where}: {name} must be an integer in 0..2^32-1")
        return value

    def children(self, body: object, depth: int, kind: str) -> tuple[Restriction, ...]:
        if not isinstance(body, list):
            raise RestrictionError(f"{kind}: expected an array of restrictions")
        if self.nodes + len(body) > MAX_NODES:
            raise RestrictionError(f"restriction has more than {MAX_NODES} nodes")
        return tuple(self.node(child, depth + 1) for child in body)

    # -- node types -------------------------------------------------------------------

    def _and(self, body: object, depth: int) -> Restriction:
        return And(self.children(body, depth, "and"))

    def _or(self, body: object, depth: int) -> Restriction:
        return Or(self.children(body, depth, "or"))

    def _not(self, body: object, depth: int) -> Restriction:
        return Not(self.node(body, depth + 1))

    def _content(self, body: object, depth: int) -> Restriction:
        f = self.fields(body, "content", {"prop", "value"}, {"match", "ignore_case", "loose"})
        tag = self.tag(f["prop"], "content")
        base = base_type(prop_type(tag))
        if base not in STRING_TYPES | BINARY_TYPES:
            raise RestrictionError(
                f"content: {hex_tag(tag)} is {type_name(base)}; content applies to strings "
                "and binaries"
            )
        match = f.get("match", "full")
        if match not in MATCHES:
            raise RestrictionError(f"content: match must be one of {', '.join(MATCHES)}")
        value = self.value(tag, f["value"], "content")
        assert isinstance(value, str | bytes)
        return Content(
            tag,
            value,
            match,
            self.flag(f, "ignore_case", "content"),
            self.flag(f, "loose", "content"),
        )

    def _property(self, body: object, depth: int) -> Restriction:
        f = self.fields(body, "property", {"prop", "op", "value"}, set())
        tag = self.tag(f["prop"], "property")
        op = self.op(f["op"], "property")
        return Property(tag, op, self.value(tag, f["value"], "property"))

    def _compare(self, body: object, depth: int) -> Restriction:
        f = self.fields(body, "compare", {"prop1", "op", "prop2"}, set())
        tag1, tag2 = self.tag(f["prop1"], "compare"), self.tag(f["prop2"], "compare")
        op = self.op(f["op"], "compare")
        t1, t2 = base_type(prop_type(tag1)), base_type(prop_type(tag2))
        same = t1 == t2 or (t1 in STRING_TYPES and t2 in STRING_TYPES)
        if not same or t1 not in COMPARABLE_TYPES:
            raise RestrictionError(
                f"compare: {type_name(t1)} and {type_name(t2)} cannot be compared"
            )
        if is_multi(prop_type(tag1)) or is_multi(prop_type(tag2)):
            raise RestrictionError(
                "compare: multi-valued properties are not supported here", too_complex=True
            )
        return Compare(tag1, op, tag2)

    def _bitmask(self, body: object, depth: int) -> Restriction:
        f = self.fields(body, "bitmask", {"prop", "mask"}, {"nonzero"})
        tag = self.tag(f["prop"], "bitmask")
        if base_type(prop_type(tag)) not in INT_TYPES:
            raise RestrictionError("bitmask: the property must be an integer type")
        nonzero = f.get("nonzero", True)
        if not isinstance(nonzero, bool):
            raise RestrictionError("bitmask: nonzero must be true or false")
        return Bitmask(tag, self.count(f["mask"], "bitmask", "mask"), nonzero)

    def _size(self, body: object, depth: int) -> Restriction:
        f = self.fields(body, "size", {"prop", "op", "size"}, set())
        tag = self.tag(f["prop"], "size")
        if base_type(prop_type(tag)) not in COMPARABLE_TYPES:
            raise RestrictionError("size: the property type has no byte size", too_complex=True)
        return Size(tag, self.op(f["op"], "size"), self.count(f["size"], "size", "size"))

    def _exist(self, body: object, depth: int) -> Restriction:
        return Exist(self.tag(body, "exist"))

    def _sub(self, body: object, depth: int) -> Restriction:
        f = self.fields(body, "sub", {"object", "restriction"}, set())
        if f["object"] not in SUB_OBJECTS:
            raise RestrictionError('sub: object must be "recipients" or "attachments"')
        return Sub(f["object"], self.node(f["restriction"], depth + 1))

    def _comment(self, body: object, depth: int) -> Restriction:
        f = self.fields(body, "comment", set(), {"props", "restriction"})
        props = f.get("props", {})
        if not isinstance(props, dict):
            raise RestrictionError("comment: props must be an object")
        try:
            text = json.dumps(props, sort_keys=True)
        except (ValueError, RecursionError):
            raise RestrictionError("comment: props cannot be kept") from None
        child = f.get("restriction")
        return Comment(text, None if child is None else self.node(child, depth + 1))

    def _count(self, body: object, depth: int) -> Restriction:
        f = self.fields(body, "count", {"max", "restriction"}, set())
        if depth != 1:
            raise RestrictionError(
                "count: only allowed at the top of a restriction", too_complex=True
            )
        return Count(self.count(f["max"], "count", "max"), self.node(f["restriction"], depth + 1))

    _handlers: ClassVar[dict[str, Callable[[_Parser, object, int], Restriction]]] = {
        "and": _and,
        "or": _or,
        "not": _not,
        "content": _content,
        "property": _property,
        "compare": _compare,
        "bitmask": _bitmask,
        "size": _size,
        "exist": _exist,
        "sub": _sub,
        "comment": _comment,
        "count": _count,
    }
