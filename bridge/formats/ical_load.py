"""iCalendar bytes → one `icalendar.Calendar`, checked (BEGIN/END nesting, one VCALENDAR).

The icalendar package does the parsing, with three shortcuts that give the same result:

- Its split of each content line into name, parameters and value is most of the cost of
  reading a small object; lines are handed to it as `_Line`s, which split the common
  shapes (no quote or backslash in the name and parameters: `SUMMARY:…`,
  `DTSTART;TZID=X:…`) themselves, with each distinct parameter section parsed once by
  icalendar and reused. Every other line, and any line icalendar would refuse, takes
  icalendar's own path, so values, parameters and error messages are icalendar's.
- The value type of a property is looked up once per name and VALUE parameter, and a
  text value is made once (icalendar makes it twice: once parsing, once adding).
- For a caller that only reads (`share_zones`), a VTIMEZONE whose lines were read before
  is that earlier component: every event of a calendar carries the same VTIMEZONE, and
  reading it again cost more than the event itself.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

import icalendar
from icalendar.parser.content_line import NEWLINE, UFOLD, Contentline, Contentlines
from icalendar.parser.ical.component import ComponentIcalParser
from icalendar.parser.parameter import Parameters
from icalendar.parser.property import unescape_backslash
from icalendar.timezone import tzp

from bridge.formats.ical_values import IcalError
from bridge.formats.parsed import decode_text

_NAME = re.compile(r"[A-Za-z0-9-]+")  # names icalendar takes as they are


def load_calendar(data: bytes, *, share_zones: bool = False) -> icalendar.Calendar:
    """Parse the bytes into one VCALENDAR; raises IcalError with the reason.

    With `share_zones`, a VTIMEZONE whose lines were met before is the component read
    then, shared: for a caller that only reads the calendar (it must not be changed)."""
    text = decode_text(data, "an iCalendar object", IcalError)
    head = text.lstrip()[:15].upper()
    if not head.startswith("BEGIN:VCALENDAR"):
        raise IcalError("not an iCalendar object: it must start with BEGIN:VCALENDAR")
    if not text.rstrip().upper().endswith("END:VCALENDAR"):
        raise IcalError("not an iCalendar object: it must end with END:VCALENDAR (truncated?)")
    _check_nesting(text)
    try:
        cal = (_ZoneSharingCalendar if share_zones else _Calendar).from_ical(text)
    except Exception as exc:
        raise IcalError(f"not a valid iCalendar object: {short_error(exc)}") from None
    if not isinstance(cal, icalendar.Calendar):
        raise IcalError("not an iCalendar object: expected exactly one VCALENDAR")
    return cal


def _check_nesting(text: str) -> None:
    """Every BEGIN has the END of the same name (the parser itself lets a mismatch pass)."""
    stack: list[str] = []
    for line in text.splitlines():
        head = line[:6].upper()
        if head.startswith("BEGIN:"):
            stack.append(line[6:].strip().upper())
        elif head.startswith("END:"):
            name = line[4:].strip().upper()
            if not stack or stack[-1] != name:
                opened = stack[-1] if stack else "nothing"
                raise IcalError(f"not a valid iCalendar object: END:{name[:40]} closes {opened}")
            stack.pop()
    if stack:
        raise IcalError(f"not a valid iCalendar object: {stack[-1]} is not closed")


def short_error(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"


class _Line(Contentline):
    """A content line whose `parts()` takes the short way when it gives the same."""

    def parts(self) -> tuple[str, Any, str]:
        colon = self.find(":")
        if colon > 0:
            head = self[:colon]
            if '"' not in head and "\\" not in head:
                semi = head.find(";")
                name = head if semi < 0 else head[:semi]
                if _NAME.fullmatch(name):
                    if semi < 0:
                        params = _no_parameters()
                    else:
                        pairs = _parameters(head[semi + 1 :])
                        if pairs is None:
                            return super().parts()
                        params = Parameters(
                            (k, list(v) if isinstance(v, list) else v) for k, v in pairs
                        )
                    value = self[colon + 1 :]
                    if "\\" in value:
                        value = unescape_backslash(value)
                    return name, params, value
        return super().parts()


def _no_parameters() -> Parameters:
    """`Parameters()`, made without its constructor's work on arguments there are none of
    (an empty ordered dict of the class; the same as icalendar's own)."""
    return Parameters.__new__(Parameters)


@functools.lru_cache(maxsize=256)
def _parameters(section: str) -> tuple[tuple[str, Any], ...] | None:
    """A parameter section (no quotes, no backslashes) as icalendar reads it; None when
    it refuses it (the line then gets icalendar's own error)."""
    if not section:
        return None
    try:
        _, params, _ = Contentline(f"X;{section}:").raw_parts()  # type: ignore[no-untyped-call]
    except ValueError:
        return None
    return tuple(params.items())


class _Parser(ComponentIcalParser):
    """icalendar's parser, with the value type of each (name, VALUE) looked up once and
    VTIMEZONEs met before taken as they were read (`_ZoneBlock`, `_ZoneEnd`)."""

    def get_factory_for_property(self, name: str, params: Any) -> Any:
        key = (name, params.value if params else None)  # no parameters: no VALUE
        found = _FACTORIES.get(key)
        if found is None:
            found = super().get_factory_for_property(name, params)
            if len(_FACTORIES) < 1024:
                _FACTORIES[key] = found
        return found

    def parse_and_add_property(
        self, name: str, params: Any, val: str, tzid: str | None, line: Any
    ) -> None:
        """icalendar's own, without making a second value object of the same class from
        the one its factory has just made (text, addresses, URIs: the same value, and the
        parameters are set on it right after either way)."""
        factory = self.get_factory_for_property(name, params)
        if factory not in _SELF_MADE:
            super().parse_and_add_property(name, params, val, tzid, line)
            return
        try:
            value = factory.from_ical(val, tzid) if tzid else factory.from_ical(val)
        except (ValueError, TypeError) as e:
            self.handle_property_parse_error(e, name, params, val, line)
            return
        if type(value) is not factory:
            value = factory(value)
        value.params = params
        component = self.component
        assert component is not None  # handle_property refuses a line outside one
        component.add(name, value, encode=False)

    def parse_content_lines(self) -> None:
        """icalendar's loop, plus the two kinds of VTIMEZONE lines."""
        for line in self._content_lines_iterator:
            if not line:
                continue
            if isinstance(line, _ZoneBlock):
                self._add_zone(line.zone)
                continue
            try:
                name, params, vals = line.parts()
            except ValueError as e:
                self.handle_line_parse_error(e)
                continue
            uname = name.upper()
            if uname == "BEGIN":
                self.handle_begin_component(vals)
            elif uname == "END":
                closing = self.component
                self.handle_end_component(vals)
                if isinstance(line, _ZoneEnd) and _clean(closing):
                    _remember_zone(line.key, closing)
            else:
                self.handle_property(uname, params, vals, line)

    def _add_zone(self, zone: Any) -> None:
        """What `handle_end_component` does with a VTIMEZONE just read."""
        if self._stack:
            self._stack[-1].add_component(zone)
        else:
            self._components.append(zone)
        if "TZID" in zone:
            tzp.cache_timezone_component(zone)


_FACTORIES: dict[tuple[str, str | None], Any] = {}
# Value classes whose `from_ical` makes an instance of the class itself.
_SELF_MADE = frozenset({icalendar.vText, icalendar.vCalAddress, icalendar.vUri})


class _ZoneBlock(Contentline):
    """Stands for the lines of a VTIMEZONE read before: `zone`, as read then."""

    zone: Any


class _ZoneEnd(Contentline):
    """The END:VTIMEZONE of a block not read before; `key` is its lines."""

    key: tuple[str, ...]


_ZONES: dict[tuple[str, ...], Any] = {}  # the lines of a VTIMEZONE -> the component read
_ZONES_LOCK = threading.Lock()
MAX_ZONES = 64


def _remember_zone(key: tuple[str, ...], zone: Any) -> None:
    with _ZONES_LOCK:  # readers in several threads (the REST and WebDAV paths)
        if len(_ZONES) >= MAX_ZONES:
            _ZONES.pop(next(iter(_ZONES)))
        _ZONES[key] = zone


def _clean(component: Any) -> bool:
    """A VTIMEZONE read without complaint (no error kept in it or below it)."""
    if component is None or component.name != "VTIMEZONE":
        return False
    return not any(c.errors for c in component.walk())


def _zone_blocks(lines: list[Any]) -> list[Any]:
    """`lines` with each VTIMEZONE read before replaced by one `_ZoneBlock`, and the END
    of each other one marked (`_ZoneEnd`) so that the parser keeps what it reads.

    A block qualifies when its BEGIN and END lines are exactly BEGIN:VTIMEZONE and
    END:VTIMEZONE, its BEGIN/END lines nest, and no line in it names a TZID
    parameter (the only values of a VTIMEZONE that depend on what was read before)."""
    out: list[Any] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.upper() != "BEGIN:VTIMEZONE":
            out.append(line)
            i += 1
            continue
        end = _block_end(lines, i)
        if end is None:
            out.append(line)
            i += 1
            continue
        key = tuple(str(x) for x in lines[i : end + 1])
        zone = _ZONES.get(key)
        if zone is not None:
            block = _ZoneBlock(line)  # type: ignore[no-untyped-call]
            block.zone = zone
            out.append(block)
        else:
            out += lines[i:end]
            closing = _ZoneEnd(lines[end])  # type: ignore[no-untyped-call]
            closing.key = key
            out.append(closing)
        i = end + 1
    return out


def _block_end(lines: list[Any], start: int) -> int | None:
    """The index of the END:VTIMEZONE closing the block opened at `start`; None when
    the block does not qualify (any BEGIN/END line not of the plain NAME:VALUE form)."""
    depth = 0
    for j in range(start, len(lines)):
        upper = lines[j].upper()
        if ";TZID=" in upper:
            return None
        if upper.startswith(("BEGIN", "END")):
            if upper.startswith("BEGIN:"):
                depth += 1
            elif upper.startswith("END:"):
                depth -= 1
                if depth == 0:
                    return j if upper == "END:VTIMEZONE" else None
            else:
                return None
    return None


class _Calendar(icalendar.Calendar):
    """Parses through `_Line`s; what it returns is made by icalendar's component
    factory (an `icalendar.Calendar` for a VCALENDAR)."""

    share_zones = False

    @classmethod
    def _get_ical_parser(cls, st: str | bytes) -> Any:
        text = st.decode("utf-8") if isinstance(st, bytes) else st
        split = NEWLINE.split(UFOLD.sub("", text))
        lines = Contentlines(_Line(x) for x in split if x)  # type: ignore[no-untyped-call]
        if cls.share_zones:
            lines = Contentlines(_zone_blocks(lines))
        lines.append("")  # type: ignore[arg-type]  # as icalendar's own split ends
        return _Parser(lines, cls._get_component_factory(), cls.types_factory)


class _ZoneSharingCalendar(_Calendar):
    """`_Calendar` whose VTIMEZONEs may be the very objects of an earlier parse."""

    share_zones = True
