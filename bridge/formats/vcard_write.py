"""Contact fields → vCard content lines: a changed field's line rewritten with the old
line's parameters and group, or a new line for a new field."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from bridge.formats.vcard_fields import NO_YEAR, SIMPLE_FIELDS, TEL_TYPES
from bridge.formats.vcard_lines import Line, binary_value, escape, format_line, structured


def _date_text(value: dt.datetime, v4: bool) -> tuple[str, list[tuple[str, list[str]]]]:
    if value.year == NO_YEAR:
        if v4:
            return f"--{value.month:02d}{value.day:02d}", []
        return f"{NO_YEAR}-{value.month:02d}-{value.day:02d}", [
            ("X-APPLE-OMIT-YEAR", [str(NO_YEAR)])
        ]
    if v4:
        return f"{value.year:04d}{value.month:02d}{value.day:02d}", []
    return value.date().isoformat(), []


def field_lines(
    key: str, value: Any, version: str, old: list[Line], group_style: str, newline: str
) -> list[str]:
    """Content lines for one field (empty = remove it); parameters of the old line kept."""
    if value in (None, "", ()):
        return []
    v4 = version.startswith("4")
    first = old[0] if old else None
    params = list(first.params) if first is not None else []
    line_group = first.group if first is not None else None

    def line(name: str, text: str, p: list[tuple[str, list[str]]] | None = None) -> str:
        full = f"{line_group}.{name}" if line_group else name
        return format_line(full, text, params if p is None else p, newline)

    if key in SIMPLE_FIELDS:
        return [line(SIMPLE_FIELDS[key][0], escape(value))]
    if key == "n":
        return [line("N", ";".join(escape(v) for v in value))]
    if key == "org":
        company, department = value
        parts = [company, department] if department else [company]
        if first is not None:
            extra = structured(first)[2:]
            parts = [company, department, *extra] if extra else parts
        return [line("ORG", ";".join(escape(v) for v in parts))]
    if key in ("bday", "anniversary"):
        text, omit = _date_text(value, v4)
        name = "BDAY" if key == "bday" else ("ANNIVERSARY" if v4 else "X-ANNIVERSARY")
        if first is not None:
            name = first.name
        kept = [p for p in params if p[0] not in ("X-APPLE-OMIT-YEAR", "VALUE")]
        return [line(name, text, kept + omit)]
    if key.startswith("url:"):
        if first is None:
            params = [("TYPE", ["home" if key == "url:home" else "work"])]
        return [line("URL", value)]
    if key == "categories":
        return [line("CATEGORIES", ",".join(escape(c) for c in value))]
    if key.startswith("email"):
        if first is None:
            params = [("TYPE", ["internet"])] if not v4 else []
        return [line("EMAIL", escape(value))]
    if key.startswith("tel:"):
        if first is None:
            params = [("TYPE", list(TEL_TYPES[key]))]
        uri = first is not None and first.value.strip().lower().startswith("tel:")
        return [line("TEL", ("tel:" + value) if uri else escape(value))]
    if key.startswith("adr:"):
        head = list(structured(first)[:2]) if first is not None else ["", ""]
        head = [*head, "", ""][:2]
        if first is None:
            params = [("TYPE", [key[4:]])]
        return [line("ADR", ";".join(escape(v) for v in [*head, *value]))]
    if key == "photo":
        mime = "image/jpeg"
        if first is not None:
            decoded = binary_value(first)
            mime = (decoded[1] if decoded else None) or mime
        data = base64.b64encode(value).decode("ascii")
        if v4:
            return [line("PHOTO", f"data:{mime};base64,{data}", [])]
        kind = mime.split("/")[-1].upper()
        return [line("PHOTO", data, [("ENCODING", ["b"]), ("TYPE", [kind])])]
    if key == "members":
        name = "MEMBER" if group_style == "v4" else "X-ADDRESSBOOKSERVER-MEMBER"
        return [format_line(name, m, [], newline) for m in value]
    return []
