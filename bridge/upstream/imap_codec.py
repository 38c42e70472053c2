"""IMAP value codecs: modified UTF-7 mailbox names, UID sets, FETCH attributes."""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bridge.upstream.base import UpstreamError
from bridge.upstream.imap_proto import Response


def encode_mailbox(name: str) -> str:
    """Modified UTF-7 (RFC 3501 5.1.3)."""
    return _encode_utf7(name, lambda ch: 0x20 <= ord(ch) <= 0x7E)


def decode_mailbox(name: str) -> str:
    return _decode_utf7(name)


# Characters a keyword (an IMAP atom) carries as they are: printable ASCII except the atom
# specials, and "[" (an atom char that some servers still refuse in a keyword).
_KEYWORD_DIRECT = frozenset(chr(c) for c in range(0x21, 0x7F)) - set('(){%*"\\][')


def encode_keyword(flag: str) -> str:
    """A flag as the server is sent it. A category may hold anything (Outlook's own are
    "Red Category" and the like), while an IMAP keyword is an atom: what it cannot carry is
    written as modified UTF-7 does it (a space: "&ACA-"; "&": "&-"), the way mailbox names
    are. Flags starting with a backslash or "$" are the server's own and go as they are, as
    does any keyword that reads back as itself (a "R&D" set by another client stays so)."""
    if flag[:1] in ("\\", "$"):
        return flag
    if all(ch in _KEYWORD_DIRECT or ch == "&" for ch in flag) and _decode_utf7(flag) == flag:
        return flag
    return _encode_utf7(flag, _KEYWORD_DIRECT.__contains__)


def decode_keyword(flag: str) -> str:
    """A flag from the server as the bridge sees it (`encode_keyword` undone)."""
    return flag if flag[:1] in ("\\", "$") or "&" not in flag else _decode_utf7(flag)


def _encode_utf7(text: str, direct: Callable[[str], bool]) -> str:
    out, buf = [], ""

    def flush() -> None:
        nonlocal buf
        if buf:
            data = buf.encode("utf-16-be", "surrogatepass")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            buf = ""

    for ch in text:
        if ch == "&" or direct(ch):
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf += ch
    flush()
    return "".join(out)


def _decode_utf7(text: str) -> str:
    """Modified UTF-7 undone; a "&...-" run that is not valid stays as it is (a server may
    send anything)."""

    def repl(m: re.Match[str]) -> str:
        body = m.group(1)
        if not body:
            return "&"
        data = body.replace(",", "/")
        try:
            raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
            return raw.decode("utf-16-be")  # strict: a lone surrogate could not be stored
        except (ValueError, UnicodeDecodeError):
            return m.group(0)

    return re.sub(r"&([^-]*)-", repl, text)


def seqset(uids: Iterable[int]) -> str:
    """1,2,3,7 → 1:3,7"""
    ranges: list[str] = []
    run: list[int] = []
    for uid in sorted(set(uids)):
        if run and uid == run[-1] + 1:
            run.append(uid)
            continue
        if run:
            ranges.append(f"{run[0]}:{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [uid]
    if run:
        ranges.append(f"{run[0]}:{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(ranges)


def parse_seqset(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        if ":" in part:
            a, b = (number(x) for x in part.split(":", 1))
            out.update(range(min(a, b), max(a, b) + 1))
        elif part.isdigit():
            out.add(int(part))
    return out


MAX_LISTED = 5_000_000  # UIDs in one listing: more is a broken (or hostile) server


def esearch_all(values: list[Any]) -> set[int]:
    """The UIDs an ESEARCH response gives as its ALL result (RFC 4731), e.g. from
    `ESEARCH (TAG "A5") UID ALL 1,3:5`; none when it has no ALL (nothing matched)."""
    for i in range(1, len(values)):
        if isinstance(values[i], str) and values[i].upper() == "ALL":
            found = values[i + 1] if i + 1 < len(values) else None
            if not isinstance(found, str) or not found or found.strip("0123456789:,"):
                raise UpstreamError(f"unreadable ESEARCH result: {str(found)[:40]!r}")
            ranges = []
            for part in found.split(","):
                a, colon, b = part.partition(":")
                lo, hi = number(a), number(b) if colon else number(a)
                ranges.append(range(min(lo, hi), max(lo, hi) + 1))
            count = sum(len(r) for r in ranges)
            if count > MAX_LISTED:  # (counted before any set is made of them)
                raise UpstreamError(f"the server listed {count} messages in one mailbox")
            return {uid for r in ranges for uid in r}
    return set()


def number(value: Any) -> int:
    """An IMAP number (UID, size); anything else is a broken response, reported as such."""
    text = str(value)
    if not (text.isascii() and text.isdigit()):
        raise UpstreamError(f"unreadable server response: {text[:40]!r} where a number belongs")
    return int(text)


def fetch_items(resp: Response) -> dict[str, Any]:
    """The attributes of a FETCH response, keys upper-cased."""
    data = resp.values[2] if len(resp.values) > 2 and isinstance(resp.values[2], list) else []
    return {str(data[i]).upper(): data[i + 1] for i in range(0, len(data) - 1, 2)}


def flag_set(value: Any) -> frozenset[str]:
    """The flags of a FLAGS attribute, keywords decoded (`decode_keyword`)."""
    if not isinstance(value, list):
        return frozenset()
    return frozenset(decode_keyword(str(f)) for f in value)


def modseq_of(value: Any) -> int | None:
    if isinstance(value, list) and value and str(value[0]).isdigit():
        return int(value[0])
    return None


@dataclass(frozen=True)
class TextPart:
    """A body text part found in a BODYSTRUCTURE: its section number and MIME header."""

    section: str
    ctype: str  # text/plain or text/html
    charset: str | None
    encoding: str | None


def text_parts(structure: Any) -> list[TextPart]:
    """The first inline text/plain and text/html parts of a message (not descending into
    attached messages): what a client shows as the body."""
    found: dict[str, TextPart] = {}

    def walk(node: Any, section: str) -> None:
        if not isinstance(node, list) or not node or len(found) == 2:
            return
        if isinstance(node[0], list):  # multipart: the parts, then the subtype
            for n, child in enumerate(itertools.takewhile(lambda c: isinstance(c, list), node)):
                walk(child, f"{section}.{n + 1}" if section else str(n + 1))
            return
        if len(node) < 7 or str(node[0]).lower() != "text":
            return
        ctype = f"text/{str(node[1]).lower()}"
        params = _params(node[2])
        disposition = node[9] if len(node) > 9 and isinstance(node[9], list) else [None, None]
        attached = str(disposition[0]).lower() == "attachment"
        named = "name" in params or "filename" in _params(disposition[1:2] and disposition[1])
        if ctype in ("text/plain", "text/html") and ctype not in found and not (attached or named):
            encoding = str(node[5]).lower() if node[5] else None
            found[ctype] = TextPart(section or "1", ctype, params.get("charset"), encoding)

    walk(structure, "")
    return [found[c] for c in ("text/plain", "text/html") if c in found]


def _params(value: Any) -> dict[str, str]:
    if not isinstance(value, list):
        return {}
    return {
        str(value[i]).lower(): str(value[i + 1])
        for i in range(0, len(value) - 1, 2)
        if value[i] is not None and value[i + 1] is not None
    }
