"""Property values to and from JSON, for every property type, single- and multi-valued.

Python forms: integers → int, floating types → float, PT_BOOLEAN → bool, strings → str,
PT_SYSTIME → aware UTC datetime, PT_CLSID → UUID, PT_BINARY / PT_SVREID → bytes,
PT_ERROR → int scode, PT_SRESTRICTION → dict, PT_ACTIONS → list; MV types → list.
JSON forms: as above, except datetimes (RFC 3339 strings), UUIDs ("XXXXXXXX-XXXX-…"),
bytes (base64 with padding) and non-finite R4/DOUBLE ("NaN", "Infinity", "-Infinity").
A type with MV_INSTANCE (a table column expanded per value) carries one base-type value.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

from bridge.model.errors import PropValueError
from bridge.model.proptypes import MV_INSTANCE, PropType, base_type, is_known_type, is_multi
from bridge.model.proptypes import type_name as _type_name

__all__ = [
    "FILETIME_EPOCH",
    "MAX_FILETIME",
    "PropValueError",
    "datetime_to_filetime",
    "filetime_to_datetime",
    "from_json",
    "normalize_json",
    "to_json",
]

FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
MAX_FILETIME = 2**63 - 1


class _Reject(Exception):
    """Raised by the per-type converters; turned into PropValueError with context."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Codec:
    shape: str  # the JSON shape, for error messages
    decode: Callable[[object], object]  # JSON value -> Python value
    encode: Callable[[object], object]  # Python value -> JSON value


# --- integers ---


def _int_codec(lo: int, hi: int) -> _Codec:
    def check(value: object) -> object:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Reject()
        if not lo <= value <= hi:
            raise _Reject("out of range")
        return int(value)

    return _Codec(f"an integer in {lo}..{hi}", check, check)


# --- floating point ---

_SPECIAL_IN = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _float_codec(*, single: bool, special: bool) -> _Codec:
    def fit(value: object, *, finite: bool) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _Reject()
        try:
            number = float(value)
            if single:
                number = struct.unpack("<f", struct.pack("<f", number))[0]
        except OverflowError:
            raise _Reject("out of range") from None
        if (finite or not special) and not math.isfinite(number):
            raise _Reject("not a finite number")
        return number

    def decode(value: object) -> object:
        if special and isinstance(value, str):
            if value not in _SPECIAL_IN:
                raise _Reject()
            return _SPECIAL_IN[value]
        return fit(value, finite=True)  # JSON numbers are finite; specials come as strings

    def encode(value: object) -> object:
        number = fit(value, finite=False)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number

    extra = ' or "NaN", "Infinity", "-Infinity"' if special else ""
    return _Codec("a number" + extra, decode, encode)


# --- booleans and strings ---


def _bool(value: object) -> object:
    if not isinstance(value, bool):
        raise _Reject()
    return value


def _str(value: object) -> object:
    if not isinstance(value, str):
        raise _Reject()
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Reject("contains a lone surrogate") from None
    return value


# --- time ---

_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def _utc(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise _Reject()
    if value.tzinfo is None or value.utcoffset() is None:
        raise _Reject("naive datetime")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise _Reject("out of range") from None
    if utc < FILETIME_EPOCH:
        raise _Reject("before 1601-01-01, the FILETIME epoch")
    return utc


def _parse_time(value: object) -> object:
    if not isinstance(value, str):
        raise _Reject()
    m = _RFC3339_RE.fullmatch(value)
    if m is None:
        raise _Reject("not RFC 3339 with a time zone offset")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zulu, sign, off_h, off_m = m.groups()[6:]
    micro = int((frac + "00000")[:6]) if frac else 0
    if zulu:
        tz = UTC
    else:
        if int(off_h) > 23 or int(off_m) > 59:
            raise _Reject("bad offset")
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    try:
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError as exc:
        raise _Reject(str(exc)) from None
    return _utc(local)


def _format_time(value: object) -> object:
    return format_utc(_utc(value))


def format_utc(dt: datetime) -> str:
    """The JSON form of a SYSTIME value that is already a UTC datetime (to_json's)."""
    text = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )
    if dt.microsecond:
        text += f".{dt.microsecond:06d}"
    return text + "Z"


def datetime_to_filetime(dt: datetime) -> int:
    """100 ns ticks since 1601-01-01 UTC; dt must be timezone-aware and not before 1601."""
    try:
        utc = _utc(dt)
    except _Reject as exc:
        raise PropValueError(f"cannot convert {dt!r} to FILETIME: {exc.reason}") from None
    return (utc - FILETIME_EPOCH) // timedelta(microseconds=1) * 10


def filetime_to_datetime(ft: int) -> datetime:
    """The UTC datetime of a FILETIME (truncated to microseconds); ft in 0..2^63-1."""
    if not isinstance(ft, int) or isinstance(ft, bool) or not 0 <= ft <= MAX_FILETIME:
        raise PropValueError(f"FILETIME must be an integer in 0..{MAX_FILETIME}, got {ft!r}")
    try:
        return FILETIME_EPOCH + timedelta(microseconds=ft // 10)
    except OverflowError:
        raise PropValueError(f"FILETIME {ft} is after 9999-12-31") from None


# --- GUIDs and bytes ---

_GUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def _parse_guid(value: object) -> object:
    if not isinstance(value, str):
        raise _Reject()
    text = value[1:-1] if value.startswith("{") and value.endswith("}") else value
    if not _GUID_RE.fullmatch(text):
        raise _Reject()
    return UUID(text)


def _format_guid(value: object) -> object:
    if not isinstance(value, UUID):
        raise _Reject()
    return str(value).upper()


def _parse_bytes(value: object) -> object:
    if not isinstance(value, str):
        raise _Reject()
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Reject("invalid base64") from None


def _format_bytes(value: object) -> object:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise _Reject()
    return base64.b64encode(value).decode("ascii")


# --- structured passthrough ---

_MAX_DEPTH = 64


def _check_json(value: object, depth: int = 0) -> None:
    """Reject what strict JSON cannot carry: non-finite floats, lone surrogates, odd types."""
    if depth > _MAX_DEPTH:
        raise _Reject("nested too deeply")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Reject("contains a non-finite number")
    elif isinstance(value, str):
        _str(value)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Reject("object keys must be strings")
            _str(key)
            _check_json(item, depth + 1)
    else:
        raise _Reject(f"contains a {type(value).__name__}")


def _dict(value: object) -> object:
    if not isinstance(value, dict):
        raise _Reject()
    _check_json(value)
    return value


def _list(value: object) -> object:
    if not isinstance(value, list):
        raise _Reject()
    _check_json(value)
    return value


def _not_a_value(what: str) -> _Codec:
    def reject(value: object) -> object:
        raise _Reject()

    return _Codec(what, reject, reject)


_STRING = _Codec("a string", _str, _str)
_BYTES = _Codec("a base64 string with padding", _parse_bytes, _format_bytes)

_CODECS: dict[int, _Codec] = {
    PropType.I2: _int_codec(-(2**15), 2**15 - 1),
    PropType.LONG: _int_codec(-(2**31), 2**32 - 1),
    PropType.I8: _int_codec(-(2**63), 2**63 - 1),
    PropType.CURRENCY: _int_codec(-(2**63), 2**63 - 1),
    PropType.ERROR: _int_codec(0, 2**32 - 1),
    PropType.R4: _float_codec(single=True, special=True),
    PropType.DOUBLE: _float_codec(single=False, special=True),
    PropType.APPTIME: _float_codec(single=False, special=False),
    PropType.BOOLEAN: _Codec("true or false", _bool, _bool),
    PropType.STRING8: _STRING,
    PropType.UNICODE: _STRING,
    PropType.SYSTIME: _Codec(
        'an RFC 3339 time with offset, e.g. "2024-05-01T09:30:00Z"', _parse_time, _format_time
    ),
    PropType.CLSID: _Codec(
        'a GUID "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX"', _parse_guid, _format_guid
    ),
    PropType.BINARY: _BYTES,
    PropType.SVREID: _BYTES,
    PropType.SRESTRICTION: _Codec("a restriction object", _dict, _dict),
    PropType.ACTIONS: _Codec("an array of rule actions", _list, _list),
    PropType.OBJECT: _not_a_value("nothing: objects are opened, not set as values"),
    PropType.NULL: _not_a_value("nothing: PT_NULL carries no value"),
    PropType.UNSPECIFIED: _not_a_value("nothing: PT_UNSPECIFIED carries no value"),
}


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@functools.lru_cache(maxsize=512)
def _codec_for(ptype: int) -> tuple[_Codec, bool]:
    """The base codec and whether the value is a list. MV_INSTANCE columns hold one value."""
    if not is_known_type(ptype):
        raise PropValueError(f"unknown property type 0x{ptype & 0xFFFF:04X}")
    multi = is_multi(ptype) and not ptype & MV_INSTANCE
    return _CODECS[base_type(ptype)], multi


def _convert(ptype: int, value: object, *, decoding: bool) -> object:
    codec, multi = _codec_for(ptype)
    convert = codec.decode if decoding else codec.encode

    def one(item: object, where: str) -> object:
        try:
            return convert(item)
        except _Reject as exc:
            name = _type_name(ptype)
            reason = f" ({exc.reason})" if exc.reason else ""
            if decoding:
                msg = f"{name} expects {codec.shape}{where}; got {_show(item)}{reason}"
            else:
                msg = f"{name} cannot encode {_show(item)}{where}{reason}"
            raise PropValueError(msg) from None

    if not multi:
        return one(value, "")
    if not isinstance(value, list) and (decoding or not isinstance(value, tuple)):
        name = _type_name(ptype)
        raise PropValueError(f"{name} expects an array of {codec.shape}; got {_show(value)}")
    return [one(item, f" at index {i}") for i, item in enumerate(value)]


def from_json(ptype: int, value: object) -> object:
    """Validate a decoded JSON value for ptype and return its Python form."""
    return _convert(ptype, value, decoding=True)


def to_json(ptype: int, value: object) -> object:
    """The JSON-serialisable form of a Python value of type ptype."""
    return _convert(ptype, value, decoding=False)


def normalize_json(ptype: int, value: object) -> object:
    """The canonical stored JSON form: to_json(from_json(value))."""
    return to_json(ptype, from_json(ptype, value))
