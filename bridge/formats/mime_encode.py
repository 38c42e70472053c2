"""Encoding header fields for MIME export: folding, RFC 2047 encoded words, mailboxes and
RFC 2231 file names.

The policy's own header classes are not used for these: they decode text that merely looks
like an encoded word ("=?x?q?y?=") and so change it, and they mangle some parameter values.
"""

from __future__ import annotations

import base64
import logging
import re
import urllib.parse
from collections.abc import Sequence
from email.policy import Policy
from typing import Any

from bridge.formats.mime_decode import scrub_line

log = logging.getLogger(__name__)

_ATEXT_PHRASE = re.compile(
    r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*"
)
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+@[A-Za-z0-9.\-]+")
# RFC 2231 attribute-char (RFC 2045 token characters other than * ' %)
_ATTRIBUTE_SAFE = "!#$&+-.^_`|~"
_PERCENT_SPLIT = re.compile(r"%[0-9A-F]{2}|[^%]")
_CID_SAFE = "!#$%&'*+-./=?^_`{|}~@:;,[]()"
_WORD_BYTES = 45  # UTF-8 bytes per encoded word: 60 base64 characters, 72 with the wrapper
LONGEST_TOKEN = 900  # longer runs without spaces are encoded (or left out) to stay foldable
_FILENAME_CHUNK = 50  # characters of a file name per line, so that lines stay within 78


class EncodedHeader(str):
    """A header encoded here rather than by the policy's header classes.

    Those decode text that merely looks like an encoded word ("=?x?q?y?=") and so change it;
    this one keeps exact tokens. The policy stores any value that carries a matching `name`
    unchanged and asks it to `fold` itself when the message is generated.
    """

    name: str
    tokens: tuple[str, ...]

    def __new__(cls, name: str, tokens: Sequence[str]) -> EncodedHeader:
        obj = super().__new__(cls, " ".join(tokens))
        obj.name = name
        obj.tokens = tuple(tokens)
        return obj

    def __deepcopy__(self, memo: dict[int, Any]) -> EncodedHeader:
        return self

    def fold(self, *, policy: Policy) -> str:
        limit = policy.max_line_length or 998
        lines: list[str] = []
        line = self.name + ":"
        empty = True
        for token in self.tokens:
            if token and not empty and len(line) + 1 + len(token) > limit:
                lines.append(line)
                line = " " + token
            else:
                line += " " + token
            empty = empty and not token
        lines.append(line)
        return policy.linesep.join(lines) + policy.linesep


def encoded_words(text: str) -> list[str]:
    """text as RFC 2047 "B" words in UTF-8, each within 75 characters, split between characters."""
    chunks: list[bytes] = []
    chunk = b""
    for ch in text:
        data = ch.encode("utf-8")
        if len(chunk) + len(data) > _WORD_BYTES:
            chunks.append(chunk)
            chunk = b""
        chunk += data
    chunks.append(chunk)
    return ["=?utf-8?b?" + base64.b64encode(c).decode("ascii") + "?=" for c in chunks if c]


def plain_ascii(text: str) -> bool:
    return text.isascii() and text.isprintable() and "=?" not in text


def unstructured(text: str) -> list[str]:
    """Tokens of unstructured text; the header folds only between them."""
    tokens = text.split(" ")
    if plain_ascii(text) and max(len(t) for t in tokens) <= LONGEST_TOKEN:
        return tokens
    return encoded_words(text)


def phrase(name: str) -> list[str]:
    """A display name as atoms, one quoted string, or encoded words."""
    if plain_ascii(name) and len(name) <= 200:
        if _ATEXT_PHRASE.fullmatch(name):
            return name.split(" ")
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return encoded_words(name)


def addr_spec(addr: str) -> str | None:
    """An address usable in a 7-bit header: IDNA for the domain; None when impossible."""
    addr = "".join(scrub_line(addr).split()).replace("<", "").replace(">", "")
    if not addr:
        return None
    local, at, domain = addr.rpartition("@")
    if not at:
        local, domain = addr, ""
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except Exception:
            domain = ""
    spec = f"{local}@{domain}" if at else local
    if not local.isascii() or (at and not domain) or len(spec) > LONGEST_TOKEN:
        log.debug("an address cannot be written in a 7-bit header; left out")
        return None
    return spec


def mailbox(name: str | None, addr: str | None) -> list[str] | None:
    spec = addr_spec(addr) if addr else None
    if spec is None:
        return None
    if not name or name in (addr, spec):
        # bare when it is a plain dot-atom address, else bracketed so that it stays one
        return [spec] if _PLAIN_ADDRESS.fullmatch(spec) else [f"<{spec}>"]
    return [*phrase(name), f"<{spec}>"]


def address_list(mailboxes: list[list[str]]) -> list[str]:
    tokens: list[str] = []
    for i, box in enumerate(mailboxes):
        tokens.extend(box[:-1])
        tokens.append(box[-1] + ("," if i < len(mailboxes) - 1 else ""))
    return tokens


def keyword_tokens(words: list[str]) -> list[str]:
    tokens: list[str] = []
    for i, word in enumerate(words):
        part = unstructured(word)
        if i < len(words) - 1:
            part[-1] += ","
        tokens.extend(part)
    return tokens


def content_id(value: str) -> str:
    """A Content-ID without brackets, percent-encoded where it is not printable ASCII;
    "" when there is none or it is too long for a header line."""
    value = "".join(value.split()).replace("<", "").replace(">", "")
    value = urllib.parse.quote(value, safe=_CID_SAFE)
    return value if len(value) <= LONGEST_TOKEN else ""


def disposition(kind: str, filename: str | None) -> EncodedHeader:
    """Content-Disposition with the file name as a quoted string when it is plain ASCII,
    else in RFC 2231 form, split into continuations that fit a line."""
    if not filename:
        return EncodedHeader("Content-Disposition", [kind])
    if (
        plain_ascii(filename)
        and len(filename) <= _FILENAME_CHUNK
        and not set(filename) & set('"\\')
    ):
        return EncodedHeader("Content-Disposition", [kind + ";", f'filename="{filename}"'])
    encoded = urllib.parse.quote(filename, safe=_ATTRIBUTE_SAFE)
    pieces = _PERCENT_SPLIT.findall(encoded)
    chunks: list[str] = []
    chunk = ""
    for piece in pieces:
        if len(chunk) + len(piece) > _FILENAME_CHUNK:
            chunks.append(chunk)
            chunk = ""
        chunk += piece
    chunks.append(chunk)
    if len(chunks) == 1:
        params = [f"filename*=utf-8''{chunks[0]}"]
    else:
        first = f"filename*0*=utf-8''{chunks[0]}"
        params = [first] + [f"filename*{i}*={c}" for i, c in enumerate(chunks[1:], 1)]
    tokens = [kind + ";"] + [p + ";" for p in params[:-1]] + params[-1:]
    return EncodedHeader("Content-Disposition", tokens)
