"""Outlook's time-zone structures: PidLidTimeZoneStruct (a TZREG, [MS-OXOCAL] 2.2.1.39) and
the TZDEFINITION of PidLidAppointmentTimeZoneDefinitionStartDisplay / EndDisplay / Recur
(2.2.1.41 with its TZRULEs, 2.2.1.41.1), encoded and decoded.

No well-kept Python library reads or writes these structures, so they are done here by hand
with `struct` from the spec's field layout (little-endian throughout):

- TZREG, 48 bytes: lBias, lStandardBias, lDaylightBias (int32, minutes; UTC = local + bias),
  wStandardYear, stStandardDate (SYSTEMTIME), wDaylightYear, stDaylightDate.
- SYSTEMTIME, 16 bytes: wYear, wMonth, wDayOfWeek (0 = Sunday), wDay, wHour, wMinute, wSecond,
  wMilliseconds; with wYear 0 it is a yearly rule, wDay the week of the month (5 = last), the
  time the local wall-clock time *before* the change. Zones without DST have wMonth 0.
- TZDEFINITION: bMajorVersion 2, bMinorVersion 1, cbHeader, Reserved 0x0002, cchKeyName,
  KeyName (UTF-16LE, the Windows zone name, no terminator), cRules, then cRules TZRULEs of
  66 bytes: version 2.1, Reserved 0x003E, flags, wYear (the year the rule starts), 14 zero
  bytes, then the TZREG fields without the two year words.

Building the rules from a zone is `tz_rules`.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import struct

TZRULE_FLAG_RECUR_CURRENT_TZREG = 0x0001
TZRULE_FLAG_EFFECTIVE_TZREG = 0x0002
MAJOR, MINOR = 0x02, 0x01
DEFINITION_RESERVED = 0x0002  # TZDEFINITION_FLAG_VALID_KEYNAME
RULE_RESERVED = 0x003E
MAX_RULES = 1024
MAX_KEY = 255

_SYSTEMTIME = struct.Struct("<8H")
_TZREG = struct.Struct("<iiiH16sH16s")
_RULE = struct.Struct("<BBHHH14siii16s16s")
_HEAD = struct.Struct("<BBHHH")


class TzStructError(ValueError):
    """Bytes that are not a TZREG / TZDEFINITION this bridge can read; the message says why."""


@dataclasses.dataclass(frozen=True)
class SystemTime:
    """A SYSTEMTIME; with `year` 0, `day` is the week of the month (1–4, 5 = last)."""

    year: int = 0
    month: int = 0
    day_of_week: int = 0
    day: int = 0
    hour: int = 0
    minute: int = 0
    second: int = 0
    milliseconds: int = 0

    def pack(self) -> bytes:
        return _SYSTEMTIME.pack(
            self.year,
            self.month,
            self.day_of_week,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.milliseconds,
        )

    @classmethod
    def unpack(cls, data: bytes) -> SystemTime:
        st = cls(*_SYSTEMTIME.unpack(data))
        if st.month == 0:
            return st
        bad = st.month > 12 or st.day_of_week > 6 or st.hour > 23 or st.minute > 59
        bad = bad or st.second > 59 or st.milliseconds > 999
        bad = bad or (st.day > 31 if st.year else not 1 <= st.day <= 5)
        if bad:
            raise TzStructError(f"not a valid SYSTEMTIME: {st}")
        return st

    def local(self, year: int) -> dt.datetime:
        """The wall-clock time of the change in `year` (a yearly rule, or an absolute date)."""
        last = calendar.monthrange(year, self.month)[1]
        if self.year:
            day = min(max(self.day, 1), last)
        else:
            first = (dt.date(year, self.month, 1).weekday() + 1) % 7  # 0 = Sunday
            day = 1 + (self.day_of_week - first) % 7 + 7 * (self.day - 1)
            while day > last:
                day -= 7
        return dt.datetime(year, self.month, day, self.hour, self.minute, self.second)


NO_DATE = SystemTime()


@dataclasses.dataclass(frozen=True)
class TzReg:
    """One rule of a zone: biases in minutes (UTC = local + bias [+ standard/daylight bias])
    and the yearly changes to standard and daylight time (NO_DATE for both: no DST)."""

    bias: int
    standard_bias: int = 0
    daylight_bias: int = 0
    standard_date: SystemTime = NO_DATE
    daylight_date: SystemTime = NO_DATE

    @property
    def has_dst(self) -> bool:
        return self.standard_date.month != 0 and self.daylight_date.month != 0

    @property
    def standard_offset(self) -> int:
        """Minutes east of UTC in standard time."""
        return -(self.bias + self.standard_bias)

    @property
    def daylight_offset(self) -> int:
        return -(self.bias + self.daylight_bias)

    def utc_offset(self, when: dt.datetime) -> int:
        """Minutes east of UTC this rule gives at the instant `when` (aware)."""
        std, dst = self.standard_offset, self.daylight_offset
        if not self.has_dst:
            return std
        utc = when.astimezone(dt.UTC).replace(tzinfo=None)
        year = (utc + dt.timedelta(minutes=std)).year
        to_dst = self.daylight_date.local(year) - dt.timedelta(minutes=std)
        to_std = self.standard_date.local(year) - dt.timedelta(minutes=dst)
        northern = to_dst < to_std
        in_dst = to_dst <= utc < to_std if northern else not to_std <= utc < to_dst
        return dst if in_dst else std


@dataclasses.dataclass(frozen=True)
class TzRule:
    """A TZRULE: `reg` applies from `year` on; `flags` TZRULE_FLAG_*."""

    year: int
    reg: TzReg
    flags: int = 0


@dataclasses.dataclass(frozen=True)
class TzDefinition:
    """A TZDEFINITION: the Windows zone name and its rules, oldest first."""

    key_name: str
    rules: tuple[TzRule, ...]

    @property
    def effective(self) -> TzReg:
        """The rule flagged TZRULE_FLAG_EFFECTIVE_TZREG, else the last one."""
        for rule in self.rules:
            if rule.flags & TZRULE_FLAG_EFFECTIVE_TZREG:
                return rule.reg
        return self.rules[-1].reg

    def reg_for(self, year: int) -> TzReg:
        """The rule in force in `year` (the first one for years before it)."""
        found = self.rules[0].reg
        for rule in self.rules:
            if rule.year <= year:
                found = rule.reg
        return found


def _int32(value: int, what: str) -> int:
    if not -(2**31) <= value < 2**31:
        raise TzStructError(f"{what} out of range: {value}")
    return value


def encode_tzreg(reg: TzReg) -> bytes:
    """PidLidTimeZoneStruct: a TZREG (48 bytes)."""
    return _TZREG.pack(
        _int32(reg.bias, "lBias"),
        _int32(reg.standard_bias, "lStandardBias"),
        _int32(reg.daylight_bias, "lDaylightBias"),
        reg.standard_date.year,
        reg.standard_date.pack(),
        reg.daylight_date.year,
        reg.daylight_date.pack(),
    )


def decode_tzreg(data: bytes) -> TzReg:
    """A TZREG (PidLidTimeZoneStruct); raises TzStructError."""
    if len(data) < _TZREG.size:
        raise TzStructError(f"a TZREG has {_TZREG.size} bytes, not {len(data)}")
    bias, std_bias, dst_bias, _, std, _, dst = _TZREG.unpack_from(data)
    return TzReg(bias, std_bias, dst_bias, SystemTime.unpack(std), SystemTime.unpack(dst))


def encode_definition(definition: TzDefinition) -> bytes:
    """A TZDEFINITION (PidLidAppointmentTimeZoneDefinition…)."""
    rules = definition.rules
    if not 1 <= len(rules) <= MAX_RULES:
        raise TzStructError(f"a TZDEFINITION holds 1–{MAX_RULES} rules, not {len(rules)}")
    key = definition.key_name[:MAX_KEY].encode("utf-16-le")
    cch = len(key) // 2
    out = [_HEAD.pack(MAJOR, MINOR, 6 + 2 * cch, DEFINITION_RESERVED, cch), key]
    out.append(struct.pack("<H", len(rules)))
    for rule in rules:
        reg = rule.reg
        out.append(
            _RULE.pack(
                MAJOR,
                MINOR,
                RULE_RESERVED,
                rule.flags,
                rule.year,
                b"\x00" * 14,
                _int32(reg.bias, "lBias"),
                _int32(reg.standard_bias, "lStandardBias"),
                _int32(reg.daylight_bias, "lDaylightBias"),
                reg.standard_date.pack(),
                reg.daylight_date.pack(),
            )
        )
    return b"".join(out)


def decode_definition(data: bytes) -> TzDefinition:
    """A TZDEFINITION; raises TzStructError (wrong version, sizes that do not add up, …)."""
    if len(data) < _HEAD.size + 2:
        raise TzStructError("a TZDEFINITION is longer than that (truncated)")
    major, _, cb_header, _, cch = _HEAD.unpack_from(data)
    if major != MAJOR:
        raise TzStructError(f"unknown TZDEFINITION version {major}")
    if cb_header < 6 + 2 * cch or 4 + cb_header > len(data):
        raise TzStructError("TZDEFINITION header sizes do not add up (truncated?)")
    key = data[8 : 8 + 2 * cch].decode("utf-16-le", "replace")
    (count,) = struct.unpack_from("<H", data, 8 + 2 * cch)
    start = 4 + cb_header
    if not 1 <= count <= MAX_RULES or start + count * _RULE.size > len(data):
        raise TzStructError(f"TZDEFINITION with {count} rules does not fit its bytes")
    rules: list[TzRule] = []
    for k in range(count):
        fields = _RULE.unpack_from(data, start + k * _RULE.size)
        if fields[0] != MAJOR:
            raise TzStructError(f"unknown TZRULE version {fields[0]}")
        std, dst = SystemTime.unpack(fields[9]), SystemTime.unpack(fields[10])
        reg = TzReg(fields[6], fields[7], fields[8], std, dst)
        rules.append(TzRule(year=fields[4], reg=reg, flags=fields[3]))
    return TzDefinition(key_name=key, rules=tuple(rules))
