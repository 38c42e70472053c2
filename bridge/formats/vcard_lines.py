"""vCard content lines (RFC 6350 §3.3, RFC 2426 §4, vCard 2.1), read and written by hand.

Why not vobject (0.9.9, installed): it re-serializes every line in its own form (parameter
spelling, folding, escaping), checks cards against vCard 3.0 rules (a card without N does not
serialize) and reads 4.0 only as far as 3.0 goes. Updating a card in place must leave every
line the bridge did not change byte for byte as the server sent it, so each line here keeps
its raw text and only changed lines are written anew.
"""

from __future__ import annotations

import base64
import binascii
import quopri
from dataclasses import dataclass, field


class VcardError(ValueError):
    """Bytes that are not a vCard this bridge can hold; the message says why."""


@dataclass(slots=True)
class Line:
    """One unfolded content line; `raw` is its original (folded) text with line end."""

    group: str | None
    name: str
    params: list[tuple[str, list[str]]]
    value: str
    raw: str = ""

    def param(self, name: str) -> list[str]:
        name = name.upper()
        out: list[str] = []
        for key, values in self.params:
            if key == name:
                out.extend(values)
        return out

    def types(self) -> set[str]:
        """TYPE values, lower-case (``TYPE=work,voice`` and ``TYPE=work;TYPE=voice``)."""
        return {t.strip().lower() for v in self.param("TYPE") for t in v.split(",") if t.strip()}


@dataclass(slots=True)
class Card:
    """BEGIN:VCARD … END:VCARD: its lines (nested components kept as raw lines)."""

    lines: list[Line] = field(default_factory=list)
    version: str = "3.0"
    newline: str = "\r\n"

    def first(self, name: str) -> Line | None:
        for line in self.lines:
            if line.name == name:
                return line
        return None

    def all(self, name: str) -> list[Line]:
        return [line for line in self.lines if line.name == name]


def _split_physical(text: str) -> list[str]:
    """Physical lines, each with its line end."""
    return text.splitlines(keepends=True)


def _logical(text: str) -> list[str]:
    """Unfold: a line starting with space or tab continues the previous one."""
    out: list[list[str]] = []
    for phys in _split_physical(text):
        if phys[:1] in (" ", "\t") and out:
            out[-1].append(phys)
        else:
            out.append([phys])
    return ["".join(parts) for parts in out]


def _unfold(raw: str) -> str:
    body = raw.rstrip("\r\n")
    parts = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return parts[0] + "".join(p[1:] for p in parts[1:])


def parse_line(text: str) -> Line:
    """``group.NAME;P=a,"b";Q:value`` → Line; raises VcardError."""
    i, n = 0, len(text)
    while i < n and text[i] not in ";:":
        if text[i] == '"':
            raise VcardError(f"bad content line {text[:40]!r}")
        i += 1
    if i == n:
        raise VcardError(f"content line without ':' ({text[:40]!r})")
    head = text[:i]
    group, _, name = head.rpartition(".")
    if not name or not all(c.isalnum() or c == "-" for c in name):
        raise VcardError(f"bad property name {name[:40]!r}")
    params: list[tuple[str, list[str]]] = []
    while i < n and text[i] == ";":
        i += 1
        j = i
        while j < n and text[j] not in "=;:":
            j += 1
        pname = text[i:j].upper()
        if j < n and text[j] == "=":
            values: list[str] = []
            j += 1
            while True:
                if j < n and text[j] == '"':
                    end = text.find('"', j + 1)
                    if end < 0:
                        raise VcardError(f"unterminated quoted parameter in {name}")
                    values.append(text[j + 1 : end])
                    j = end + 1
                else:
                    k = j
                    while k < n and text[k] not in ",;:":
                        k += 1
                    values.append(text[j:k])
                    j = k
                if j < n and text[j] == ",":
                    j += 1
                    continue
                break
            params.append((pname, values))
        else:
            # vCard 2.1 bare parameter: TEL;WORK;VOICE:
            params.append(("TYPE", [pname]))
        i = j
    if i >= n or text[i] != ":":
        raise VcardError(f"content line without ':' after the parameters ({name})")
    return Line(group or None, name.upper(), params, text[i + 1 :])


def parse_card(text: str) -> Card:
    """The first vCard in `text`; raises VcardError."""
    logical = _logical(text)
    card = Card()
    card.newline = "\r\n" if "\r\n" in text[:4096] or "\n" not in text else "\n"
    depth = 0
    started = ended = False
    nested: list[str] = []
    for raw in logical:
        unfolded = _unfold(raw)
        if not unfolded.strip():
            continue
        upper = unfolded.strip().upper()
        if not started:
            if upper != "BEGIN:VCARD":
                raise VcardError("not a vCard: it must start with BEGIN:VCARD")
            started, depth = True, 1
            continue
        if upper.startswith("BEGIN:"):
            depth += 1
        if depth > 1:
            nested.append(raw)
            if upper.startswith("END:"):
                depth -= 1
                if depth == 1:
                    card.lines.append(Line(None, "X-NESTED", [], "", "".join(nested)))
                    nested = []
            continue
        if upper == "END:VCARD":
            ended = True
            break
        line = parse_line(unfolded)
        line.raw = raw if raw.endswith(("\n", "\r")) else raw + card.newline
        card.lines.append(line)
    if not started:
        raise VcardError("not a vCard: it must start with BEGIN:VCARD")
    if not ended:
        raise VcardError("not a vCard: END:VCARD is missing (truncated?)")
    version = card.first("VERSION")
    if version is None:
        raise VcardError("not a vCard: VERSION is missing")
    card.version = version.value.strip()
    return card


# -- values ------------------------------------------------------------------------------


def unescape(value: str) -> str:
    if "\\" not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append("\n" if nxt in "nN" else nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def split_unescaped(value: str, sep: str) -> list[str]:
    """Split on `sep` not preceded by a backslash; parts stay escaped."""
    if "\\" not in value:
        return value.split(sep)
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            cur.append(value[i : i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def structured(line: Line) -> list[str]:
    """A structured value (N, ADR, ORG) as unescaped components."""
    return [unescape(p) for p in split_unescaped(text_value(line, raw=True), ";")]


def listed(line: Line) -> list[str]:
    """A comma list (CATEGORIES, NICKNAME) as unescaped values."""
    return [unescape(p) for p in split_unescaped(text_value(line, raw=True), ",")]


def text_value(line: Line, *, raw: bool = False) -> str:
    """The value as text (vCard 2.1 quoted-printable decoded); unescaped unless `raw`."""
    value = line.value
    encoding = {e.upper() for e in line.param("ENCODING")}
    if "QUOTED-PRINTABLE" in encoding or "quoted-printable" in line.types():
        charset = (line.param("CHARSET") or ["utf-8"])[0]
        data = quopri.decodestring(value.encode("latin-1", "replace"))
        try:
            value = data.decode(charset, "replace")
        except LookupError:
            value = data.decode("utf-8", "replace")
    return value if raw else unescape(value)


def binary_value(line: Line) -> tuple[bytes, str | None] | None:
    """Inline binary data (PHOTO): ``ENCODING=b`` / ``BASE64`` or a ``data:`` URI, with its
    media type; None for a URL or undecodable data."""
    value = line.value.strip()
    mime: str | None = None
    if value.lower().startswith("data:"):
        head, sep, payload = value[5:].partition(",")
        if not sep or ";base64" not in head.lower():
            return None
        mime = head.split(";")[0] or None
        value = payload
    elif {e.upper() for e in line.param("ENCODING")} & {"B", "BASE64"}:
        kinds = [t for t in line.types() if t not in ("pref",)]
        if kinds:
            kind = kinds[0]
            mime = kind if "/" in kind else f"image/{kind}"
    else:
        return None
    try:
        return base64.b64decode("".join(value.split()), validate=True), mime
    except (binascii.Error, ValueError):
        return None


def escape(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace("\r\n", "\n")
        .replace("\n", "\\n")
        .replace(",", "\\,")
        .replace(";", "\\;")
    )


def escape_component(value: str) -> str:
    return escape(value)


def _param_value(value: str) -> str:
    value = value.replace('"', "'").replace("\r", " ").replace("\n", " ")
    if any(c in value for c in ",;:"):
        return f'"{value}"'
    return value


def format_line(
    name: str, value: str, params: list[tuple[str, list[str]]] | None = None, newline: str = "\r\n"
) -> str:
    """A folded content line (75 octets, never splitting a UTF-8 sequence) with line end;
    `value` must already be escaped."""
    head = name
    for pname, pvalues in params or []:
        head += f";{pname}=" + ",".join(_param_value(v) for v in pvalues)
    return fold(f"{head}:{value}", newline)


def fold(text: str, newline: str = "\r\n") -> str:
    if text.isascii():
        if len(text) <= 75:
            return text + newline
        chunks = [text[:75]] + [text[i : i + 74] for i in range(75, len(text), 74)]
        return (newline + " ").join(chunks) + newline
    out: list[str] = []
    cur: list[str] = []
    size = 0
    limit = 75
    for ch in text:
        width = len(ch.encode("utf-8"))
        if size + width > limit:
            out.append("".join(cur))
            cur, size, limit = [], 0, 74
        cur.append(ch)
        size += width
    out.append("".join(cur))
    return (newline + " ").join(out) + newline
