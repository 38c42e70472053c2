"""Lenient decoding for MIME import: charsets, raw 8-bit header text, RFC 2047 encoded words
and address lists.

Nothing here raises on bad input. What cannot be decoded is replaced (U+FFFD) or dropped, and
every loop is linear in the input, so hostile headers cost no more than long ones.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import functools
import re
from typing import NamedTuple

# Labels that name Python text codecs but are not character sets a message may declare: they
# interpret their input as escapes or labels and could smuggle arbitrary code points in.
_REFUSED_CODECS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "punycode", "idna", "undefined", "mbcs", "oem"}
)
# Labels whose content is, in practice, windows-1252 (the WHATWG encoding standard agrees).
_CP1252_LABELS = frozenset({"ascii", "iso8859-1", "cp1252"})

# latin-1 with the printable windows-1252 characters in 0x80-0x9F: decodes every byte string.
_CP1252_TABLE: dict[int, str] = {}
for _byte in range(0x80, 0xA0):
    with contextlib.suppress(UnicodeDecodeError):
        _CP1252_TABLE[_byte] = bytes([_byte]).decode("cp1252")
del _byte

_SURROGATES = re.compile(r"[\ud800-\udfff]")
_ESCAPED_BYTES = re.compile(r"[\udc80-\udcff]")
# C0 controls and DEL; tab, CR and LF are handled separately.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\t\r\n]")
_EOL = re.compile(r"\r\n|\r|\n")

# Header values recur (the same senders, recipient lists, subjects of a thread): the
# results for the last few hundred short ones are kept. Every function cached is a function
# of the value alone, and its results are immutable (or copied).
_CACHED_VALUES = 512
_CACHED_VALUE = 1000  # longer values (rare, and hostile ones are long) are decoded each time

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=\s]")
_BASE64_JUNK = re.compile(r"[^A-Za-z0-9+/]")


def _codec(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when unknown or refused."""
    if not label:
        return None
    return _lookup(label)


@functools.lru_cache(maxsize=256)
def _lookup(label: str) -> str | None:
    label = label.strip().strip("\"'").split("*", 1)[0].strip().lower()
    if not label or len(label) > 64:
        return None
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError):
        return None
    name = name.replace("_", "-")
    return None if name in _REFUSED_CODECS else name


def decode_cp1252(data: bytes) -> str:
    """windows-1252, with its five undefined bytes taken as latin-1; never fails."""
    return data.decode("latin-1").translate(_CP1252_TABLE)


def guess_decode(data: bytes) -> str:
    """Bytes of unknown charset: UTF-8 when valid, else windows-1252."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return decode_cp1252(data)


class Decoded(NamedTuple):
    """Text decoded from bytes, and what is known of how it relates to them."""

    text: str
    # The text is the bytes decoded as UTF-8, unchanged: text.encode("utf-8") == data.
    utf8: bool
    # Its CRs and LFs are the bytes' CR and LF bytes, in order (an ASCII-compatible codec,
    # one character per byte or per UTF-8 sequence; dropped NULs do not matter).
    same_breaks: bool


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode text in its declared charset, falling back to a guess; never fails.

    A missing or unknown label, or ASCII / latin-1 (which in real mail often carry UTF-8 or
    windows-1252), is guessed from the bytes. A known label that does not fit the bytes
    decodes with U+FFFD replacements.
    """
    return decode_bytes_as(data, charset).text


def decode_bytes_as(data: bytes, charset: str | None) -> Decoded:
    """`decode_bytes`, and how the text relates to the bytes."""
    codec = _codec(charset)
    if codec is None or codec in _CP1252_LABELS:
        return _guess_without_nuls(data)  # (neither guess makes a lone surrogate)
    try:
        text = data.decode(codec)
    except Exception:
        try:
            text = data.decode(codec, "replace")
        except Exception:
            return _guess_without_nuls(data)
    else:
        if codec == "utf-8":  # a strict UTF-8 decode makes no lone surrogate
            return _without_nuls(text, data, utf8=True)
    return Decoded(scrub_text(text), utf8=False, same_breaks=False)


def _guess_without_nuls(data: bytes) -> Decoded:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _without_nuls(decode_cp1252(data), data, utf8=False)
    return _without_nuls(text, data, utf8=True)


def _without_nuls(text: str, data: bytes, *, utf8: bool) -> Decoded:
    """`drop_nuls` of text decoded from `data` as UTF-8 or windows-1252, which make a NUL
    of a 0 byte and of nothing else: looking for one in the bytes is many times faster
    than in the text (a search in text of 2- or 4-byte characters is no memchr)."""
    if b"\x00" in data:
        return Decoded(text.replace("\x00", ""), utf8=False, same_breaks=True)
    return Decoded(text, utf8=utf8, same_breaks=True)


def drop_nuls(text: str) -> str:
    """`scrub_text` of text known to hold no lone surrogate."""
    return text.replace("\x00", "") if "\x00" in text else text


def scrub_text(text: str) -> str:
    """Drop NULs and replace lone surrogates, so the text can be stored and encoded."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if text.isascii():  # O(1): no surrogates to look for
        return text
    try:
        text.encode("utf-8")  # fails at the first surrogate; many times faster than a regex
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", text)
    return text


def scrub_line(text: str) -> str:
    """Header text on one line: line breaks and tabs become spaces, other controls go."""
    if text.isprintable():
        # (the common case, in one pass: no control character, NUL, tab, line break or
        # lone surrogate is printable, so there is nothing to change)
        return text
    text = _LINE_BREAKS.sub(" ", scrub_text(text))
    return _CONTROLS.sub("", text)


def to_crlf(text: str) -> str:
    crlf = text.count("\r\n")
    if crlf == text.count("\r") == text.count("\n"):
        return text  # already CRLF throughout: the common case, without a regex pass
    return _EOL.sub("\r\n", text)


def recover_8bit(value: str) -> str:
    """Header text as the parser keeps it (raw 8-bit bytes as surrogate escapes) → text.

    Such bytes are decoded as UTF-8 when the whole value is valid UTF-8, else windows-1252.
    """
    if value.isascii():  # no escaped byte, no surrogate: the common case, in O(1)
        return value
    if not _ESCAPED_BYTES.search(value):
        return _SURROGATES.sub("\ufffd", value)
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", value)
    return guess_decode(raw)


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    """The octets of one encoded word, or None when it is too broken to decode."""
    try:
        data = payload.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if encoding in "qQ":
        return binascii.a2b_qp(data, header=True)
    if _NOT_BASE64.search(payload):
        return None
    clean = _BASE64_JUNK.sub("", payload)
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    try:
        return base64.b64decode(clean + "=" * (-len(clean) % 4))
    except (binascii.Error, ValueError):
        return None


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words in text; words that cannot be decoded stay as they are.

    Whitespace between two encoded words is dropped, and adjacent words in one charset are
    joined before decoding, so a character split across words survives.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pending_charset: str | None = None
    pending = bytearray()
    after_word = False
    pos = 0

    def flush() -> None:
        nonlocal pending_charset
        if pending_charset is not None:
            out.append(decode_bytes(bytes(pending), pending_charset))
            pending_charset = None
            pending.clear()

    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos : match.start()]
        pos = match.end()
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            flush()
            out.append(gap + match.group(0))
            after_word = False
            continue
        charset = match.group(1).lower()
        if after_word and (not gap or gap.isspace()):
            if charset != pending_charset:
                flush()
                pending_charset = charset
        else:
            flush()
            out.append(gap)
            pending_charset = charset
        pending.extend(data)
        after_word = True
    flush()
    out.append(text[pos:])
    return "".join(out)


def header_text(value: str) -> str:
    """An unstructured header value (Subject, Thread-Topic, a filename …) as clean text."""
    if len(value) <= _CACHED_VALUE:
        return _cached_header_text(value)
    return _header_text(value)


def _header_text(value: str) -> str:
    return scrub_line(decode_words(recover_8bit(value))).strip()


_cached_header_text = functools.lru_cache(maxsize=_CACHED_VALUES)(_header_text)


# --- address lists --------------------------------------------------------------------------

_ATOM = re.compile(r'[^ \t\r\n"(),:;<>]+')


class _Mailbox:
    """Tokens of one mailbox while scanning an address list."""

    def __init__(self) -> None:
        # Words (atoms and quoted strings, as [raw pieces], [text pieces]); glued pieces
        # (no space between) make one word. The angle-addr, if any, splits them into the
        # display name before it and the rest.
        self.words: list[tuple[list[str], list[str]]] = []
        self.angle: str | None = None
        self.words_before_angle = 0
        self.comments: list[str] = []
        self.glued = False
        self.has_at = False

    def word(self, raw: str, text: str) -> None:
        if self.glued and len(self.words) > self.words_before_angle:
            self.words[-1][0].append(raw)
            self.words[-1][1].append(text)
        else:
            self.words.append(([raw], [text]))
        self.glued = True
        self.has_at = self.has_at or "@" in raw

    def angle_addr(self, addr: str) -> None:
        if self.angle is None:
            self.angle = addr
            self.words_before_angle = len(self.words)
        self.glued = False

    def has_address(self) -> bool:
        return self.angle is not None or self.has_at

    def result(self) -> tuple[str, str] | None:
        words = [("".join(raw), "".join(text)) for raw, text in self.words]
        if self.angle is not None:
            addr = self.angle
            name = " ".join(text for _, text in words[: self.words_before_angle])
        else:
            at = next((i for i, (raw, _) in enumerate(words) if "@" in raw), None)
            if at is None and len(words) != 1:
                return None  # nothing, or a bare phrase without an address
            at = at or 0
            addr = words[at][0]
            name = " ".join(text for _, text in words[:at])
        if not name:
            name = " ".join(self.comments)
        addr = _clean_addr(addr)
        if not addr:
            return None
        return scrub_line(decode_words(name)).strip(), addr


def _clean_addr(addr: str) -> str:
    # Folding whitespace goes ("< a @ b >"), except inside a quoted local part.
    addr = addr.strip() if '"' in addr else "".join(addr.split())
    if addr.startswith("@") and ":" in addr:  # obsolete source route: @a,@b:user@c
        addr = addr.rsplit(":", 1)[1]
    if addr[:7].lower() == "mailto:":
        addr = addr[7:]
    return scrub_line(addr).strip("<>")


def _scan_quoted(text: str, i: int) -> tuple[str, int] | None:
    """The content of the quoted string opening at text[i] and the index after it; None
    when it is never closed."""
    out: list[str] = []
    n = len(text)
    i += 1
    while i < n and text[i] != '"':
        if text[i] == "\\" and i + 1 < n:
            i += 1
        out.append(text[i])
        i += 1
    return ("".join(out), i + 1) if i < n else None


def _scan_comment(text: str, i: int) -> tuple[str, int] | None:
    """The content of the (possibly nested) comment opening at text[i] and the index after
    it; None when it is never closed."""
    out: list[str] = []
    n = len(text)
    depth = 1
    i += 1
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if not depth:
                return "".join(out), i + 1
        out.append(ch)
        i += 1
    return None


def parse_addresses(value: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address-list header; groups are flattened.

    A single scan that tolerates what real mail contains: unbalanced quotes, angle brackets
    and comments, stray separators, 8-bit names and encoded words in quoted names. Entries
    without an address are skipped.
    """
    if len(value) <= _CACHED_VALUE:
        return list(_cached_addresses(value))
    return _parse_addresses(value)


@functools.lru_cache(maxsize=_CACHED_VALUES)
def _cached_addresses(value: str) -> tuple[tuple[str, str], ...]:
    return tuple(_parse_addresses(value))


def _parse_addresses(value: str) -> list[tuple[str, str]]:
    text = recover_8bit(value)
    found: list[tuple[str, str]] = []
    box = _Mailbox()
    quotes_close = comments_close = True
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            box.glued = False
            i += 1
        elif ch == '"':
            quoted = _scan_quoted(text, i) if quotes_close else None
            if quoted is None:
                # Never closed: read on as if the quote were not there. No later quote
                # closes either (the scans would agree from here on), so stop trying.
                quotes_close = False
                i += 1
                continue
            box.word(text[i : quoted[1]], quoted[0])
            i = quoted[1]
        elif ch == "(":
            comment = _scan_comment(text, i) if comments_close else None
            if comment is None:
                # Likewise; later comments might close, but retrying could cost n² time.
                comments_close = False
                i += 1
                continue
            box.comments.append(comment[0])
            box.glued = False
            i = comment[1]
        elif ch == "<":
            end = text.find(">", i + 1)
            end = n if end < 0 else end
            box.angle_addr(text[i + 1 : end])
            i = end + 1
        elif ch in ",;":
            entry = box.result()
            if entry is not None:
                found.append(entry)
            box = _Mailbox()
            i += 1
        elif ch == ":":
            if not box.has_address():  # "group name:" (or "mailto:")
                box = _Mailbox()
            i += 1
        elif ch in ")>":
            i += 1
        else:
            atom = _ATOM.match(text, i)
            end = atom.end() if atom else i + 1
            box.word(text[i:end], text[i:end])
            i = end
    entry = box.result()
    if entry is not None:
        found.append(entry)
    return found
