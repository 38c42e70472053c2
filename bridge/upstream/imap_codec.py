"""IMAP value codecs: modified UTF-7 mailbox names, UID sets, FETCH attributes."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any

from bridge.upstream.imap_proto import Response


def encode_mailbox(name: str) -> str:
    """Modified UTF-7 (RFC 3501 5.1.3)."""
    out, buf = [], ""

    def flush() -> None:
        nonlocal buf
        if buf:
            b64 = base64.b64encode(buf.encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + b64.replace("/", ",") + "-")
            buf = ""

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf += ch
    flush()
    return "".join(out)


def decode_mailbox(name: str) -> str:
    def repl(m: re.Match[str]) -> str:
        body = m.group(1)
        if not body:
            return "&"
        data = body.replace(",", "/")
        data += "=" * (-len(data) % 4)
        return base64.b64decode(data).decode("utf-16-be", "replace")

    return re.sub(r"&([^-]*)-", repl, name)


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
            a, b = (int(x) for x in part.split(":"))
            out.update(range(min(a, b), max(a, b) + 1))
        elif part.isdigit():
            out.add(int(part))
    return out


def fetch_items(resp: Response) -> dict[str, Any]:
    """The attributes of a FETCH response, keys upper-cased."""
    data = resp.values[2] if len(resp.values) > 2 and isinstance(resp.values[2], list) else []
    return {str(data[i]).upper(): data[i + 1] for i in range(0, len(data) - 1, 2)}


def flag_set(value: Any) -> frozenset[str]:
    return frozenset(str(f) for f in value) if isinstance(value, list) else frozenset()


def modseq_of(value: Any) -> int | None:
    if isinstance(value, list) and value and str(value[0]).isdigit():
        return int(value[0])
    return None
